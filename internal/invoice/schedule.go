package invoice

import "time"

// CheckPolicy is when DOKU's check status is asked about an invoice. DOKU retries a notification only
// three times over twelve hours, so every invoice that can still change is also polled.
type CheckPolicy struct {
	// Schedule is the wait before the 1st, 2nd, … check; the last entry repeats. The first is no
	// sooner than a minute after the code is issued (DOKU asks for 60 s after a payment).
	Schedule []time.Duration
	// Grace is how long past its expiry a pending invoice waits for DOKU before our clock expires it.
	Grace time.Duration
	// Window is how long after its expiry an invoice that may still see money stays on the schedule:
	// a paid reusable code (more payments can come), and one expired by our grace period.
	Window time.Duration
}

// MayChange reports whether DOKU could still report something that changes inv, so that it is
// worth asking: a pending invoice; a paid reusable code, or an invoice our grace period expired, until
// the window after its expiry has passed; a cancelled invoice's code (DOKU cannot withdraw it) until
// it expires, and the grace period after.
func (inv *Invoice) MayChange(now time.Time, p CheckPolicy) bool {
	switch {
	case inv.Status == StatusPending:
		return true
	case inv.Status == StatusCancelled:
		return inv.PaymentCode != "" && inv.ExpiresAt != nil && inv.ExpiresAt.Add(p.Grace).After(now)
	case inv.Status == StatusPaid && inv.Reusable, inv.Status == StatusExpired && inv.ExpiredByGrace:
		return inv.ExpiresAt != nil && inv.ExpiresAt.Add(p.Window).After(now)
	}
	return false
}

// KeepSchedule keeps NextCheckAt true to what inv now is: none once it can no longer change, the
// first check for an invoice that just became checkable, and otherwise the check already planned.
// Every change goes through it, so "final" and "off the schedule" are the same thing.
func (inv *Invoice) KeepSchedule(now time.Time, p CheckPolicy) {
	switch {
	case !inv.MayChange(now, p):
		inv.NextCheckAt = nil
	case inv.NextCheckAt == nil:
		next := now.Add(p.Schedule[0])
		inv.NextCheckAt = &next
	}
}

// ScheduleNextCheck plans the check after the one just made: the CheckAttempts-th wait of the
// schedule (the last repeats), but never past the moment the code expires or the end of the grace
// period, when the answer matters most.
func (inv *Invoice) ScheduleNextCheck(now time.Time, p CheckPolicy) {
	if !inv.MayChange(now, p) {
		inv.NextCheckAt = nil
		return
	}
	next := now.Add(p.Schedule[min(max(inv.CheckAttempts, 0), len(p.Schedule)-1)])
	if inv.Status == StatusPending && inv.ExpiresAt != nil {
		var moment time.Time // a second after the expiry, or after the end of the grace period
		switch exp := *inv.ExpiresAt; {
		case exp.After(now):
			moment = exp.Add(time.Second)
		case exp.Add(p.Grace).After(now):
			moment = exp.Add(p.Grace + time.Second)
		}
		if !moment.IsZero() && moment.Before(next) {
			next = moment
		}
	}
	inv.NextCheckAt = &next
}

// IssuePolicy is how DOKU is asked again for a code it has not confirmed.
type IssuePolicy struct {
	// Lease is how long one generate call may hold an invoice; it outlasts the DOKU client's timeout,
	// or a slow call could overlap the next holder's.
	Lease time.Duration
	// ResumeAfter is how long the resumer leaves an invoice alone after a request's attempt.
	ResumeAfter time.Duration
	// BaseBackoff doubles after each of the resumer's attempts, up to MaxBackoff; after MaxAttempts
	// the invoice is a person's (DOKU may or may not have issued the code).
	BaseBackoff time.Duration
	MaxBackoff  time.Duration
	MaxAttempts int
}

// Backoff is the wait after the attempts-th attempt.
func (p IssuePolicy) Backoff(attempts int) time.Duration {
	d := p.BaseBackoff
	for i := 1; i < attempts && d < p.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, p.MaxBackoff)
}

// ReleaseIssue gives up the issue lease taken with attempt after a DOKU call whose outcome is
// unknown, and plans the next attempt at retryAt. A late release by a holder whose lease ran out and
// was taken by another attempt does nothing: only the lease's own attempt may free it.
func (inv *Invoice) ReleaseIssue(attempt int, retryAt time.Time) {
	if inv.Status != StatusCreating || inv.IssueAttempts != attempt {
		return
	}
	inv.IssueLeaseHeld = false
	inv.NextIssueAt = retryAt
}
