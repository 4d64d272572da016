package dokusim_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/merchant/o2o/internal/doku"
	"github.com/merchant/o2o/internal/invoice"
)

// how_to_pay_api answers each code's steps, in Indonesian, for its channel's stores, in the shape the
// service's client (and DOKU's WooCommerce plugin) reads.
func TestHowToPayAPIPerChannel(t *testing.T) {
	_, base := startSim(t, "http://127.0.0.1:1/n", nil)
	c := doku.New(doku.Config{BaseURL: base, ClientID: clientID, SecretKey: secret, Timeout: 2 * time.Second})
	ctx := context.Background()
	for ch, store := range map[invoice.Channel]string{invoice.ChannelAlfa: "Alfamart, Alfamidi, Lawson atau Dan+Dan", invoice.ChannelIndomaret: "Indomaret"} {
		is, err := c.GeneratePaymentCode(ctx, ch, "req-"+string(ch), body("INV-"+string(ch)))
		if err != nil {
			t.Fatal(err)
		}
		ins, err := c.HowToPay(ctx, is.HowToPayAPI)
		if err != nil || len(ins) != 1 {
			t.Fatalf("%s: %v %+v", ch, err, ins)
		}
		all := strings.Join(ins[0].Steps, "\n")
		if !strings.Contains(all, store) || !strings.Contains(all, is.PaymentCode) || !strings.Contains(all, "kasir") {
			t.Errorf("%s: the steps do not name the stores and the code, in Indonesian:\n%s", ch, all)
		}
	}
	if _, err := c.HowToPay(ctx, base+"/simulator/how-to-pay-api/0000"); err == nil {
		t.Error("an unknown code has instructions")
	}
}

// The cashier page takes a code as a person types it — in groups — pays it as POST
// /simulator/payments does, says what the service answered, and refuses what a cashier refuses.
func TestCashierPage(t *testing.T) {
	var notified atomic.Int32
	merchant := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		notified.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"outcome":"applied"}`))
	}))
	defer merchant.Close()
	_, base := startSim(t, merchant.URL+"/hook", nil)
	_, out := signedPost(t, base, doku.PathAlfaGenerate, "r1", body("INV-1"), secret)
	var gen doku.GenerateResponse
	if err := json.Unmarshal(out, &gen); err != nil {
		t.Fatal(err)
	}
	code := string(gen.O2OInfo.PaymentCode)

	resp, err := http.Get(base + "/simulator")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(page), `action="/simulator/cashier"`) || !strings.Contains(string(page), `name="payment_code"`) {
		t.Fatalf("GET /simulator: HTTP %d\n%s", resp.StatusCode, page)
	}

	pay := func(typed string) (int, string) {
		resp, err := http.PostForm(base+"/simulator/cashier", url.Values{"payment_code": {typed}})
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	grouped := code[:4] + " " + code[4:8] + " " + code[8:12] + " " + code[12:]
	status, got := pay(grouped)
	if status != http.StatusOK || !strings.Contains(got, "Paid Rp150.000") || !strings.Contains(got, "delivered") || !strings.Contains(got, "HTTP 200") ||
		!strings.Contains(got, "applied") || notified.Load() != 1 {
		t.Fatalf("paying %q: HTTP %d, %d notifications\n%s", grouped, status, notified.Load(), got)
	}
	if status, got := pay(code); status != http.StatusConflict || !strings.Contains(got, "already been paid") {
		t.Errorf("paying again: HTTP %d\n%s", status, got)
	}
	if status, _ := pay("9999 0000"); status != http.StatusNotFound {
		t.Errorf("an unknown code: HTTP %d", status)
	}
	if status, _ := pay("  "); status != http.StatusBadRequest {
		t.Errorf("no code: HTTP %d", status)
	}
}
