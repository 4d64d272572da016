package invoice

import (
	"encoding/json"
	"errors"
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
		// Money for an invoice whose code DOKU refused is recorded, never dropped; the status stays.
		{"failed invoice", func() *Invoice {
			inv := pendingInvoice(false)
			inv.Status, inv.PaymentCode = StatusFailed, ""
			return inv
		}, func() PaymentReport { return report("1") }, OutcomeApplied, StatusFailed},
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
			// A mismatch, money for a failed invoice, money after expiry: each is one case for a person.
			wantFlags := 0
			if tc.want.Mismatch() || tc.status == StatusFailed || tc.name == "expired then paid" {
				wantFlags = 1
			}
			if len(inv.NewAttention) != wantFlags {
				t.Fatalf("flagged %+v, want %d item", inv.NewAttention, wantFlags)
			}
		})
	}
}

func reasons(inv *Invoice) []Reason {
	var out []Reason
	for _, a := range inv.NewAttention {
		out = append(out, a.Reason)
	}
	return out
}

// A mismatch is flagged once per report, however often that report comes: a notification by its
// evidence key, a status answer by what it says.
func TestMismatchesAreFlaggedOncePerReport(t *testing.T) {
	inv := pendingInvoice(false)
	now := time.Now()
	hook := report("1")
	hook.Amount, hook.AmountText, hook.EvidenceKey = 0, "150000.50", "notification:r1:abc"
	poll := report("")
	poll.Amount, poll.AmountText, poll.Anonymous, poll.Source = 15000, "15000", true, SourceReconciler
	for i := 0; i < 3; i++ {
		inv.ApplyPayment(hook, now)
		inv.ApplyPayment(poll, now)
	}
	keys := map[string]bool{}
	for _, a := range inv.NewAttention {
		if a.Reason != ReasonAmountMismatch || a.InvoiceNumber != "INV-1" || a.Evidence["reported_amount"] == nil {
			t.Fatalf("item %+v", a)
		}
		keys[a.Key] = true
	}
	if len(keys) != 2 || inv.Status != StatusPending || len(inv.Payments) != 0 {
		t.Fatalf("%d distinct cases (want 2), status %s, %d payments", len(keys), inv.Status, len(inv.Payments))
	}
}

// A single-use code is paid once: a retry or a status check is the same payment. A second, different
// store transaction is real money all the same — recorded, and flagged for a refund decision.
func TestSecondPaymentOfSingleUseCode(t *testing.T) {
	inv := pendingInvoice(false)
	now := time.Now()
	if inv.ApplyPayment(report("1"), now) != OutcomeApplied {
		t.Fatal("first payment not applied")
	}
	paidAt := *inv.PaidAt
	poll := report("")
	poll.Anonymous, poll.PaymentCode, poll.Identifiers = true, "", nil
	weak := report("")
	weak.Identifiers, weak.RequestID = nil, "other-request"
	for name, r := range map[string]PaymentReport{"retry": report("1"), "poll": poll, "without a transaction id": weak} {
		if got := inv.ApplyPayment(r, now); got != OutcomeDuplicate {
			t.Fatalf("%s: outcome %s, want duplicate", name, got)
		}
	}
	if len(inv.NewAttention) != 0 {
		t.Fatalf("flagged %+v", inv.NewAttention)
	}
	if got := inv.ApplyPayment(report("2"), now); got != OutcomeApplied {
		t.Fatalf("second transaction: %s", got)
	}
	if len(inv.Payments) != 2 || inv.TotalPaid() != 300000 || !inv.PaidAt.Equal(paidAt) || inv.Status != StatusPaid {
		t.Fatalf("payments %v, paid at %v", inv.Payments, inv.PaidAt)
	}
	if r := reasons(inv); len(r) != 1 || r[0] != ReasonSecondPayment {
		t.Fatalf("flags %v, want one second_payment", r)
	}
	if inv.ApplyPayment(report("2"), now) != OutcomeDuplicate || len(inv.NewAttention) != 1 {
		t.Fatal("the second payment's retry was not a duplicate")
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

// A payment whose time is after the code's expiry is paid after expiry — whether the invoice was
// already expired or still waited in the grace period — and a person decides about the order.
func TestPaidAfterExpiryIsFlagged(t *testing.T) {
	expired := pendingInvoice(false)
	expired.Status = StatusExpired
	late := report("1")
	late.PaidAt = expired.ExpiresAt.Add(time.Hour)
	expired.ApplyPayment(late, time.Now())
	if !expired.PaidAfterExpiry || expired.Status != StatusPaid {
		t.Fatalf("status %s, paid_after_expiry %v", expired.Status, expired.PaidAfterExpiry)
	}
	inGrace := pendingInvoice(false)
	r := report("1")
	r.PaidAt = inGrace.ExpiresAt.Add(time.Second)
	if inGrace.ApplyPayment(r, time.Now()) != OutcomeApplied || !inGrace.PaidAfterExpiry {
		t.Fatalf("a payment 1 s after expiry, within the grace period: paid_after_expiry %v", inGrace.PaidAfterExpiry)
	}
	if got := reasons(inGrace); len(got) != 1 || got[0] != ReasonPaidAfterExpiry {
		t.Fatalf("flags %v", got)
	}
	onTime := pendingInvoice(false)
	r.PaidAt = onTime.ExpiresAt.Add(-time.Second)
	if onTime.ApplyPayment(r, time.Now()); onTime.PaidAfterExpiry || len(onTime.NewAttention) != 0 {
		t.Fatal("a payment before expiry was flagged")
	}
	// A payment only a status check reports is dated when we learn of it.
	polled := pendingInvoice(false)
	poll := report("")
	poll.Anonymous, poll.PaidAt = true, time.Time{}
	if polled.ApplyPayment(poll, polled.ExpiresAt.Add(time.Minute)); !polled.PaidAfterExpiry {
		t.Fatal("a payment first seen after expiry by a check is not paid after expiry")
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

// testLimits are bounds for these tests (the service's come from its configuration).
var testLimits = Limits{AmountMin: 10_000, AmountMax: 5_000_000, ExpiryMinMinutes: 5, ExpiryMaxMinutes: 43200, ExpiryDefault: 60}

func TestValidateAppliesDefaultsAndNormalises(t *testing.T) {
	amount := int64(150000)
	d := Draft{Number: "INV-1", Channel: "alfa", Amount: &amount, Customer: &Customer{Name: "  Taufik  "}, Metadata: []byte(`{"a":1}`)}
	inv, err := d.Validate(testLimits)
	if err != nil {
		t.Fatal(err)
	}
	if inv.ExpiresInMinutes != 60 || inv.Reusable || inv.Customer.Name != "Taufik" || string(inv.Metadata) != `{"a":1}` || inv.Status != StatusCreating {
		t.Fatalf("unexpected %+v", inv)
	}
	lim := testLimits
	lim.AmountMin, lim.AmountMax = 1, 999_999_999_999
	amount = 999_999_999_999
	if _, err := d.Validate(lim); err != nil {
		t.Fatalf("12-digit amount within configured bounds refused: %v", err)
	}
	var invalid *ValidationError
	if _, err := (Draft{Channel: "ovo"}).Validate(testLimits); !errors.As(err, &invalid) || len(invalid.Fields) != 4 {
		t.Fatalf("every bad field at once: %v", err)
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
	// Our clock, not DOKU's answer, ends the wait: past the grace period FAILED, or a status we do not
	// know, expires the invoice as PENDING does; within it, they change nothing.
	for _, status := range []string{DokuFailed, "WHATEVER"} {
		if inv := pendingInvoice(false); check(inv, status) != OutcomeExpired || !inv.ExpiredByGrace {
			t.Fatalf("%s past grace: %+v", status, inv)
		}
	}
	now = now.Add(-time.Hour)
	if inv := pendingInvoice(false); check(inv, "WHATEVER") != OutcomeIgnoredStatus || inv.Status != StatusPending {
		t.Fatal("unknown status within grace changed the invoice")
	}
}

// A check says that a reusable code was paid, not which payment. Whichever of a notification and a
// check sees a payment first, it is one payment; distinct payments are never merged; a payment only
// a check has seen is recorded once and flagged until a notification names it.
func TestReusablePaymentsSeenByWebhookAndPoll(t *testing.T) {
	at := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	hook := func(trx string) PaymentReport {
		r := report(trx)
		r.PaidAt, r.RequestID = at, "req-"+trx
		return r
	}
	poll := report("")
	poll.PaymentCode, poll.Source, poll.Anonymous, poll.PaidAt = "", SourceReconciler, true, time.Time{}
	poll.Identifiers = map[string]string{"AGENT_ID": "ALFAMART"}

	// Webhook, then poll.
	inv := pendingInvoice(true)
	if inv.ApplyPayment(hook("1246"), at) != OutcomeApplied || inv.ApplyPayment(poll, at) != OutcomeDuplicate || len(inv.Payments) != 1 {
		t.Fatalf("webhook then poll: %+v", inv.Payments)
	}
	if len(inv.NewAttention) != 0 {
		t.Fatalf("flagged %+v", inv.NewAttention)
	}

	// Poll, then webhook: the notification names the payment the poll recorded.
	inv = pendingInvoice(true)
	if inv.ApplyPayment(poll, at) != OutcomeApplied || inv.Payments[0].DedupeKey != placeholderKey {
		t.Fatalf("poll: %+v", inv.Payments)
	}
	if r := reasons(inv); len(r) != 1 || r[0] != ReasonUnidentifiedPayment {
		t.Fatalf("a payment only a poll reports is not flagged: %v", r)
	}
	if inv.ApplyPayment(poll, at) != OutcomeDuplicate || len(inv.NewAttention) != 1 {
		t.Fatal("a second poll added to the first")
	}
	if got := inv.ApplyPayment(hook("1246"), at); got != OutcomeIdentified || len(inv.Payments) != 1 ||
		inv.Payments[0].Identifiers["AGENT_TRX_ID"] != "1246" || inv.TotalPaid() != 150000 {
		t.Fatalf("poll then webhook: %s, %+v", got, inv.Payments)
	}
	if len(inv.ResolvedAttention) != 1 || inv.ResolvedAttention[0].Key != inv.NewAttention[0].Key {
		t.Fatalf("the flag was not settled by the notification: %+v", inv.ResolvedAttention)
	}
	if inv.ApplyPayment(hook("1246"), at) != OutcomeDuplicate || inv.ApplyPayment(poll, at) != OutcomeDuplicate {
		t.Fatal("an identified payment was counted again")
	}

	// Three distinct payments with polls in between: three payments.
	inv = pendingInvoice(true)
	for _, trx := range []string{"1", "2", "3"} {
		inv.ApplyPayment(hook(trx), at)
		inv.ApplyPayment(poll, at)
	}
	if len(inv.Payments) != 3 || inv.TotalPaid() != 450000 || len(inv.NewAttention) != 0 {
		t.Fatalf("three payments: %+v, flags %+v", inv.Payments, inv.NewAttention)
	}

	// A notification without a store transaction id still names its payment, by time or Request-Id.
	weak := hook("")
	weak.Identifiers, weak.PaidAt = nil, time.Time{}
	if inv.ApplyPayment(weak, at) != OutcomeApplied || inv.ApplyPayment(weak, at) != OutcomeDuplicate {
		t.Fatal("a notification without AGENT_TRX_ID or date is not deduplicated by its Request-Id")
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

// When a notification names the payment a check recorded, the payment and the invoice take the
// notification's time of payment: the check only knew when we learnt of it.
func TestIdentifiedPaymentTakesTheNotifiedTime(t *testing.T) {
	inv := pendingInvoice(true)
	poll := report("")
	poll.Anonymous, poll.PaidAt = true, time.Time{}
	learnt := inv.ExpiresAt.Add(time.Minute)
	inv.ApplyPayment(poll, learnt)
	hook := report("T1")
	hook.PaidAt = inv.ExpiresAt.Add(-time.Hour)
	if inv.ApplyPayment(hook, learnt.Add(time.Minute)) != OutcomeIdentified {
		t.Fatal("not identified")
	}
	if !inv.Payments[0].PaidAt.Equal(hook.PaidAt) || !inv.PaidAt.Equal(hook.PaidAt) {
		t.Fatalf("payment paid at %v, invoice paid at %v, want %v", inv.Payments[0].PaidAt, inv.PaidAt, hook.PaidAt)
	}
}
