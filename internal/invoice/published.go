package invoice

import (
	"cmp"
	"encoding/json"
	"math/rand/v2"
	"slices"
	"time"
)

// Published is an event as the outbox keeps it: what a change told the merchant's systems, with its
// deliveries to each webhook endpoint.
type Published struct {
	// Seq orders each invoice's events; the feed is ordered by Xid, the id of the transaction that
	// wrote the event, then Seq (postgres.ListEvents says why). ID is the public, stable id.
	Seq           int64
	Xid           int64
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

// ParseDeliveryState reads a state, reporting whether it is one.
func ParseDeliveryState(s string) (DeliveryState, bool) { return parse(DeliveryStates, s) }

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
	// DeliveryState keeps the events with a delivery in that state (to Endpoint, when set); Endpoint
	// alone keeps the events queued for that endpoint.
	DeliveryState DeliveryState
	Endpoint      string
	Limit         int
	// After is the cursor of the last event already seen ("" for the start).
	After string
}

// Endpoint is a receiver of signed webhooks. Which endpoints events are queued for is a registry in
// the database, the merchant's to change: a replica registers the endpoints its configuration names
// and never deactivates another's, and only the API removes one. A replica delivers to the endpoints it
// has a configuration (URL and secrets) for.
type Endpoint struct {
	Name string
	URL  string
	// Secrets are the signing keys (the bytes behind each whsec_…). Every delivery carries a signature
	// by each, so a receiver that verifies with either the old or the new one accepts it while a secret
	// is being rotated.
	Secrets [][]byte
	// Active is false once the endpoint was removed (RemovedAt): no event is queued for it since.
	// DisabledAt is set when it answered 410 Gone: events are queued and wait until it is enabled
	// again (EnabledAt: the retry period of what waited restarts then).
	Active         bool
	RemovedAt      *time.Time
	DisabledAt     *time.Time
	DisabledReason string
	EnabledAt      *time.Time
	// Pending and Oldest are its backlog: deliveries not yet acknowledged, and how long the oldest has
	// waited (filled in by the listings that say so).
	Pending int
	Oldest  time.Duration
}

// EndpointDisagreement is one way a replica's configuration and the registry differ about an
// endpoint. Replicas that disagree keep delivering every registered endpoint they can; the
// disagreement is for a person to settle (a pod with an old or broken configuration).
type EndpointDisagreement struct {
	Endpoint string
	Kind     DisagreementKind
}

// DisagreementKind says how a configuration and the registry differ.
type DisagreementKind string

const (
	// NotConfiguredHere: registered, but this replica has no URL and secret for it, so it leaves the
	// endpoint's deliveries to the replicas that have.
	NotConfiguredHere DisagreementKind = "not_configured_here"
	// ConfiguredButRemoved: this replica's configuration names an endpoint removed through the API; it
	// is not brought back by a configuration (POST /v1/webhook-endpoints/{name}/enable does that).
	ConfiguredButRemoved DisagreementKind = "removed"
	// URLDiffers: the URL registered last is not this replica's (a rollout changing it, half done).
	URLDiffers DisagreementKind = "url_differs"
	// NotRegistered: configured here and not registered yet (registration failed or is pending).
	NotRegistered DisagreementKind = "not_registered"
)

// DisagreementKinds lists every kind, for the metric's series.
var DisagreementKinds = []DisagreementKind{NotConfiguredHere, ConfiguredButRemoved, URLDiffers, NotRegistered}

// CompareEndpoints is every way configured (this replica's) and registered (the registry) disagree,
// ordered by endpoint name.
func CompareEndpoints(configured, registered []Endpoint) []EndpointDisagreement {
	reg := make(map[string]Endpoint, len(registered))
	for _, e := range registered {
		reg[e.Name] = e
	}
	conf := make(map[string]bool, len(configured))
	var out []EndpointDisagreement
	for _, c := range configured {
		conf[c.Name] = true
		r, ok := reg[c.Name]
		switch {
		case !ok:
			out = append(out, EndpointDisagreement{c.Name, NotRegistered})
		case !r.Active:
			out = append(out, EndpointDisagreement{c.Name, ConfiguredButRemoved})
		case r.URL != c.URL:
			out = append(out, EndpointDisagreement{c.Name, URLDiffers})
		}
	}
	for _, r := range registered {
		if r.Active && !conf[r.Name] {
			out = append(out, EndpointDisagreement{r.Name, NotConfiguredHere})
		}
	}
	slices.SortFunc(out, func(a, b EndpointDisagreement) int { return cmp.Compare(a.Endpoint, b.Endpoint) })
	return out
}

// Job is a delivery a worker has claimed: the event and how many attempts were made before.
type Job struct {
	Event    Published
	Endpoint string
	Attempts int // attempts before this one
	// QueuedAt is when the retry period started: the delivery's creation, or the endpoint's last
	// enabling if that came later.
	QueuedAt time.Time
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
	// AttemptUndeliverable: nothing was sent, because the event has no payload any more (the purge
	// thinned it under a delivery queued at that moment); no later attempt can do better.
	AttemptUndeliverable
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
	case AttemptUndeliverable:
		return DeliveryDead, time.Time{}
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
