package dokusim

import (
	"fmt"
	"html"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/merchant/o2o/internal/doku"
	"github.com/merchant/o2o/internal/invoice"
)

func (s *Simulator) statusOf(o *order, now time.Time) string {
	switch {
	case len(o.Payments) > 0:
		return invoice.DokuSuccess
	case !now.Before(o.ExpiresAt):
		return invoice.DokuExpired
	}
	return invoice.DokuPending
}

// checkStatus answers in exactly the shape of DOKU's documented O2O sample, and no more: the
// transaction date is the code's creation time, the only identifier is AGENT_ID, and there is no
// payment code. So, as with DOKU, a check says that a code was paid, never which payment — a client
// that needs more from it is wrong about DOKU.
func (s *Simulator) checkStatus(w http.ResponseWriter, r *http.Request) {
	s.statusCalls.Add(1)
	if err := s.verify(r, nil); err != nil {
		dokuError(w, http.StatusUnauthorized, "invalid_signature", err.Error())
		return
	}
	if fault, ok := s.takeFault(r.Context()); ok {
		fault(w)
		return
	}
	id := chi.URLParam(r, "id")
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.state.Orders[id]
	if o == nil {
		for _, cand := range s.state.Orders {
			if cand.RequestID == id {
				o = cand
				break
			}
		}
	}
	if o == nil {
		dokuError(w, http.StatusNotFound, "invoice_not_found", "Order not found")
		return
	}
	status := s.statusOf(o, s.now())
	if s.faults.StatusAnswer != "" {
		status = s.faults.StatusAnswer
	}
	answer := map[string]any{
		"order": map[string]any{"invoice_number": o.InvoiceNumber, "amount": o.Amount},
		"transaction": map[string]any{"status": status, "date": o.CreatedAt.UTC().Format(doku.TimestampLayout),
			"original_request_id": o.RequestID},
		"service":  map[string]string{"id": doku.ServiceO2O},
		"acquirer": map[string]string{"id": doku.AcquirerID(o.Channel)},
		"channel":  map[string]string{"id": doku.ChannelID(o.Channel)},
		"online_to_offline_info": map[string]any{
			"created_date":    doku.FormatWIB(o.CreatedAt),
			"expired_date":    doku.FormatWIB(o.ExpiresAt),
			"reusable_status": fmt.Sprint(o.Reusable), // a string here, as DOKU sends it
		},
	}
	if status == invoice.DokuSuccess {
		answer["online_to_offline_payment"] = map[string]any{"identifier": []map[string]string{{"name": "AGENT_ID", "value": agent(o.Channel)}}}
	}
	writeJSON(w, http.StatusOK, answer)
}

func agent(ch invoice.Channel) string {
	if ch == invoice.ChannelIndomaret {
		return "INDOMARET"
	}
	return "ALFAMART"
}

func identifiers(ch invoice.Channel, trxID string) []map[string]string {
	return []map[string]string{
		{"name": "AGENT_ID", "value": agent(ch)},
		{"name": "AGENT_STORE_ID", "value": "SIM-STORE-01"},
		{"name": "AGENT_TRX_ID", "value": trxID},
	}
}

// howToPaySteps are the simulator's instructions for a code, in Indonesian as DOKU's are, in the
// shape DOKU's WooCommerce plugin reads from how_to_pay_api: payment_instruction[], each a channel
// label and its step[]. The shape is inferred from that plugin; DOKU documents neither it nor the
// wording, so the wording is ours. The fee step is there because convenience stores commonly charge
// one and DOKU's instructions are where a customer would be told.
func howToPaySteps(o *order) []map[string]any {
	stores, label := "Alfamart, Alfamidi, Lawson atau Dan+Dan", "Alfamart / Alfamidi / Lawson / Dan+Dan"
	if o.Channel == invoice.ChannelIndomaret {
		stores, label = "Indomaret", "Indomaret"
	}
	return []map[string]any{{
		"channel": label,
		"step": []string{
			"Catat kode pembayaran Anda: " + o.PaymentCode + ".",
			"Datang ke gerai " + stores + " terdekat.",
			"Sampaikan kepada kasir bahwa Anda ingin melakukan pembayaran DOKU.",
			"Berikan kode pembayaran kepada kasir.",
			"Kasir akan menyebutkan jumlah yang harus dibayar, termasuk biaya administrasi bila ada.",
			"Bayar sesuai jumlah tersebut dan simpan struk sebagai bukti pembayaran.",
		},
	}}
}

// order is the order whose code is code, or nil.
func (s *Simulator) orderByCode(code string) *order {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state.byCode[code]
}

// howToPayPage is DOKU's how_to_pay_page: the same steps as a page a person reads.
func (s *Simulator) howToPayPage(w http.ResponseWriter, r *http.Request) {
	o := s.orderByCode(chi.URLParam(r, "code"))
	if o == nil {
		http.Error(w, "Kode pembayaran tidak ditemukan.", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	fmt.Fprint(w, `<!doctype html><html lang="id"><meta charset="utf-8"><title>Cara membayar</title>`)
	for _, in := range howToPaySteps(o) {
		fmt.Fprintf(w, "<h1>%s</h1><ol>", html.EscapeString(in["channel"].(string)))
		for _, step := range in["step"].([]string) {
			fmt.Fprintf(w, "<li>%s</li>", html.EscapeString(step))
		}
		fmt.Fprint(w, "</ol>")
	}
}

// howToPayAPI is DOKU's how_to_pay_api for a code: its steps as JSON (howToPaySteps).
func (s *Simulator) howToPayAPI(w http.ResponseWriter, r *http.Request) {
	s.howToPayCalls.Add(1)
	s.mu.Lock()
	unavailable := s.faults.HowToPayUnavailable
	s.mu.Unlock()
	if unavailable {
		dokuError(w, http.StatusServiceUnavailable, "simulated_fault", "Service Unavailable")
		return
	}
	o := s.orderByCode(chi.URLParam(r, "code"))
	if o == nil {
		dokuError(w, http.StatusNotFound, "not_found", "unknown payment code")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"payment_instruction": howToPaySteps(o)})
}
