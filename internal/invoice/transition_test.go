package invoice

import (
	"encoding/json"
	"testing"
	"time"
)

func pendingInvoice(reusable bool) *Invoice {
	exp := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	return &Invoice{Number: "INV-1", Channel: ChannelAlfa, Amount: 150000, Status: StatusPending,
		PaymentCode: "888801", Reusable: reusable, ExpiresAt: &exp}
}

func report(trx string) PaymentReport {
	return PaymentReport{InvoiceNumber: "INV-1", Channel: ChannelAlfa, PaymentCode: "888801", Amount: 150000,
		DokuStatus: DokuSuccess, PaidAt: time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC), Source: SourceWebhook,
		Identifiers: map[string]string{"AGENT_TRX_ID": trx}}
}

func TestApplyPaymentRules(t *testing.T) {
	now := time.Date(2026, 1, 1, 11, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		inv    func() *Invoice
		r      func() PaymentReport
		want   Outcome
		status Status
	}{
		{"pending paid", func() *Invoice { return pendingInvoice(false) }, func() PaymentReport { return report("1") }, OutcomeApplied, StatusPaid},
		{"amount differs", func() *Invoice { return pendingInvoice(false) }, func() PaymentReport { r := report("1"); r.Amount = 149999; return r }, OutcomeAmountMismatch, StatusPending},
		{"channel differs", func() *Invoice { return pendingInvoice(false) }, func() PaymentReport { r := report("1"); r.Channel = ChannelIndomaret; return r }, OutcomeChannelMismatch, StatusPending},
		{"unknown channel", func() *Invoice { return pendingInvoice(false) }, func() PaymentReport { r := report("1"); r.Channel = "doku:X"; return r }, OutcomeChannelMismatch, StatusPending},
		{"code differs", func() *Invoice { return pendingInvoice(false) }, func() PaymentReport { r := report("1"); r.PaymentCode = "888802"; return r }, OutcomeCodeMismatch, StatusPending},
		{"code absent is not checked", func() *Invoice { return pendingInvoice(false) }, func() PaymentReport { r := report("1"); r.PaymentCode = ""; return r }, OutcomeApplied, StatusPaid},
		{"failed status ignored", func() *Invoice { return pendingInvoice(false) }, func() PaymentReport { r := report("1"); r.DokuStatus = DokuFailed; return r }, OutcomeIgnoredStatus, StatusPending},
		{"creating has no code to check", func() *Invoice {
			inv := pendingInvoice(false)
			inv.Status = StatusCreating
			inv.PaymentCode = ""
			return inv
		}, func() PaymentReport { return report("1") }, OutcomeNotIssued, StatusCreating},
		{"failed invoice", func() *Invoice { inv := pendingInvoice(false); inv.Status = StatusFailed; return inv }, func() PaymentReport { return report("1") }, OutcomeNotIssued, StatusFailed},
		{"expired then paid", func() *Invoice { inv := pendingInvoice(false); inv.Status = StatusExpired; return inv }, func() PaymentReport { return report("1") }, OutcomeApplied, StatusPaid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			inv := tc.inv()
			before := len(inv.Payments)
			if got := inv.ApplyPayment(tc.r(), now); got != tc.want {
				t.Fatalf("outcome %s, want %s", got, tc.want)
			}
			if inv.Status != tc.status {
				t.Fatalf("status %s, want %s", inv.Status, tc.status)
			}
			if tc.want != OutcomeApplied && len(inv.Payments) != before {
				t.Fatal("a payment was recorded without being applied")
			}
		})
	}
}

func TestApplyPaymentOnceForSingleUseCode(t *testing.T) {
	inv := pendingInvoice(false)
	now := time.Now()
	if inv.ApplyPayment(report("1"), now) != OutcomeApplied {
		t.Fatal("first payment not applied")
	}
	paidAt := *inv.PaidAt
	// A retry, and even a report with another store transaction, cannot pay a single-use code twice.
	for _, trx := range []string{"1", "2"} {
		if got := inv.ApplyPayment(report(trx), now); got != OutcomeDuplicate {
			t.Fatalf("trx %s: outcome %s, want duplicate", trx, got)
		}
	}
	if len(inv.Payments) != 1 || inv.TotalPaid() != 150000 || !inv.PaidAt.Equal(paidAt) {
		t.Fatalf("payments %v, paid at %v", inv.Payments, inv.PaidAt)
	}
}

func TestApplyPaymentReusableCode(t *testing.T) {
	inv := pendingInvoice(true)
	now := time.Now()
	for _, trx := range []string{"1", "2", "1", "3", "2"} {
		inv.ApplyPayment(report(trx), now)
	}
	if len(inv.Payments) != 3 || inv.TotalPaid() != 450000 {
		t.Fatalf("reusable code: %d payments, total %d; want 3 and 450000", len(inv.Payments), inv.TotalPaid())
	}
	// Without a store transaction id the payment time tells payments apart.
	r := report("")
	r.Identifiers, r.PaidAt = nil, r.PaidAt.Add(time.Minute)
	if inv.ApplyPayment(r, now) != OutcomeApplied || inv.ApplyPayment(r, now) != OutcomeDuplicate {
		t.Fatal("payments without AGENT_TRX_ID are not deduplicated by time")
	}
}

func TestPaidAfterExpiryIsFlagged(t *testing.T) {
	inv := pendingInvoice(false)
	inv.Status = StatusExpired
	inv.ApplyPayment(report("1"), time.Now())
	if !inv.PaidAfterExpiry || inv.Status != StatusPaid {
		t.Fatalf("status %s, paid_after_expiry %v", inv.Status, inv.PaidAfterExpiry)
	}
}

func TestMarkIssuedAndFailedOnlyFromCreating(t *testing.T) {
	inv := &Invoice{Status: StatusCreating}
	if !inv.MarkIssued(Issued{PaymentCode: "1", ExpiresAt: time.Now()}, SourceAPI) || inv.Status != StatusPending {
		t.Fatal("creating -> pending refused")
	}
	if inv.MarkIssued(Issued{PaymentCode: "2"}, SourceAPI) || inv.PaymentCode != "1" {
		t.Fatal("a second issue replaced the code")
	}
	if inv.MarkFailed("x", "y", SourceAPI) || inv.Status != StatusPending {
		t.Fatal("a pending invoice was failed")
	}
	inv = &Invoice{Status: StatusCreating}
	if !inv.MarkFailed("doku_rejected", "no", SourceAPI) || inv.Status != StatusFailed || inv.FailureMessage != "no" {
		t.Fatal("creating -> failed refused")
	}
}

func TestValidateAppliesDefaultsAndNormalises(t *testing.T) {
	req := CreateRequest{InvoiceNumber: "INV-1", Channel: "alfa", Amount: json.RawMessage("150000"),
		Customer: &Customer{Name: "  Taufik  "}, Metadata: json.RawMessage(`{ "a" : 1 }`)}
	inv, err := req.Validate(DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	if inv.ExpiresInMinutes != 60 || inv.Reusable || inv.Customer.Name != "Taufik" || string(inv.Metadata) != `{"a":1}` || inv.Status != StatusCreating {
		t.Fatalf("unexpected %+v", inv)
	}
	lim := DefaultLimits
	lim.AmountMin, lim.AmountMax = 1, 999_999_999_999
	req.Amount = json.RawMessage("999999999999")
	if _, err := req.Validate(lim); err != nil {
		t.Fatalf("12-digit amount within configured bounds refused: %v", err)
	}
}

func TestSameRequest(t *testing.T) {
	a := &Invoice{Number: "1", Channel: ChannelAlfa, Amount: 10, Metadata: json.RawMessage(`{"a":1,"b":[1,2]}`)}
	b := *a
	b.Metadata = json.RawMessage(`{"b": [1, 2], "a": 1}`)
	if !a.SameRequest(&b) {
		t.Fatal("metadata with reordered keys is the same request")
	}
	for name, mutate := range map[string]func(*Invoice){
		"amount":   func(i *Invoice) { i.Amount++ },
		"channel":  func(i *Invoice) { i.Channel = ChannelIndomaret },
		"customer": func(i *Invoice) { i.Customer.Email = "x@y.z" },
		"expiry":   func(i *Invoice) { i.ExpiresInMinutes = 61 },
		"reusable": func(i *Invoice) { i.Reusable = true },
		"metadata": func(i *Invoice) { i.Metadata = json.RawMessage(`{"a":2,"b":[1,2]}`) },
		"no meta":  func(i *Invoice) { i.Metadata = nil },
		"footer":   func(i *Invoice) { i.ReceiptFooter = "x" },
		"info":     func(i *Invoice) { i.Info = "x" },
	} {
		c := *a
		mutate(&c)
		if a.SameRequest(&c) {
			t.Errorf("%s differs but SameRequest is true", name)
		}
	}
}

func TestApplyCheck(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 30, 0, 0, time.UTC) // the invoice expires at 12:00
	grace := time.Hour
	check := func(inv *Invoice, status string) Outcome {
		r := report("1")
		r.DokuStatus, r.PaymentCode, r.Source = status, "", SourceReconciler
		return inv.ApplyCheck(r, now, grace)
	}
	if inv := pendingInvoice(false); check(inv, DokuSuccess) != OutcomeApplied || inv.Status != StatusPaid || inv.Payments[0].Source != SourceReconciler {
		t.Fatalf("SUCCESS: %+v", inv)
	}
	if inv := pendingInvoice(false); check(inv, DokuExpired) != OutcomeExpired || inv.Status != StatusExpired || inv.ExpiredByGrace {
		t.Fatalf("EXPIRED: %+v", inv)
	}
	if inv := pendingInvoice(false); check(inv, DokuPending) != OutcomeUnchanged || inv.Status != StatusPending {
		t.Fatalf("PENDING within grace: %+v", inv)
	}
	now = now.Add(time.Hour)
	if inv := pendingInvoice(false); check(inv, DokuPending) != OutcomeExpired || !inv.ExpiredByGrace {
		t.Fatalf("PENDING past grace: %+v", inv)
	}
	paid := pendingInvoice(false)
	check(paid, DokuSuccess)
	if check(paid, DokuExpired) != OutcomeUnchanged || paid.Status != StatusPaid {
		t.Fatal("EXPIRED after paid changed a paid invoice")
	}
	if check(pendingInvoice(false), "WHATEVER") != OutcomeIgnoredStatus {
		t.Fatal("unknown status not ignored")
	}
}

// A reusable code's payment reported by the webhook (with the store's transaction id) and by a status
// check (DOKU's check status shows only AGENT_ID) is one payment.
func TestReusablePaymentSeenByWebhookAndPollIsOne(t *testing.T) {
	inv := pendingInvoice(true)
	at := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	hook := report("1246")
	hook.PaidAt = at
	poll := report("")
	poll.PaidAt, poll.PaymentCode, poll.Source = at, "", SourceReconciler
	poll.Identifiers = map[string]string{"AGENT_ID": "ALFAMART"}
	if inv.ApplyPayment(hook, at) != OutcomeApplied || inv.ApplyPayment(poll, at) != OutcomeDuplicate {
		t.Fatalf("the same payment was recorded twice: %+v", inv.Payments)
	}
	// Two real payments in the same second, told apart by their transaction ids.
	other := report("1247")
	other.PaidAt = at
	if inv.ApplyPayment(other, at) != OutcomeApplied || len(inv.Payments) != 2 || inv.TotalPaid() != 300000 {
		t.Fatalf("a second payment was lost: %+v", inv.Payments)
	}
	// And the other way round: polled first, then notified.
	inv = pendingInvoice(true)
	if inv.ApplyPayment(poll, at) != OutcomeApplied || inv.ApplyPayment(hook, at) != OutcomeDuplicate {
		t.Fatalf("the same payment was recorded twice: %+v", inv.Payments)
	}
	// A reusable payment with neither time nor transaction id nor Request-Id cannot be identified.
	blind := report("")
	blind.PaidAt, blind.Identifiers, blind.RequestID = time.Time{}, nil, ""
	if got := inv.ApplyPayment(blind, at); got != OutcomeUnidentified || !got.Mismatch() {
		t.Fatalf("unidentifiable payment: %s", got)
	}
}

func TestStatusAnswerForAnotherInvoiceIsFlagged(t *testing.T) {
	inv := pendingInvoice(false)
	r := report("1")
	r.InvoiceNumber = "INV-OTHER"
	if got := inv.ApplyCheck(r, time.Now(), time.Hour); got != OutcomeInvoiceMismatch || inv.Status != StatusPending {
		t.Fatalf("outcome %s, status %s", got, inv.Status)
	}
}
