package invoice

import (
	"encoding/json"
	"math/rand/v2"
	"time"
)

// Published is an event as the outbox keeps it: what a change told the merchant's systems, with its
// deliveries to each webhook endpoint.
type Published struct {
	// Seq orders the events (the feed, and each invoice's events); ID is the public, stable id.
	Seq           int64
	ID            string
	Type          ChangeType
	InvoiceNumber string // "" for an attention item without an invoice of ours
	CreatedAt     time.Time
	// Data is the payload as the API showed it when the change was stored.
	Data       json.RawMessage
	Deliveries []Delivery
}

// DeliveryState is where one event's delivery to one endpoint stands.
type DeliveryState string

const (
	DeliveryPending   DeliveryState = "pending"   // not yet acknowledged; retried on schedule
	DeliveryDelivered DeliveryState = "delivered" // the endpoint answered 2xx
	DeliveryDead      DeliveryState = "dead"      // not acknowledged within the retry period
)

// DeliveryStates lists every state.
var DeliveryStates = []DeliveryState{DeliveryPending, DeliveryDelivered, DeliveryDead}

// Delivery is one event's delivery to one endpoint, with every attempt made.
type Delivery struct {
	Endpoint      string
	State         DeliveryState
	Attempts      int
	NextAttemptAt time.Time
	FinishedAt    *time.Time
	Tries         []Attempt
}

// Attempt is one POST of an event to an endpoint.
type Attempt struct {
	At      time.Time
	Status  int // the HTTP status; 0 when none came (timeout, refused connection)
	Latency time.Duration
	Error   string
}

// EventFilter selects events for the feed, oldest first. Empty fields do not filter.
type EventFilter struct {
	Type          ChangeType
	InvoiceNumber string
	Limit         int
	// After is the cursor of the last event already seen ("" for the start).
	After string
}

// Endpoint is a receiver of signed webhooks.
type Endpoint struct {
	Name string
	URL  string
	// Secret is the signing key (the bytes behind whsec_…).
	Secret []byte
	// Active is false for an endpoint no longer configured; DisabledAt is set when it answered 410
	// Gone. Neither receives events until enabled again.
	Active         bool
	DisabledAt     *time.Time
	DisabledReason string
}

// Job is a delivery a worker has claimed: the event and how many attempts were made before.
type Job struct {
	Event    Published
	Endpoint string
	Attempts int       // attempts before this one
	QueuedAt time.Time // when the delivery was created: the retry period counts from it
}

// DeliveryPolicy is how long and how often an event is offered to an endpoint that does not
// acknowledge it.
type DeliveryPolicy struct {
	// BaseBackoff doubles after each failed attempt up to MaxBackoff, each wait drawn at random from
	// its upper half so that many failed deliveries do not return at the same instant.
	BaseBackoff time.Duration
	MaxBackoff  time.Duration
	// RetryPeriod is how long after it was queued a delivery is retried before it is dead.
	RetryPeriod time.Duration
}

// Outcome of one attempt, as the worker saw it.
type AttemptResult int

const (
	AttemptAcknowledged AttemptResult = iota // 2xx
	AttemptFailed                            // anything else: try again later
	AttemptGone                              // 410: the receiver asks us to stop
)

// Next is what follows an attempt of job that had result, at now: the delivery's new state and,
// while pending, when to try again.
func (p DeliveryPolicy) Next(job Job, result AttemptResult, now time.Time) (DeliveryState, time.Time) {
	switch result {
	case AttemptAcknowledged:
		return DeliveryDelivered, time.Time{}
	case AttemptGone:
		// The endpoint is disabled; the delivery waits, pending, until it is enabled again.
		return DeliveryPending, now
	}
	next := now.Add(p.backoff(job.Attempts + 1))
	if next.After(job.QueuedAt.Add(p.RetryPeriod)) {
		return DeliveryDead, time.Time{}
	}
	return DeliveryPending, next
}

// backoff is the wait after the n-th failed attempt.
func (p DeliveryPolicy) backoff(n int) time.Duration {
	d := p.BaseBackoff
	for i := 1; i < n && d < p.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, p.MaxBackoff)
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2+1)
}
