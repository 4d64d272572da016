package invoice

import (
	"errors"
	"testing"
	"time"
)

func changeTypes(inv *Invoice) []ChangeType {
	var out []ChangeType
	for _, c := range inv.NewChanges {
		out = append(out, c.Type)
	}
	return out
}

func TestCancelTransitions(t *testing.T) {
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	inv := pendingInvoice(false)
	changed, err := inv.Cancel("out of stock", now, SourceAPI)
	if !changed || err != nil || inv.Status != StatusCancelled || inv.CancelReason != "out of stock" || !inv.CancelledAt.Equal(now) {
		t.Fatalf("cancel of a pending invoice: %v %v %+v", changed, err, inv)
	}
	changed, err = inv.Cancel("another reason", now.Add(time.Hour), SourceAPI)
	if changed || err != nil || inv.CancelReason != "out of stock" || !inv.CancelledAt.Equal(now) {
		t.Fatalf("cancel again: %v %v, reason %q at %v", changed, err, inv.CancelReason, inv.CancelledAt)
	}
	if got := changeTypes(inv); len(got) != 1 || got[0] != ChangeCancelled {
		t.Errorf("changes %v, want one invoice.cancelled", got)
	}
	// The customer pays the code DOKU could not withdraw.
	inv.NewChanges = nil
	if o := inv.ApplyPayment(report("TRX-1"), now.Add(time.Minute)); o != OutcomeApplied {
		t.Fatalf("payment of a cancelled invoice: %s", o)
	}
	if inv.Status != StatusPaid || !inv.PaidAfterCancel || len(inv.NewAttention) != 1 || inv.NewAttention[0].Reason != ReasonPaidAfterCancel {
		t.Errorf("paid after cancel: %s, flag %v, attention %+v", inv.Status, inv.PaidAfterCancel, inv.NewAttention)
	}
	// One change, one event: invoice.paid, carrying the payment that paid it.
	if got := changeTypes(inv); len(got) != 1 || got[0] != ChangePaid || inv.NewChanges[0].Payment != 0 {
		t.Errorf("changes %v (%+v), want one invoice.paid about payment 0", got, inv.NewChanges)
	}
	// A second payment of the paid single-use code changes no status: it is payment.recorded.
	inv.NewChanges = nil
	inv.ApplyPayment(report("TRX-2"), now.Add(2*time.Minute))
	if got := changeTypes(inv); len(got) != 1 || got[0] != ChangePaymentRecorded || inv.NewChanges[0].Payment != 1 {
		t.Errorf("second payment: changes %v (%+v), want one payment.recorded about payment 1", got, inv.NewChanges)
	}
	for _, st := range []Status{StatusPaid, StatusExpired, StatusFailed} {
		settled := &Invoice{Status: st}
		if _, err := settled.Cancel("x", now, SourceAPI); !errors.Is(err, ErrNotCancellable) {
			t.Errorf("cancel of a %s invoice: %v", st, err)
		}
	}
}

// A code DOKU issues after the invoice was cancelled is kept, so that its payment finds the invoice.
func TestCodeIssuedAfterCancelIsKept(t *testing.T) {
	inv := &Invoice{Status: StatusCreating}
	if _, err := inv.Cancel("changed mind", time.Now(), SourceAPI); err != nil {
		t.Fatal(err)
	}
	if inv.MarkIssued(Issued{PaymentCode: "8888", ExpiresAt: time.Now().Add(time.Hour)}, SourceAPI) {
		t.Error("MarkIssued moved a cancelled invoice")
	}
	if inv.Status != StatusCancelled || inv.PaymentCode != "8888" || inv.ExpiresAt == nil {
		t.Errorf("after the code came: %s %q", inv.Status, inv.PaymentCode)
	}
	p := CheckPolicy{Schedule: []time.Duration{time.Minute}, Grace: time.Hour, Window: 7 * 24 * time.Hour}
	if !inv.MayChange(time.Now(), p) || inv.MayChange(inv.ExpiresAt.Add(2*time.Hour), p) {
		t.Error("a cancelled invoice's code is checked until it expires and the grace period after, and no longer")
	}
}

func TestDeliveryPolicy(t *testing.T) {
	p := DeliveryPolicy{BaseBackoff: time.Second, MaxBackoff: time.Minute, RetryPeriod: time.Hour}
	queued := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	job := Job{QueuedAt: queued}
	if st, _ := p.Next(job, AttemptAcknowledged, queued); st != DeliveryDelivered {
		t.Errorf("2xx: %s", st)
	}
	if st, _ := p.Next(job, AttemptUndeliverable, queued); st != DeliveryDead {
		t.Errorf("an undeliverable attempt leaves the delivery %s, want dead at once", st)
	}
	if st, at := p.Next(job, AttemptGone, queued); st != DeliveryPending || !at.Equal(queued) {
		t.Errorf("410: %s at %v (it waits, pending, for the endpoint to be enabled)", st, at)
	}
	for attempts, want := range map[int]time.Duration{0: time.Second, 1: 2 * time.Second, 3: 8 * time.Second, 10: time.Minute} {
		job.Attempts = attempts
		for i := 0; i < 50; i++ {
			st, at := p.Next(job, AttemptFailed, queued)
			if wait := at.Sub(queued); st != DeliveryPending || wait < want/2 || wait > want {
				t.Fatalf("after %d failures: %s in %s, want pending within [%s, %s]", attempts+1, st, wait, want/2, want)
			}
		}
	}
	if st, _ := p.Next(job, AttemptFailed, queued.Add(time.Hour)); st != DeliveryDead {
		t.Errorf("a failure at the end of the retry period: %s, want dead", st)
	}
}
