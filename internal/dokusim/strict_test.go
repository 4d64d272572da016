package dokusim_test

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/merchant/o2o/internal/doku"
	"github.com/merchant/o2o/internal/dokusim"
)

// rawPost sends a generate request signed for timestamp ts, with Content-Type ctype ("" for none).
func rawPost(t *testing.T, base, path, requestID, ts string, body []byte, ctype string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+path, bytes.NewReader(body))
	req.Header.Set(doku.HeaderClientID, clientID)
	req.Header.Set(doku.HeaderRequestID, requestID)
	req.Header.Set(doku.HeaderRequestTimestamp, ts)
	req.Header.Set(doku.HeaderSignature, doku.Sign([]byte(secret), doku.Components{ClientID: clientID, RequestID: requestID,
		Timestamp: ts, Target: path, Digest: doku.Digest(body)}))
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out)
}

// Request-Timestamp is documented as UTC to the second, "2020-08-11T08:45:42Z": Go's parser also
// takes a fraction of a second and a one-digit hour, which DOKU's format has not.
func TestSimulatorTakesOnlyDokusTimestampFormat(t *testing.T) {
	t.Parallel()
	at := time.Date(2020, 8, 11, 8, 45, 42, 0, time.UTC)
	_, base := startSimWith(t, dokusim.Config{Now: func() time.Time { return at }})
	for i, ts := range []string{"2020-08-11T08:45:42.123456Z", "2020-08-11T08:45:42,5Z", "2020-08-11T8:45:42Z", "2020-08-11T08:45:42+00:00"} {
		if status, out := rawPost(t, base, doku.PathAlfaGenerate, "ts-"+string(rune('a'+i)), ts, body("INV-TS-"+string(rune('A'+i))), "application/json"); status != http.StatusUnauthorized {
			t.Errorf("Request-Timestamp %q: HTTP %d %s, want 401", ts, status, out)
		}
	}
	if status, out := rawPost(t, base, doku.PathAlfaGenerate, "ts-ok", "2020-08-11T08:45:42Z", body("INV-TS-OK"), "application/json"); status != http.StatusOK {
		t.Errorf("DOKU's own format: HTTP %d %s", status, out)
	}
}

// A generate request carries Content-Type: application/json (DOKU's sample request sends it, and its
// body is documented as application/json).
func TestSimulatorRequiresAJSONContentType(t *testing.T) {
	t.Parallel()
	_, base := startSim(t, "", nil)
	now := time.Now().UTC().Format(doku.TimestampLayout)
	for i, ctype := range []string{"", "text/plain"} {
		if status, out := rawPost(t, base, doku.PathAlfaGenerate, "ct-"+string(rune('a'+i)), now, body("INV-CT-"+string(rune('A'+i))), ctype); status != http.StatusBadRequest {
			t.Errorf("Content-Type %q: HTTP %d %s, want 400", ctype, status, out)
		}
	}
	if status, out := rawPost(t, base, doku.PathAlfaGenerate, "ct-ok", now, body("INV-CT-OK"), "application/json; charset=utf-8"); status != http.StatusOK {
		t.Errorf("application/json; charset=utf-8: HTTP %d %s", status, out)
	}
}

// DOKU's idempotency: the same Request-Id and body get the original response with HTTP 409 — a
// refusal's too, not only a success's. A refused Request-Id is not free for another body either.
func TestSimulatorRepeatsARefusalWith409(t *testing.T) {
	t.Parallel()
	_, base := startSim(t, "", nil)
	now := time.Now().UTC().Format(doku.TimestampLayout)
	bad := []byte(strings.Replace(string(body("INV-REFUSED")), `"amount":150000`, `"amount":150000.5`, 1))
	first, firstBody := rawPost(t, base, doku.PathAlfaGenerate, "req-refused", now, bad, "application/json")
	if first != http.StatusBadRequest {
		t.Fatalf("an amount with a fraction: HTTP %d %s", first, firstBody)
	}
	again, againBody := rawPost(t, base, doku.PathAlfaGenerate, "req-refused", now, bad, "application/json")
	if again != http.StatusConflict || againBody != firstBody {
		t.Errorf("the same refused request again: HTTP %d %s, want 409 with the original answer %s", again, againBody, firstBody)
	}
	if status, out := rawPost(t, base, doku.PathAlfaGenerate, "req-refused", now, body("INV-REFUSED"), "application/json"); status != http.StatusBadRequest {
		t.Errorf("a corrected body under the refused Request-Id: HTTP %d %s, want 400", status, out)
	}
}
