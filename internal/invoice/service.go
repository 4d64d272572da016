package invoice

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// Store persists invoices. Update runs fn under the invoice's row lock and stores what fn changed;
// implementations must not call out to anything else while the lock is held.
type Store interface {
	// Create inserts inv holding its issue lease, or returns the invoice that has its number.
	Create(ctx context.Context, inv *Invoice, lease time.Duration) (stored *Invoice, created bool, err error)
	// ClaimIssue takes the issue lease of a creating invoice if nobody holds it (ok false otherwise)
	// and schedules the resumer's next attempt after backoff.
	ClaimIssue(ctx context.Context, number string, lease, backoff time.Duration) (inv *Invoice, ok bool, err error)
	// ReleaseIssue gives up the lease taken with attempt after a DOKU call whose outcome is unknown,
	// recording ev.
	ReleaseIssue(ctx context.Context, number string, attempt int, ev Event) error
	// AddEvent adds ev to the invoice's history on its own (for calls that changed nothing).
	AddEvent(ctx context.Context, number string, ev Event) error
	// Events is the invoice's history, oldest first.
	Events(ctx context.Context, number string) ([]Event, error)
	// ClaimSync takes the invoice's manual-sync slot if the last sync was at least interval ago;
	// ReleaseSync gives it back.
	ClaimSync(ctx context.Context, number string, interval time.Duration) (SyncClaim, error)
	ReleaseSync(ctx context.Context, number string, c SyncClaim) error
	// RecordNotification keeps n in the inbox and applies it (apply nil: unreadable) in one
	// transaction, exactly once per notification (its Request-Id and body digest).
	RecordNotification(ctx context.Context, n *Notification, apply func(*Invoice) Outcome) (Outcome, *Invoice, bool, error)
	ListNotifications(ctx context.Context, f NotificationFilter) ([]*Notification, string, error)
	// ListAttention lists attention items newest first; ResolveAttention records a person's decision.
	ListAttention(ctx context.Context, f AttentionFilter) ([]*Attention, string, error)
	ResolveAttention(ctx context.Context, id int64, by, note string) (*Attention, error)
	Get(ctx context.Context, number string) (*Invoice, error)
	List(ctx context.Context, f ListFilter) (items []*Invoice, nextCursor string, err error)
	Update(ctx context.Context, number string, fn func(*Invoice) error) (*Invoice, error)
}

// ListFilter selects invoices for Store.List. Empty fields do not filter.
type ListFilter struct {
	Status  Status
	Channel Channel
	Limit   int
	Cursor  string
}

// Gateway issues payment codes (DOKU). Errors it returns carry CodeDokuRejected for a definite
// refusal and CodeDokuUnavailable when the outcome is unknown or temporary.
type Gateway interface {
	// RequestBody is the exact request for inv, built once and stored with it.
	RequestBody(inv *Invoice) ([]byte, error)
	// Issue sends inv's stored Request-Id and body and returns the issued code.
	Issue(ctx context.Context, inv *Invoice) (Issued, error)
	// Check asks for an invoice's status (DokuStatus PENDING, SUCCESS, EXPIRED or FAILED); the report
	// is anonymous (api/DOKU.md §5).
	Check(ctx context.Context, invoiceNumber string) (PaymentReport, error)
}

// Service is what the HTTP API and the workers do with invoices: the orchestration between the store
// and DOKU, kept in one place so every path follows the same rules.
type Service struct {
	Store        Store
	Gateway      Gateway
	Now          func() time.Time
	NewRequestID func() string
	// IssueLease is how long one DOKU generate call may hold an invoice; it must outlast the DOKU
	// client's timeout, or a slow call could overlap the next holder's.
	IssueLease time.Duration
	// ResumeAfter is how long the resumer leaves an invoice alone after a request tried it.
	ResumeAfter time.Duration
	// ExpiryGrace is how long past its expiry a pending invoice waits for DOKU to say EXPIRED (or
	// report a payment) before it is expired anyway.
	ExpiryGrace time.Duration
	// SyncInterval is the least time between two manual syncs of one invoice.
	SyncInterval time.Duration
	// StoreTimeout bounds the store step that records DOKU's answer, which runs detached from the
	// caller's cancellation so that an answer is not lost to a client hanging up.
	StoreTimeout time.Duration
}

// NewService returns a Service with the real clock and UUID Request-Ids. dokuTimeout is the gateway's
// per-call bound; the issue lease is derived from it.
func NewService(store Store, gw Gateway, dokuTimeout time.Duration) *Service {
	return &Service{Store: store, Gateway: gw, Now: time.Now, NewRequestID: uuid.NewString,
		IssueLease: dokuTimeout + 5*time.Second, ResumeAfter: dokuTimeout + 5*time.Second,
		ExpiryGrace: time.Hour, SyncInterval: 10 * time.Second, StoreTimeout: 10 * time.Second}
}

// ErrRequestInProgress answers a request for an invoice whose code another request or the resumer is
// fetching from DOKU right now: retry shortly and get the finished invoice.
var ErrRequestInProgress = &Error{Code: CodeRequestInProgress, Message: "this invoice's payment code is being requested from DOKU right now; retry shortly"}

// Create stores the invoice described by req (already validated) and obtains its payment code. It is
// idempotent on the invoice number: the same request again returns the stored invoice (created is
// false), and finishes it if it was left creating; the same number with different fields is an
// invoice_exists error and never reaches DOKU.
//
// On a DOKU fault the invoice stays creating and the error has code doku_unavailable; on a DOKU
// refusal the invoice is failed and the error has code doku_rejected. The invoice is returned in
// both cases.
func (s *Service) Create(ctx context.Context, req *Invoice) (inv *Invoice, created bool, err error) {
	req.Status = StatusCreating
	req.DokuRequestID = s.NewRequestID()
	if req.DokuRequestBody, err = s.Gateway.RequestBody(req); err != nil {
		return nil, false, err
	}
	// The insert commits before DOKU is called, so a crash after DOKU answered still leaves a row
	// holding the Request-Id and bytes to recover the code with.
	inv, created, err = s.Store.Create(ctx, req, s.IssueLease)
	if err != nil {
		return nil, false, err
	}
	if !created && !inv.SameRequest(req) {
		return inv, false, Errorf(CodeInvoiceExists, "invoice %s already exists with different details", req.Number)
	}
	if created {
		inv, err = s.Issue(ctx, inv, SourceAPI) // the insert took the lease
		return inv, true, err
	}
	inv, err = s.finish(ctx, inv, SourceAPI)
	return inv, false, err
}

// finish brings a stored invoice to where the caller can be answered: a creating one is issued if
// nobody else holds its lease right now (request_in_progress otherwise), a failed one is DOKU's
// refusal again — never a second call — and any other is returned as it is.
func (s *Service) finish(ctx context.Context, inv *Invoice, source Source) (*Invoice, error) {
	if inv.Status == StatusCreating {
		claimed, ok, err := s.Store.ClaimIssue(ctx, inv.Number, s.IssueLease, s.ResumeAfter)
		if err != nil {
			return inv, err
		}
		if ok {
			return s.Issue(ctx, claimed, source)
		}
		// Held by someone else, or finished in between: look again.
		if inv, err = s.Store.Get(ctx, inv.Number); err != nil {
			return nil, err
		}
		if inv.Status == StatusCreating {
			return inv, ErrRequestInProgress
		}
	}
	if inv.Status == StatusFailed {
		return inv, rejection(inv)
	}
	return inv, nil
}

// Issue asks DOKU for inv's code with its stored Request-Id and body, and records the answer and the
// call in the invoice's history. The caller must hold inv's issue lease. The DOKU call and the store
// step are detached from ctx's cancellation — a client hanging up mid-call must not throw away a code
// DOKU has already issued — but each has a bound of its own: the gateway's timeout, and StoreTimeout.
// A store step that gives up (a row lock held elsewhere, a hung database) leaves the invoice creating;
// its lease runs out and a retry gets the same code from DOKU.
func (s *Service) Issue(ctx context.Context, inv *Invoice, source Source) (*Invoice, error) {
	ctx = context.WithoutCancel(ctx)
	start := s.Now()
	issued, gwErr := s.Gateway.Issue(ctx, inv)
	ctx, cancel := context.WithTimeout(ctx, s.StoreTimeout)
	defer cancel()
	call := Event{Source: source, Kind: EventDokuGenerate, Detail: map[string]any{
		"doku_request_id": inv.DokuRequestID, "attempt": inv.IssueAttempts, "duration_ms": s.Now().Sub(start).Milliseconds()}}
	var apply func(*Invoice) error
	switch {
	case gwErr == nil:
		if issued.ExpiresAt.IsZero() {
			issued.ExpiresAt = inv.CreatedAt.Add(time.Duration(inv.ExpiresInMinutes) * time.Minute)
		}
		call.Detail["result"], call.Detail["payment_code"] = "issued", issued.PaymentCode
		apply = func(inv *Invoice) error { inv.Record(call); inv.MarkIssued(issued, source); return nil }
	case ErrorCode(gwErr) == CodeDokuRejected:
		msg := gwErr.Error()
		var e *Error
		if errors.As(gwErr, &e) {
			msg = e.Message
		}
		call.Detail["result"], call.Detail["message"] = "rejected", msg
		apply = func(inv *Invoice) error {
			inv.Record(call)
			inv.MarkFailed(string(CodeDokuRejected), msg, source)
			return nil
		}
	default:
		// Unknown outcome: the invoice stays creating, to be finished with the same Request-Id.
		// If the release fails too, the lease runs out by itself.
		call.Detail["result"], call.Detail["error"] = "unavailable", gwErr.Error()
		_ = s.Store.ReleaseIssue(ctx, inv.Number, inv.IssueAttempts, call)
		return inv, gwErr
	}
	updated, err := s.Store.Update(ctx, inv.Number, apply)
	if err != nil {
		return inv, err
	}
	if updated.Status == StatusFailed {
		return updated, rejection(updated)
	}
	return updated, nil
}

func rejection(inv *Invoice) error {
	return &Error{Code: CodeDokuRejected, Message: "DOKU refused to issue a payment code: " + inv.FailureMessage}
}

// ReceiveNotification keeps a verified notification in the inbox and applies its payment report r
// (nil when the body could not be read) through the one transition function, all in one transaction.
// redelivered is true when DOKU sent this notification (its Request-Id with the same body) before and
// its outcome was already settled: nothing was applied again.
func (s *Service) ReceiveNotification(ctx context.Context, n *Notification, r *PaymentReport) (outcome Outcome, inv *Invoice, redelivered bool, err error) {
	var apply func(*Invoice) Outcome
	if r != nil {
		r.EvidenceKey = n.EvidenceKey()
		apply = func(inv *Invoice) Outcome {
			outcome := inv.ApplyPayment(*r, s.Now())
			inv.Record(Event{Source: SourceWebhook, Kind: EventNotification, Detail: map[string]any{
				"doku_request_id": n.RequestID, "outcome": outcome, "doku_status": r.DokuStatus, "amount": r.AmountText}})
			return outcome
		}
	}
	return s.Store.RecordNotification(ctx, n, apply)
}

// Check asks DOKU for inv's status and applies the answer through the shared transition (ApplyCheck):
// the reconciler and manual sync use it, so a payment found by polling is the same payment a
// notification would have recorded, and is recorded once whichever comes first. When DOKU cannot
// answer (an error, an unknown invoice), a pending invoice overdue by more than the grace period is
// expired anyway: DOKU's silence never keeps an invoice pending forever.
func (s *Service) Check(ctx context.Context, inv *Invoice, source Source) (Outcome, *Invoice, error) {
	// As in Issue: an answer DOKU gave is stored even if the caller hangs up meanwhile.
	ctx = context.WithoutCancel(ctx)
	start := s.Now()
	r, err := s.Gateway.Check(ctx, inv.Number)
	ctx, cancel := context.WithTimeout(ctx, s.StoreTimeout)
	defer cancel()
	call := Event{Source: source, Kind: EventDokuCheck, Detail: map[string]any{"duration_ms": s.Now().Sub(start).Milliseconds()}}
	if err != nil {
		call.Detail["result"], call.Detail["error"] = "failed", err.Error()
		if !inv.overdue(s.Now(), s.ExpiryGrace) {
			_ = s.Store.AddEvent(ctx, inv.Number, call) // history only; the next check follows the schedule
			return "", inv, err
		}
		var outcome Outcome
		updated, uerr := s.Store.Update(ctx, inv.Number, func(cur *Invoice) error {
			cur.Record(call)
			if cur.ExpireOverdue(s.Now(), s.ExpiryGrace, source, "past expiry and grace period while DOKU's check status fails: "+err.Error()) {
				outcome = OutcomeExpired
			}
			return nil
		})
		if uerr != nil {
			return "", inv, uerr
		}
		return outcome, updated, err
	}
	r.Source = source
	var outcome Outcome
	updated, err := s.Store.Update(ctx, inv.Number, func(cur *Invoice) error {
		outcome = cur.ApplyCheck(r, s.Now(), s.ExpiryGrace)
		call.Detail["doku_status"], call.Detail["outcome"] = r.DokuStatus, outcome
		cur.Record(call)
		return nil
	})
	if err != nil {
		return "", inv, err
	}
	return outcome, updated, nil
}

// SyncClaim is the outcome of taking an invoice's manual-sync slot.
type SyncClaim struct {
	Taken    bool
	At       time.Time     // when the slot was taken
	Previous *time.Time    // the sync before (nil: none)
	Wait     time.Duration // when not taken: how long until the slot is free
}

// Sync is a manual "look at DOKU now" for one invoice, rate-limited per invoice so it cannot be used to
// hammer DOKU: a creating invoice is issued (with its stored Request-Id), a pending, paid or expired
// one is checked, and a failed one is returned as it is. When DOKU cannot answer, the slot is given
// back: the 503's Retry-After must not lead to a 429.
func (s *Service) Sync(ctx context.Context, number string) (*Invoice, Outcome, error) {
	claim, err := s.Store.ClaimSync(ctx, number, s.SyncInterval)
	if err != nil {
		return nil, "", err
	}
	if !claim.Taken {
		// Racing syncs can compute the wait from before the winner's write: never advise less than 1 s.
		retry := max(claim.Wait, time.Second)
		return nil, "", &Error{Code: CodeRateLimited, RetryAfter: retry,
			Message: fmt.Sprintf("this invoice was synced moments ago; sync again in %.0f s", retry.Seconds()+0.5)}
	}
	inv, err := s.Store.Get(ctx, number)
	if err != nil {
		return nil, "", err
	}
	var outcome Outcome
	switch inv.Status {
	case StatusCreating:
		inv, err = s.finish(ctx, inv, SourceSync)
	case StatusFailed:
	default:
		outcome, inv, err = s.Check(ctx, inv, SourceSync)
	}
	if ErrorCode(err) == CodeDokuUnavailable {
		_ = s.Store.ReleaseSync(context.WithoutCancel(ctx), number, claim)
	}
	return inv, outcome, err
}

// Attention lists the cases that need a person's decision, newest first.
func (s *Service) Attention(ctx context.Context, f AttentionFilter) ([]*Attention, string, error) {
	return s.Store.ListAttention(ctx, f)
}

// Resolve records that a person (by, the name of their API key) decided an attention item, with a
// note saying what they decided. An item is resolved once; the first decision stands.
func (s *Service) Resolve(ctx context.Context, id int64, by, note string) (*Attention, error) {
	return s.Store.ResolveAttention(ctx, id, by, note)
}

// FlagStuck hands an invoice DOKU never confirmed through every resume attempt to a person: DOKU may
// or may not have issued its code, and only DOKU's back office can say which.
func (s *Service) FlagStuck(ctx context.Context, inv *Invoice, lastErr error) error {
	_, err := s.Store.Update(ctx, inv.Number, func(cur *Invoice) error {
		if cur.Status == StatusCreating {
			cur.Flag(Attention{Key: string(ReasonStuckCreating) + ":" + cur.Number, Reason: ReasonStuckCreating, Source: SourceResumer,
				Evidence: map[string]any{"attempts": cur.IssueAttempts, "doku_request_id": cur.DokuRequestID, "last_error": lastErr.Error()}})
		}
		return nil
	})
	return err
}
