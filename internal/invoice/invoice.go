// Package invoice is the domain of the service: invoices, their payments and the one set of rules that
// moves an invoice between states — what a payment report means, when an invoice expires, when DOKU is
// asked again. It knows nothing of HTTP, SQL or DOKU's wire format, so the webhook, the reconciler and
// manual sync all mean the same thing by "paid". Every list of values (statuses, channels, sources,
// outcomes, attention reasons) is defined here once, with a parser; the schema's CHECK constraints and
// the API contract's enums are tested against these lists.
package invoice

import (
	"encoding/json"
	"slices"
	"time"
)

// Status is where an invoice is in its lifecycle (api/README.md, "Lifecycle").
type Status string

const (
	StatusCreating Status = "creating" // stored, DOKU has not confirmed a code yet
	StatusPending  Status = "pending"  // code issued, waiting for the customer
	StatusPaid     Status = "paid"
	StatusExpired  Status = "expired"
	StatusFailed   Status = "failed" // DOKU definitely refused to issue a code
	// StatusCancelled: the merchant called the order off. DOKU has no way to withdraw an O2O code, so
	// one already issued may still be paid; such money is recorded (paid_after_cancel).
	StatusCancelled Status = "cancelled"
)

// Statuses lists every status, in lifecycle order.
var Statuses = []Status{StatusCreating, StatusPending, StatusPaid, StatusExpired, StatusFailed, StatusCancelled}

// ParseStatus reads a status, reporting whether it is one.
func ParseStatus(s string) (Status, bool) { return parse(Statuses, s) }

// Channel is the convenience-store network that issues the payment code.
type Channel string

const (
	ChannelAlfa      Channel = "alfa"
	ChannelIndomaret Channel = "indomaret"
)

// Channels lists the supported channels.
var Channels = []Channel{ChannelAlfa, ChannelIndomaret}

// ParseChannel reads a channel, reporting whether it is one.
func ParseChannel(s string) (Channel, bool) { return parse(Channels, s) }

// Source says which path observed a payment or made a change.
type Source string

const (
	SourceAPI        Source = "api"
	SourceWebhook    Source = "webhook"
	SourceReconciler Source = "reconciler"
	SourceResumer    Source = "resumer"
	SourceSync       Source = "sync"
)

// Sources lists every source.
var Sources = []Source{SourceAPI, SourceWebhook, SourceReconciler, SourceResumer, SourceSync}

// ParseSource reads a source, reporting whether it is one.
func ParseSource(s string) (Source, bool) { return parse(Sources, s) }

// parse is the parser of every list: the value if it is in the list.
func parse[T ~string](list []T, s string) (T, bool) {
	if slices.Contains(list, T(s)) {
		return T(s), true
	}
	return "", false
}

// Currency is the only currency DOKU's O2O channels settle in.
const Currency = "IDR"

// Customer is who the code is issued for; DOKU prints the name at the counter.
type Customer struct {
	Name  string `json:"name"`
	Email string `json:"email,omitempty"`
}

// Invoice is one order's payment obligation. Amount is integer rupiah: IDR has no minor unit in
// DOKU's API, and floats never touch money here.
type Invoice struct {
	ID               int64
	Number           string
	Channel          Channel
	Amount           int64
	Status           Status
	Customer         Customer
	ExpiresInMinutes int
	Reusable         bool
	Info             string
	ReceiptFooter    string
	Metadata         json.RawMessage // a JSON object or nil

	// DokuRequestID and DokuRequestBody are fixed when the invoice is first stored: every call to
	// DOKU for this invoice resends exactly these, so DOKU's Request-Id idempotency protects us from
	// issuing two codes for one order.
	DokuRequestID   string
	DokuRequestBody []byte
	// DokuEnv is the DOKU that issued (or is asked for) the code: a digest of its base URL and our
	// Client-Id there. Only that DOKU is asked about the invoice.
	DokuEnv string
	// PageToken opens the customer's payment page ("" for an invoice made before pages existed;
	// revoking a page replaces it); PaymentPageURL is the page's address, made by the service from it
	// (not stored).
	PageToken      string
	PaymentPageURL string

	PaymentCode     string
	HowToPayPage    string
	HowToPayAPI     string
	ExpiresAt       *time.Time
	PaidAt          *time.Time
	PaidAfterExpiry bool
	// CancelledAt and CancelReason say when and why the merchant called the order off; PaidAfterCancel
	// marks money that came for it all the same.
	CancelledAt     *time.Time
	CancelReason    string
	PaidAfterCancel bool
	// ExpiredByGrace: expired by our grace period while DOKU did not say EXPIRED.
	ExpiredByGrace bool
	FailureCode    string
	FailureMessage string

	// IssueAttempts counts the DOKU generate attempts claimed for this invoice; NextIssueAt is when
	// the resumer may try again, and IssueLeaseHeld whether an attempt holds its lease (the lease
	// itself is timed on the database's clock).
	IssueAttempts  int
	NextIssueAt    time.Time
	IssueLeaseHeld bool
	// CheckAttempts counts the status checks made; NextCheckAt is when the reconciler checks next,
	// nil once the invoice can no longer change.
	CheckAttempts int
	NextCheckAt   *time.Time

	Payments []Payment
	// NewEvents are history entries recorded by this change and not stored yet.
	NewEvents []Event
	// NewAttention are cases this change flagged for a person, and ResolvedAttention those it settled;
	// the store writes both in the same transaction as the change.
	NewAttention      []Attention
	ResolvedAttention []Resolution
	// NewChanges are what this change tells the merchant's systems (published as events); the store
	// writes them in the same transaction, so an event exists exactly when its change does.
	NewChanges []Change
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// Final reports whether the invoice's outcome is settled for its customer: paid (a single-use code;
// a reusable one may be paid again), expired, failed or cancelled. Money that still comes is recorded
// all the same; this is what the customer's page and stream follow.
func (inv *Invoice) Final() bool {
	switch inv.Status {
	case StatusExpired, StatusFailed, StatusCancelled:
		return true
	case StatusPaid:
		return !inv.Reusable
	}
	return false
}

// FinalSince is when the invoice became final (Final), from what it records of its end: the payment,
// the cancellation, the code's deadline; a failed invoice's last change (nothing changes one after).
// Not UpdatedAt for the others: a cancelled invoice's code, or one expired by our grace period, stays
// on the reconciler's schedule, and every check writes the row. A paid reusable code is over for its
// customer at its deadline (or at a payment after it): that time may still be ahead. The customer's
// access ends a grace after it; postgres.Store.StreamTokenInvoice says the same in SQL. ok is false
// for an invoice that has no end yet.
func (inv *Invoice) FinalSince() (since time.Time, ok bool) {
	if inv.Status == StatusPaid && inv.Reusable && inv.PaidAt != nil {
		since = *inv.PaidAt
		if inv.ExpiresAt != nil && inv.ExpiresAt.After(since) {
			since = *inv.ExpiresAt
		}
		return since, true
	}
	if !inv.Final() {
		return time.Time{}, false
	}
	at := map[Status]*time.Time{StatusPaid: inv.PaidAt, StatusCancelled: inv.CancelledAt, StatusExpired: inv.ExpiresAt}[inv.Status]
	if at == nil {
		return inv.UpdatedAt, true
	}
	return *at, true
}

// TotalPaid is the sum of all recorded payments, in rupiah.
func (inv *Invoice) TotalPaid() int64 {
	var total int64
	for _, p := range inv.Payments {
		total += p.Amount
	}
	return total
}

// Payment is one payment DOKU reported for an invoice. DedupeKey identifies the payment itself (not
// the report of it), so a notification retry or a status poll that sees the same payment again is
// recognised and not recorded twice.
type Payment struct {
	ID          int64
	DedupeKey   string
	Amount      int64
	PaidAt      time.Time
	Source      Source
	RequestID   string            // the Request-Id of the notification that reported it, if any
	Identifiers map[string]string // DOKU's agent identifiers (store, terminal, transaction ids)
	CreatedAt   time.Time
}

// ListFilter selects invoices. Empty fields do not filter.
type ListFilter struct {
	Status  Status
	Channel Channel
	Limit   int
	Cursor  string
}

// SyncClaim is the outcome of taking an invoice's manual-sync slot: a sync asks DOKU now, so one is
// allowed per invoice per interval, across every replica.
type SyncClaim struct {
	Taken    bool
	At       time.Time     // when the slot was taken
	Previous *time.Time    // the sync before (nil: none)
	Wait     time.Duration // when not taken: how long until the slot is free
}

// Instruction is one part of how to pay at the store counter: the stores it is for (DOKU's label, such
// as a store group) and its steps, in order.
type Instruction struct {
	Channel string   `json:"channel"`
	Steps   []string `json:"step"`
}
