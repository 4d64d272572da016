package worker_test

import (
	"testing"
	"time"

	"github.com/merchant/o2o/internal/apitest"
	"github.com/merchant/o2o/internal/config"
	"github.com/merchant/o2o/internal/dokusim"
	"github.com/merchant/o2o/internal/invoice"
)

// A status check of a reusable code says that it was paid, never which payment (the simulator
// answers exactly as DOKU documents it). Whichever of the webhook and the poll sees a payment first,
// it is one payment; distinct payments all count; a payment only polls report is recorded once and
// shown to a person.
func TestReusablePaymentsAgainstDokusDocumentedCheckStatus(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, apitest.Options{})

	t.Run("webhook then poll", func(t *testing.T) {
		inv := createPending(t, s, "INV-RU-WP", reusable)
		s.Pay(inv.PaymentCode, inv.Amount)
		s.Reconcile(3)
		if got := mustGet(t, s, inv.Number); len(got.Payments) != 1 || got.TotalPaid() != 150000 {
			t.Fatalf("payments %+v", got.Payments)
		}
	})

	t.Run("poll then webhook", func(t *testing.T) {
		inv := createPending(t, s, "INV-RU-PW", reusable)
		s.Sim.SetFaults(dokusim.Faults{DropNotifications: true})
		paid := s.Pay(inv.PaymentCode, inv.Amount)
		s.Sim.SetFaults(dokusim.Faults{})
		s.Reconcile(2)
		if got := mustGet(t, s, inv.Number); len(got.Payments) != 1 || got.Status != invoice.StatusPaid {
			t.Fatalf("after the poll: %s %+v", got.Status, got.Payments)
		}
		if open := s.Attention("state=open&invoice_number=" + inv.Number); len(open) != 1 || open[0].Reason != "unidentified_payment" {
			t.Fatalf("a payment only a poll has seen is not shown to a person: %v", open)
		}
		// DOKU's notification arrives late: it names the payment the poll recorded.
		body := apitest.NotificationBody(inv.Number, "alfa", inv.PaymentCode, inv.Amount, paid.TransactionID)
		if r := s.Notify(body, "late-notification", nil); r.Status != 200 || r.Ack(t).Outcome != "identified" {
			t.Fatalf("late notification: %d %s", r.Status, r.Body)
		}
		got := mustGet(t, s, inv.Number)
		if len(got.Payments) != 1 || got.TotalPaid() != 150000 || got.Payments[0].Identifiers["AGENT_TRX_ID"] != paid.TransactionID {
			t.Fatalf("poll then webhook: %+v", got.Payments)
		}
		if open := s.Attention("state=open&invoice_number=" + inv.Number); len(open) != 0 {
			t.Fatalf("the notification explained the payment, yet items stay open: %v", open)
		}
		if done := s.Attention("state=resolved&invoice_number=" + inv.Number); len(done) != 1 || done[0].ResolvedBy != "system" {
			t.Fatalf("resolved: %v", done)
		}
	})

	t.Run("three payments with polls in between", func(t *testing.T) {
		inv := createPending(t, s, "INV-RU-3", reusable)
		for i := 0; i < 3; i++ {
			s.Pay(inv.PaymentCode, inv.Amount)
			s.Reconcile(2)
		}
		got := s.GET("/v1/invoices/" + inv.Number).Invoice(t)
		if len(got.Payments) != 3 || got.TotalPaid != 450000 {
			t.Fatalf("three payments: %v", got)
		}
		if open := s.Attention("invoice_number=" + inv.Number); len(open) != 0 {
			t.Fatalf("flagged %v", open)
		}
	})

	t.Run("a payment only polls report", func(t *testing.T) {
		inv := createPending(t, s, "INV-RU-POLL", reusable)
		s.Sim.SetFaults(dokusim.Faults{DropNotifications: true})
		defer s.Sim.SetFaults(dokusim.Faults{})
		s.Pay(inv.PaymentCode, inv.Amount)
		s.Reconcile(10)
		if got := mustGet(t, s, inv.Number); len(got.Payments) != 1 || got.TotalPaid() != 150000 {
			t.Fatalf("payments %+v", got.Payments)
		}
		open := s.Attention("state=open&reason=unidentified_payment&invoice_number=" + inv.Number)
		if len(open) != 1 || open[0].Source != "reconciler" {
			t.Fatalf("ten polls: %v, want one item", open)
		}
	})
}

// Expiry runs on our own clock: whatever DOKU's check status does — 404, 500, FAILED — an invoice
// past its expiry and the grace period is expired, and money that comes later is still recorded,
// paid after expiry, and shown to a person.
func TestExpiryOnOurClockWhateverDokuAnswers(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, apitest.Options{Config: func(c *config.Config) { c.ExpiryGrace = time.Hour }})
	for i, fault := range []dokusim.Faults{
		{FailNext: 100, FailStatus: 404, FailMessage: "Order not found"},
		{FailNext: 100, FailStatus: 500},
		{StatusAnswer: "FAILED"},
	} {
		number := []string{"INV-CLK-404", "INV-CLK-500", "INV-CLK-FAILED"}[i]
		inv := createPending(t, s, number, nil)
		s.Sim.SetFaults(fault)
		// Within the grace period DOKU's trouble changes nothing.
		setExpiry(t, s, number, -30*time.Minute)
		s.Reconcile(1)
		if got := mustGet(t, s, number); got.Status != invoice.StatusPending {
			t.Fatalf("%s within grace: %s", number, got.Status)
		}
		// Three days past expiry: expired, and kept on the slow schedule for late money.
		setExpiry(t, s, number, -72*time.Hour)
		s.Reconcile(1)
		got := mustGet(t, s, number)
		if got.Status != invoice.StatusExpired || !got.ExpiredByGrace {
			t.Fatalf("%s past expiry and grace while DOKU answers %+v: %s", number, fault, got.Status)
		}
		if c := s.Count(`SELECT count(*) FROM invoices WHERE invoice_number = $1 AND next_check_at IS NOT NULL`, number); c != 1 {
			t.Fatalf("%s left the schedule", number)
		}
		s.Sim.SetFaults(dokusim.Faults{})
		s.PayWith(inv.PaymentCode, inv.Amount, apitest.PayOptions{Late: true})
		paid := s.GET("/v1/invoices/" + number).Invoice(t)
		if paid.Status != "paid" || !paid.PaidAfterExpiry {
			t.Fatalf("%s late payment: %v", number, paid)
		}
		if items := s.Attention("reason=paid_after_expiry&invoice_number=" + number); len(items) != 1 {
			t.Fatalf("%s late payment not flagged: %v", number, items)
		}
	}
	if n := s.Count(`SELECT count(*) FROM invoices WHERE status = 'pending'`); n != 0 {
		t.Fatalf("%d invoices still pending", n)
	}
}
