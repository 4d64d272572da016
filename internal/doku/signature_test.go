package doku

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/merchant/o2o/internal/invoice"
)

// The vectors of api/DOKU.md §2.1.
const (
	vecSecret   = "SK-TEST-0123456789abcdef"
	vecClientID = "MCH-0001-10791114622547"

	v1RequestID = "d24a5644-6078-4249-8740-4a6dcd92df5a"
	v1Timestamp = "2020-08-11T08:45:42Z"
	v1Body      = `{"order":{"invoice_number":"INV-20240101-0001","amount":150000},"online_to_offline_info":{"expired_time":60,"reusable_status":false,"info":"Online Shoping Store"},"customer":{"name":"Taufik Ismail","email":"taufik@doku.com"},"alfa_info":{"receipt":{"footer_message":"Call Center 021 555-0525"}}}`
	v1Digest    = "hMoYrbJHI7GqqVbtKkXPMl1fqWcFcQZWjqkXoYMP3SE="
	v1Signature = "HMACSHA256=PyAdhqENtJtY6+MTGVkPhj8jcjWag6eyidS/dCyzFE4="

	v2RequestID = "d895fb53-479c-4f77-a76a-ab81b40d77cb"
	v2Target    = "/orders/v1/status/INV-123123-12313"
	v2Signature = "HMACSHA256=po9vane9Ameix3qVbteTzMXvPIn/SKDJLBvBv0pDEo4="

	v3Target    = "/payments/notifications"
	v3RequestID = "479b663f-5c9d-400d-8e80-3e548a8f7639"
	v3Timestamp = "2021-08-12T07:06:30Z"
	v3Signature = "HMACSHA256=z2eurtPjGec9HnxD9BS+5dNO3/G463R0ViiFg+E5DtY="
	v3Body      = `{"service":{"id":"ONLINE_TO_OFFLINE"},"acquirer":{"id":"ALFA"},"channel":{"id":"ONLINE_TO_OFFLINE_ALFA"},"transaction":{"status":"SUCCESS","date":"2021-08-12T07:06:28Z","original_request_id":"5b8e438f-fac1-4103-9e0e-ebfdc38b5acb"},"order":{"invoice_number":"INV-20210125-0001","amount":150000},"online_to_offline_info":{"payment_code":"73"},"online_to_offline_payment":{"identifier":[{"name":"AGENT_ID","value":"ALFAMART"},{"name":"AGENT_STORE_ID","value":"store"},{"name":"AGENT_TRX_ID","value":"1246"}]}}`
	v3Digest    = "UqapDorhwlQMlBmNkG0Cx6zj3vNe9a5jdQzDiXDrDrY="
	v3PrettyDig = "OWNfy+Oe0/dE7yiTGelE52JeHHpzKDq7jvK9t0TjDrE="
)

func TestDigest(t *testing.T) {
	for body, want := range map[string]string{
		"":     "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
		"{}":   "RBNvo1WzZ4oRRq0W9+hknpT7T8If536DEMBg9hyq/4o=",
		v1Body: v1Digest,
		v3Body: v3Digest,
	} {
		if got := Digest([]byte(body)); got != want {
			t.Errorf("Digest(%.20q) = %s, want %s", body, got, want)
		}
	}
}

func TestSignV1GeneratePaymentCode(t *testing.T) {
	got := Sign([]byte(vecSecret), Components{
		ClientID: vecClientID, RequestID: v1RequestID, Timestamp: v1Timestamp,
		Target: PathAlfaGenerate, Digest: Digest([]byte(v1Body)),
	})
	if got != v1Signature {
		t.Fatalf("V1 signature = %s, want %s", got, v1Signature)
	}
}

func TestSignV2CheckStatusHasNoDigestLine(t *testing.T) {
	c := Components{ClientID: vecClientID, RequestID: v2RequestID, Timestamp: v1Timestamp, Target: v2Target}
	if strings.Contains(c.String(), "Digest") {
		t.Fatalf("GET component string has a Digest line:\n%s", c)
	}
	if got := Sign([]byte(vecSecret), c); got != v2Signature {
		t.Fatalf("V2 signature = %s, want %s", got, v2Signature)
	}
	// The digest of an empty body is not the same as no digest.
	c.Digest = Digest(nil)
	if Sign([]byte(vecSecret), c) == v2Signature {
		t.Fatal("a Digest line over an empty body must change the signature")
	}
}

func TestGenerateBodyReproducesV1Bytes(t *testing.T) {
	inv := &invoice.Invoice{
		Number: "INV-20240101-0001", Channel: invoice.ChannelAlfa, Amount: 150000,
		ExpiresInMinutes: 60, Info: "Online Shoping Store",
		Customer:      invoice.Customer{Name: "Taufik Ismail", Email: "taufik@doku.com"},
		ReceiptFooter: "Call Center 021 555-0525",
	}
	body, err := GenerateBody(inv, BodyDefaults{Info: "x", CustomerEmail: "y@z.co", ReceiptFooter: "z"})
	if err != nil {
		t.Fatal(err)
	}
	if string(body) != v1Body {
		t.Fatalf("GenerateBody =\n%s\nwant\n%s", body, v1Body)
	}
}

// Every field DOKU's page marks required is in the body on both channels, from the request or else
// from the defaults — never omitted, never empty.
func TestGenerateBodyCarriesEveryRequiredField(t *testing.T) {
	d := BodyDefaults{Info: "Online purchase", CustomerEmail: "payments@merchant.example", ReceiptFooter: "Thank you"}
	for _, ch := range []invoice.Channel{invoice.ChannelAlfa, invoice.ChannelIndomaret} {
		bare := &invoice.Invoice{Number: "INV-1", Channel: ch, Amount: 150000, ExpiresInMinutes: 60, Customer: invoice.Customer{Name: "A"}}
		raw, err := GenerateBody(bare, d)
		if err != nil {
			t.Fatal(err)
		}
		var doc map[string]any
		if err := json.Unmarshal(raw, &doc); err != nil {
			t.Fatal(err)
		}
		for _, field := range RequiredGenerateFields {
			var v any = doc
			for _, part := range strings.Split(field, ".") {
				m, _ := v.(map[string]any)
				v = m[part]
			}
			if v == nil || v == "" {
				t.Errorf("%s: %s is missing or empty in %s", ch, field, raw)
			}
		}
		want := map[string]any{"info": "Online purchase", "email": "payments@merchant.example", "footer_message": "Thank you"}
		got := map[string]any{"info": doc["online_to_offline_info"].(map[string]any)["info"],
			"email":          doc["customer"].(map[string]any)["email"],
			"footer_message": doc["alfa_info"].(map[string]any)["receipt"].(map[string]any)["footer_message"]}
		for k := range want {
			if got[k] != want[k] {
				t.Errorf("%s: %s = %v, want the default %v", ch, k, got[k], want[k])
			}
		}
		if reusable, ok := doc["online_to_offline_info"].(map[string]any)["reusable_status"].(bool); !ok || reusable {
			t.Errorf("%s: reusable_status must be the JSON boolean false: %s", ch, raw)
		}
	}
}

func v3Headers() http.Header {
	h := http.Header{}
	h.Set(HeaderClientID, vecClientID)
	h.Set(HeaderRequestID, v3RequestID)
	h.Set(HeaderRequestTimestamp, v3Timestamp)
	h.Set(HeaderSignature, v3Signature)
	return h
}

var v3Verifier = Verifier{ClientID: vecClientID, Secret: []byte(vecSecret), Target: v3Target}

func TestVerifyV3Notification(t *testing.T) {
	if err := v3Verifier.Verify(v3Headers(), []byte(v3Body)); err != nil {
		t.Fatalf("V3 notification rejected: %v", err)
	}
}

// rawSign signs an arbitrary component string the way a broken sender might.
func rawSign(component string, encode func([]byte) string, prefix string) string {
	mac := hmac.New(sha256.New, []byte(vecSecret))
	mac.Write([]byte(component))
	return prefix + encode(mac.Sum(nil))
}

func TestVerifyV3Negatives(t *testing.T) {
	b64 := base64.StdEncoding.EncodeToString
	good := Components{ClientID: vecClientID, RequestID: v3RequestID, Timestamp: v3Timestamp, Target: v3Target, Digest: v3Digest}.String()
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, []byte(v3Body), "", "    "); err != nil {
		t.Fatal(err)
	}
	if Digest(pretty.Bytes()) != v3PrettyDig {
		t.Fatalf("pretty-printed digest = %s, want %s", Digest(pretty.Bytes()), v3PrettyDig)
	}

	tests := []struct {
		name    string
		body    string
		mutate  func(h http.Header)
		wantErr error
	}{
		{name: "pretty-printed body", body: pretty.String(), wantErr: ErrBadSignature},
		{name: "body with trailing newline", body: v3Body + "\n", wantErr: ErrBadSignature},
		{name: "trailing newline after Digest line", body: v3Body, wantErr: ErrBadSignature,
			mutate: func(h http.Header) { h.Set(HeaderSignature, rawSign(good+"\n", b64, "HMACSHA256=")) }},
		{name: "Request-Target with host", body: v3Body, wantErr: ErrBadSignature,
			mutate: func(h http.Header) {
				h.Set(HeaderSignature, Sign([]byte(vecSecret), Components{ClientID: vecClientID, RequestID: v3RequestID, Timestamp: v3Timestamp, Target: "https://merchant.example/payments/notifications", Digest: v3Digest}))
			}},
		{name: "Request-Target with query", body: v3Body, wantErr: ErrBadSignature,
			mutate: func(h http.Header) {
				h.Set(HeaderSignature, Sign([]byte(vecSecret), Components{ClientID: vecClientID, RequestID: v3RequestID, Timestamp: v3Timestamp, Target: v3Target + "?a=1", Digest: v3Digest}))
			}},
		{name: "lower-case component names", body: v3Body, wantErr: ErrBadSignature,
			mutate: func(h http.Header) {
				lower := "client-id:" + vecClientID + "\nrequest-id:" + v3RequestID + "\nrequest-timestamp:" + v3Timestamp + "\nrequest-target:" + v3Target + "\ndigest:" + v3Digest
				h.Set(HeaderSignature, rawSign(lower, b64, "HMACSHA256="))
			}},
		{name: "hex signature", body: v3Body, wantErr: ErrBadSignature,
			mutate: func(h http.Header) { h.Set(HeaderSignature, rawSign(good, hex.EncodeToString, "HMACSHA256=")) }},
		{name: "hex digest", body: v3Body, wantErr: ErrBadSignature,
			mutate: func(h http.Header) {
				sum := sha256.Sum256([]byte(v3Body))
				c := Components{ClientID: vecClientID, RequestID: v3RequestID, Timestamp: v3Timestamp, Target: v3Target, Digest: hex.EncodeToString(sum[:])}
				h.Set(HeaderSignature, Sign([]byte(vecSecret), c))
			}},
		{name: "SHA-256= prefix on digest", body: v3Body, wantErr: ErrBadSignature,
			mutate: func(h http.Header) {
				c := Components{ClientID: vecClientID, RequestID: v3RequestID, Timestamp: v3Timestamp, Target: v3Target, Digest: "SHA-256=" + v3Digest}
				h.Set(HeaderSignature, Sign([]byte(vecSecret), c))
			}},
		{name: "HMACHSHA256= typo prefix", body: v3Body, wantErr: ErrBadSignature,
			mutate: func(h http.Header) {
				h.Set(HeaderSignature, strings.Replace(v3Signature, "HMACSHA256=", "HMACHSHA256=", 1))
			}},
		{name: "signature without prefix", body: v3Body, wantErr: ErrBadSignature,
			mutate: func(h http.Header) { h.Set(HeaderSignature, strings.TrimPrefix(v3Signature, "HMACSHA256=")) }},
		{name: "another Client-Id", body: v3Body, wantErr: ErrWrongClient,
			mutate: func(h http.Header) { h.Set(HeaderClientID, "MCH-0002-00000000000000") }},
		{name: "another Client-Id, correctly signed by its owner", body: v3Body, wantErr: ErrWrongClient,
			mutate: func(h http.Header) {
				h.Set(HeaderClientID, "MCH-0002-00000000000000")
				h.Set(HeaderSignature, Sign([]byte(vecSecret), Components{ClientID: "MCH-0002-00000000000000", RequestID: v3RequestID, Timestamp: v3Timestamp, Target: v3Target, Digest: v3Digest}))
			}},
		{name: "changed Request-Id", body: v3Body, wantErr: ErrBadSignature,
			mutate: func(h http.Header) { h.Set(HeaderRequestID, "479b663f-5c9d-400d-8e80-3e548a8f7630") }},
		{name: "changed timestamp", body: v3Body, wantErr: ErrBadSignature,
			mutate: func(h http.Header) { h.Set(HeaderRequestTimestamp, "2021-08-12T07:06:31Z") }},
		{name: "changed amount in body", body: strings.Replace(v3Body, "150000", "150001", 1), wantErr: ErrBadSignature},
		{name: "wrong secret", body: v3Body, wantErr: ErrBadSignature,
			mutate: func(h http.Header) {
				h.Set(HeaderSignature, Sign([]byte("SK-TEST-other"), Components{ClientID: vecClientID, RequestID: v3RequestID, Timestamp: v3Timestamp, Target: v3Target, Digest: v3Digest}))
			}},
	}
	for _, header := range []string{HeaderClientID, HeaderRequestID, HeaderRequestTimestamp, HeaderSignature} {
		tests = append(tests,
			struct {
				name    string
				body    string
				mutate  func(h http.Header)
				wantErr error
			}{name: "missing " + header, body: v3Body, wantErr: ErrMissingHeader, mutate: func(h http.Header) { h.Del(header) }},
			struct {
				name    string
				body    string
				mutate  func(h http.Header)
				wantErr error
			}{name: "empty " + header, body: v3Body, wantErr: ErrMissingHeader, mutate: func(h http.Header) { h.Set(header, "") }},
		)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := v3Headers()
			if tc.mutate != nil {
				tc.mutate(h)
			}
			err := v3Verifier.Verify(h, []byte(tc.body))
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Verify = %v, want %v", err, tc.wantErr)
			}
		})
	}

	// A verifier configured with another notification path must reject the genuine notification:
	// the path is part of what DOKU signs.
	other := v3Verifier
	other.Target = "/v1/notifications/doku"
	if err := other.Verify(v3Headers(), []byte(v3Body)); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("verify with another target = %v, want ErrBadSignature", err)
	}
}

func TestParseNotificationV3(t *testing.T) {
	r, err := ParseNotification([]byte(v3Body))
	if err != nil {
		t.Fatal(err)
	}
	if r.InvoiceNumber != "INV-20210125-0001" || r.Amount != 150000 || r.Channel != invoice.ChannelAlfa ||
		r.PaymentCode != "73" || r.DokuStatus != invoice.DokuSuccess || r.Identifiers["AGENT_TRX_ID"] != "1246" ||
		r.OriginalRequestID != "5b8e438f-fac1-4103-9e0e-ebfdc38b5acb" || r.PaidAt.Format(TimestampLayout) != "2021-08-12T07:06:28Z" {
		t.Fatalf("unexpected report %+v", r)
	}
}

func TestParseNotificationLenientAndStrict(t *testing.T) {
	ok := []struct{ name, body string }{
		{"amount as string", `{"order":{"invoice_number":"A","amount":"150000"},"transaction":{"status":"SUCCESS"}}`},
		{"amount with zero fraction", `{"order":{"invoice_number":"A","amount":"150000.00"},"transaction":{"status":"SUCCESS"}}`},
		{"payment code as number", `{"order":{"invoice_number":"A","amount":150000},"transaction":{"status":"SUCCESS"},"online_to_offline_info":{"payment_code":8888123}}`},
		{"unknown fields", `{"order":{"invoice_number":"A","amount":150000,"x":1},"transaction":{"status":"SUCCESS"},"new":{"a":[1]}}`},
		{"failed status without amount", `{"order":{"invoice_number":"A"},"transaction":{"status":"FAILED"}}`},
	}
	for _, tc := range ok {
		if r, err := ParseNotification([]byte(tc.body)); err != nil || (r.DokuStatus == invoice.DokuSuccess && r.Amount != 150000) {
			t.Errorf("%s: %+v %v", tc.name, r, err)
		}
	}
	// Readable, so never lost as malformed: an amount that is not whole rupiah is reported as such
	// (Amount 0 matches no invoice: a mismatch for a person), and a date we cannot read falls back to
	// the time of receipt while its text is kept.
	forgiven := []struct{ name, body, amount, date string }{
		{"fractional amount", `{"order":{"invoice_number":"A","amount":"150000.50"},"transaction":{"status":"SUCCESS"}}`, "150000.50", ""},
		{"fractional number", `{"order":{"invoice_number":"A","amount":150000.5},"transaction":{"status":"SUCCESS"}}`, "150000.5", ""},
		{"negative amount", `{"order":{"invoice_number":"A","amount":-5},"transaction":{"status":"SUCCESS"}}`, "-5", ""},
		{"overflowing amount", `{"order":{"invoice_number":"A","amount":99999999999999999999},"transaction":{"status":"SUCCESS"}}`, "99999999999999999999", ""},
		{"unreadable date", `{"order":{"invoice_number":"A","amount":150000},"transaction":{"status":"SUCCESS","date":"12/08/2021 14:06"}}`, "150000", "12/08/2021 14:06"},
	}
	for _, tc := range forgiven {
		r, err := ParseNotification([]byte(tc.body))
		if err != nil || r.AmountText != tc.amount || r.DateText != tc.date || !r.PaidAt.IsZero() {
			t.Errorf("%s: %+v %v", tc.name, r, err)
		}
		if tc.date == "" && r.Amount != 0 {
			t.Errorf("%s: amount %d, want 0 (not a whole rupiah amount)", tc.name, r.Amount)
		}
	}
	if r, err := ParseNotification([]byte(`{"order":{"invoice_number":"A","amount":1},"transaction":{"status":"SUCCESS","date":"20210812140628"}}`)); err != nil ||
		r.PaidAt.Format(TimestampLayout) != "2021-08-12T07:06:28Z" {
		t.Errorf("a WIB yyyyMMddHHmmss date: %+v %v", r, err)
	}
	// Text PostgreSQL refuses never reaches it: NUL and invalid UTF-8 become U+FFFD.
	r, err := ParseNotification([]byte("{\"order\":{\"invoice_number\":\"A\",\"amount\":1},\"transaction\":{\"status\":\"SUCCESS\"}," +
		"\"online_to_offline_payment\":{\"identifier\":[{\"name\":\"AGENT_TRX_ID\",\"value\":\"12\\u000034\xff\"}]}}"))
	if err != nil || r.Identifiers["AGENT_TRX_ID"] != "12\uFFFD34\uFFFD" {
		t.Errorf("identifiers with NUL and invalid UTF-8: %q %v", r.Identifiers, err)
	}
	bad := []struct{ name, body string }{
		{"not json", `hello`},
		{"truncated", `{"order":{"invoice_number":"A"`},
		{"array", `[]`},
		{"no invoice number", `{"order":{"amount":1},"transaction":{"status":"SUCCESS"}}`},
		{"no status", `{"order":{"invoice_number":"A","amount":1}}`},
		{"amount as object", `{"order":{"invoice_number":"A","amount":{}},"transaction":{"status":"SUCCESS"}}`},
		{"amount not a number", `{"order":{"invoice_number":"A","amount":"lots"},"transaction":{"status":"SUCCESS"}}`},
		{"amount with a huge exponent", `{"order":{"invoice_number":"A","amount":1e999999999},"transaction":{"status":"SUCCESS"}}`},
		{"duplicate key", `{"order":{"invoice_number":"A","amount":1,"amount":150000},"transaction":{"status":"SUCCESS"}}`},
		{"case-variant key", `{"order":{"invoice_number":"A","amount":1000,"AMOUNT":150000},"transaction":{"status":"SUCCESS"}}`},
		{"case-variant object", `{"order":{"invoice_number":"A","amount":1000},"ORDER":{"amount":150000},"transaction":{"status":"SUCCESS"}}`},
	}
	for _, tc := range bad {
		if _, err := ParseNotification([]byte(tc.body)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", tc.name, err)
		}
	}
}

func TestParseGenerateResponse(t *testing.T) {
	is, err := parseGenerateResponse([]byte(`{"order":{"invoice_number":"INV-1","amount":150000},"online_to_offline_info":{"payment_code":"0012345","how_to_pay_page":"https://p","how_to_pay_api":"https://a","created_date":"20240101080000","expired_date":"20240101090000","extra":true}}`), "INV-1", 150000)
	if err != nil {
		t.Fatal(err)
	}
	if is.PaymentCode != "0012345" || is.HowToPayPage != "https://p" || is.HowToPayAPI != "https://a" {
		t.Fatalf("unexpected %+v", is)
	}
	if got := is.ExpiresAt.Format(TimestampLayout); got != "2024-01-01T02:00:00Z" {
		t.Fatalf("expired_date 09:00 WIB = %s, want 02:00 UTC", got)
	}
	if _, err := parseGenerateResponse([]byte(`{"online_to_offline_info":{}}`), "INV-1", 150000); err == nil {
		t.Fatal("response without payment code accepted")
	}
	// An answer for another order or amount, or a code no one can read out, is not this invoice's.
	for _, body := range []string{
		`{"order":{"invoice_number":"INV-2","amount":150000},"online_to_offline_info":{"payment_code":"0012345"}}`,
		`{"order":{"invoice_number":"INV-1","amount":"10000.00"},"online_to_offline_info":{"payment_code":"0012345"}}`,
		`{"online_to_offline_info":{"payment_code":"0012\u00003"}}`,
		`{"online_to_offline_info":{"payment_code":"0012\n345"}}`,
	} {
		if _, err := parseGenerateResponse([]byte(body), "INV-1", 150000); !errors.Is(err, errNotOurCode) {
			t.Errorf("%s: %v, want errNotOurCode", body, err)
		}
	}
}

func TestAPIErrorClassification(t *testing.T) {
	for status, rejection := range map[int]bool{400: true, 401: true, 404: true, 409: false, 422: true, 408: false, 429: false, 500: false,
		502: false, 503: false, 201: false, 202: false, 204: false, 302: false} {
		err := error(apiError(status, []byte(`{"error":{"message":"nope"}}`)))
		if IsRejection(err) != rejection {
			t.Errorf("status %d: IsRejection = %v, want %v", status, !rejection, rejection)
		}
		if errors.Is(err, ErrUnavailable) == rejection {
			t.Errorf("status %d: errors.Is(ErrUnavailable) = %v", status, !rejection)
		}
	}
	if e := apiError(400, []byte(`{"error":{"message":"Invalid amount","code":"invalid_parameter"}}`)); e.Message != "Invalid amount" || e.Code != "invalid_parameter" {
		t.Fatalf("DOKU message not kept: %+v", e)
	}
	if e := apiError(502, []byte(`<html>bad gateway</html>`)); !strings.Contains(e.Message, "Bad Gateway") {
		t.Fatalf("fallback message = %q", e.Message)
	}
}

func TestParseStatusResponse(t *testing.T) {
	// The O2O sample of api/DOKU.md §5, reusable_status as a string.
	r, err := parseStatusResponse([]byte(`{"order":{"invoice_number":"INV-67220100000","amount":120000},"transaction":{"status":"SUCCESS","date":"2021-12-29T02:37:35Z","original_request_id":"INV-67220100000"},"service":{"id":"ONLINE_TO_OFFLINE"},"acquirer":{"id":"ALFA"},"channel":{"id":"ONLINE_TO_OFFLINE_ALFA"},"online_to_offline_info":{"created_date":"20211229093735","expired_date":"20211229100732","reusable_status":"false"},"online_to_offline_payment":{"identifier":[{"name":"AGENT_ID","value":"ALFAMART"}]}}`))
	// A check says that the code was paid, not which payment or when: its date is the code's creation.
	if err != nil || r.DokuStatus != "SUCCESS" || r.Amount != 120000 || r.Channel != invoice.ChannelAlfa || !r.PaidAt.IsZero() ||
		!r.Anonymous || len(r.Identifiers) != 0 {
		t.Fatalf("%+v %v", r, err)
	}
	for _, reusable := range []string{`true`, `"true"`, `false`, `"false"`} {
		body := `{"order":{"invoice_number":"A","amount":1},"transaction":{"status":"PENDING"},"online_to_offline_info":{"reusable_status":` + reusable + `}}`
		if _, err := parseStatusResponse([]byte(body)); err != nil {
			t.Errorf("reusable_status %s: %v", reusable, err)
		}
	}
	if _, err := parseStatusResponse([]byte(`{"error":{"message":"Order not found"}}`)); !IsRejection(err) {
		t.Fatalf("error body with 200: %v", err)
	}
	for _, bad := range []string{`nope`, `{"order":{"invoice_number":"A"},"transaction":{"status":"MAYBE"}}`} {
		if _, err := parseStatusResponse([]byte(bad)); !errors.Is(err, ErrUnavailable) {
			t.Errorf("%s: %v, want ErrUnavailable", bad, err)
		}
	}
}

// A 409 is DOKU saying it has seen this Request-Id: without a readable code in it, the outcome is
// unknown (retry, check status), never a refusal that would fail the invoice.
func TestConflictWithoutCodeIsNotARejection(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusConflict)
		_, _ = w.Write([]byte(`{"error":{"message":"Duplicate Request-Id"}}`))
	}))
	defer srv.Close()
	c := New(Config{BaseURL: srv.URL, ClientID: vecClientID, SecretKey: vecSecret, Timeout: time.Second})
	_, err := c.Issue(context.Background(), &invoice.Invoice{Number: "INV-1", Channel: invoice.ChannelAlfa, DokuRequestID: "r", DokuRequestBody: []byte(`{}`)})
	if !errors.Is(err, invoice.ErrDokuUnavailable) {
		t.Fatalf("409 without a code: %v, want doku_unavailable", err)
	}
}
