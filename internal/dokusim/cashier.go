package dokusim

import (
	"encoding/json"
	"html/template"
	"net/http"
	"strconv"
	"strings"
)

// The cashier page (GET /simulator) is the counter for a person: type the code a customer reads
// out, and the simulator takes the payment exactly as POST /simulator/payments does — the same
// checks, the same notification — and shows what happened. It makes the payment page's whole flow
// clickable on a laptop.

var cashierPage = template.Must(template.New("cashier").Parse(`<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>DOKU simulator · cashier</title>
<style>
*{box-sizing:border-box}
body{font:1rem/1.5 system-ui,sans-serif;max-width:34rem;margin:0 auto;padding:1rem;color:#1a1a1a}
label{display:block;font-weight:600;margin:1rem 0 .25rem}
input{font:inherit;font-size:1.5rem;font-family:ui-monospace,monospace;width:100%;padding:.5rem;border:2px solid #555;border-radius:.375rem}
button{font:inherit;font-weight:600;margin-top:.75rem;padding:.6rem 1.25rem;border:0;border-radius:.375rem;background:#1d4ed8;color:#fff;cursor:pointer}
:focus-visible{outline:3px solid #b45309;outline-offset:2px}
.ok{background:#e3f4e8;padding:.75rem 1rem;border-radius:.375rem}
.no{background:#fde8e8;padding:.75rem 1rem;border-radius:.375rem}
code{overflow-wrap:anywhere}
</style></head>
<body>
<header><p>DOKU simulator — not DOKU: a stand-in for local runs.</p></header>
<main>
<h1>Cashier</h1>
{{with .Paid}}<div class="ok" role="status"><p><strong>Paid {{.Amount}}</strong> for code <code>{{.Grouped}}</code> (invoice {{.Invoice}}, transaction {{.TrxID}}).</p>
<p>DOKU's notification to the service: {{if .Delivered}}delivered{{else if .Dropped}}dropped (fault drop_notifications){{else if .Delayed}}sent later (fault notify_delay_ms){{else}}not delivered yet; retried on the schedule{{end}}
{{- if .LastStatus}}, HTTP {{.LastStatus}}{{end}}{{with .Answer}}: <code>{{.}}</code>{{end}}.</p></div>{{end}}
{{with .Refused}}<div class="no" role="alert"><p><strong>Not paid</strong> (HTTP {{.Status}}): {{.Message}}</p></div>{{end}}
<form method="post" action="/simulator/cashier">
<label for="code">Payment code the customer reads out</label>
<input id="code" name="payment_code" inputmode="numeric" autocomplete="off" required value="{{.Typed}}">
<button type="submit">Take the payment</button>
</form>
<p>The cashier takes exactly the code's amount, refuses an expired code and a single-use code already paid, as <code>POST /simulator/payments</code> does.</p>
</main>
</body>
</html>
`))

type cashierView struct {
	Typed   string
	Paid    *cashierPaid
	Refused *cashierRefusal
}

// cashierPaid is a payment taken, with what became of its notification.
type cashierPaid struct {
	Amount, Invoice, TrxID      string
	Grouped                     string // the code, in groups of four as it is read out
	Delivered, Dropped, Delayed bool
	LastStatus                  int
	Answer                      string // the service's answer to the notification
}

type cashierRefusal struct {
	Status  int
	Message string
}

// cashier shows the cashier page.
func (s *Simulator) cashier(w http.ResponseWriter, r *http.Request) {
	renderCashier(w, http.StatusOK, cashierView{})
}

// cashierPay takes the payment typed into the cashier page, as POST /simulator/payments would.
func (s *Simulator) cashierPay(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 1<<12)
	typed := r.PostFormValue("payment_code")
	// A code is read out in groups ("8888 0000 0000 0001"); the cashier types the digits.
	code := strings.Map(func(c rune) rune {
		if c == ' ' || c == '-' || c == '.' {
			return -1
		}
		return c
	}, strings.TrimSpace(typed))
	v := cashierView{Typed: typed}
	if code == "" {
		v.Refused = &cashierRefusal{http.StatusBadRequest, "type the payment code"}
		renderCashier(w, http.StatusBadRequest, v)
		return
	}
	t, refused := s.takePayment(payRequest{PaymentCode: code})
	if refused != nil {
		var body struct {
			Error struct{ Message string } `json:"error"`
		}
		_ = json.Unmarshal(refused.body, &body)
		v.Refused = &cashierRefusal{refused.status, body.Error.Message}
		renderCashier(w, refused.status, v)
		return
	}
	d := s.send(r.Context(), t.notification)
	amount := ""
	if o := s.orderByCode(t.code); o != nil {
		amount = rupiah(o.Amount)
	}
	v.Typed = ""
	v.Paid = &cashierPaid{Amount: amount, Grouped: grouped(t.code), Invoice: t.invoiceNumber, TrxID: t.trxID,
		Delivered: d.Delivered, Dropped: d.Dropped, Delayed: d.Delayed, LastStatus: d.LastStatus, Answer: string(d.Answer)}
	renderCashier(w, http.StatusOK, v)
}

func renderCashier(w http.ResponseWriter, status int, v cashierView) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = cashierPage.Execute(w, v)
}

// grouped is a code in groups of four, as a customer reads it out.
func grouped(code string) string {
	var b strings.Builder
	for i, c := range code {
		if i > 0 && i%4 == 0 {
			b.WriteByte(' ')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// rupiah is an amount as a cashier says it: Rp150.000.
func rupiah(n int64) string {
	d := strconv.FormatInt(n, 10)
	var b strings.Builder
	for i, c := range d {
		if i > 0 && (len(d)-i)%3 == 0 {
			b.WriteByte('.')
		}
		b.WriteRune(c)
	}
	return "Rp" + b.String()
}
