// Package service is the application service: the one door into the domain. Everything the HTTP API
// and the background workers do with invoices goes through it — create, read, sync, receive a
// notification, resume, reconcile, resolve — so every path follows the same rules, and nothing
// reaches the store around it. It orchestrates the domain (package invoice), the store and DOKU; it
// keeps no transaction open while DOKU is called.
package service

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"time"

	"github.com/google/uuid"
	"golang.org/x/sync/singleflight"

	"github.com/merchant/o2o/internal/invoice"
)

// Store persists invoices. Update runs fn under the invoice's row lock and stores what fn changed;
// implementations must not call out to anything else while the lock is held. The store decides no
// policy: leases, waits and limits are passed in.
type Store interface {
	// Create inserts inv holding its issue lease for lease, or returns the invoice that has its number.
	Create(ctx context.Context, inv *invoice.Invoice, lease time.Duration) (stored *invoice.Invoice, created bool, err error)
	// ClaimIssue takes the issue lease of a creating invoice if nobody holds it (ok false otherwise);
	// the resumer leaves it alone for resumeAfter.
	ClaimIssue(ctx context.Context, number string, lease, resumeAfter time.Duration) (inv *invoice.Invoice, ok bool, err error)
	// ClaimDueIssues takes the issue leases of up to limit creating invoices of DOKU environment env
	// due for another attempt that have had fewer than maxAttempts.
	ClaimDueIssues(ctx context.Context, limit int, lease time.Duration, maxAttempts int, env string) ([]*invoice.Invoice, error)
	// ClaimDueChecks hands out up to limit invoices of DOKU environment env whose status check is
	// due, each held (its next check moved lease ahead) so that no other replica checks it meanwhile.
	ClaimDueChecks(ctx context.Context, limit int, lease time.Duration, env string) ([]*invoice.Invoice, error)
	// AdoptInvoices makes up to batch open invoices without an environment, or of one of from, env's.
	AdoptInvoices(ctx context.Context, env string, from []string, batch int) (int, error)
	// ForeignInvoices counts the open invoices of other environments than env, by environment.
	ForeignInvoices(ctx context.Context, env string) (map[string]int, error)
	// ClaimSync takes the invoice's manual-sync slot if the last sync was at least interval ago;
	// ReleaseSync gives it back.
	ClaimSync(ctx context.Context, number string, interval time.Duration) (invoice.SyncClaim, error)
	ReleaseSync(ctx context.Context, number string, c invoice.SyncClaim) error
	// RecordNotification keeps n in the inbox and applies it (apply nil: unreadable) in one
	// transaction, exactly once per notification (its Request-Id and body digest).
	RecordNotification(ctx context.Context, n *invoice.Notification, apply func(*invoice.Invoice) invoice.Outcome) (invoice.Outcome, *invoice.Invoice, bool, error)
	Update(ctx context.Context, number string, fn func(*invoice.Invoice) error) (*invoice.Invoice, error)

	Get(ctx context.Context, number string) (*invoice.Invoice, error)
	List(ctx context.Context, f invoice.ListFilter) (items []*invoice.Invoice, nextCursor string, err error)
	Events(ctx context.Context, number string) ([]invoice.Event, error)
	ListNotifications(ctx context.Context, f invoice.NotificationFilter) ([]*invoice.Notification, string, error)
	ListAttention(ctx context.Context, f invoice.AttentionFilter) ([]*invoice.Attention, string, error)
	ResolveAttention(ctx context.Context, id int64, by, note string) (*invoice.Attention, error)

	Outbox
	Purging
	PageStore
}

// Outbox is the store's side of events: the feed, the webhook endpoints and deliveries, and the
// stream tokens. The events themselves are written by the changes that produce them (Update,
// RecordNotification).
type Outbox interface {
	// ListEvents is a page of the feed, the cursor to continue after it, and whether more are there
	// already.
	ListEvents(ctx context.Context, f invoice.EventFilter) (evs []*invoice.Published, next string, more bool, err error)
	// FeedLag is the age of the oldest event committed but not yet shown by the feed.
	FeedLag(ctx context.Context) (time.Duration, error)
	GetEvent(ctx context.Context, id string) (*invoice.Published, error)
	// InvoiceEvents is the events of one invoice after the one with id after ("": all), oldest first.
	InvoiceEvents(ctx context.Context, number, after string) ([]*invoice.Published, error)
	Redeliver(ctx context.Context, id, endpoint string) (*invoice.Published, error)
	// RedeliverBatch offers again up to limit of endpoint's deliveries in state, of events created in
	// [from, to), after event afterSeq; it returns how many and where to continue (0: done).
	RedeliverBatch(ctx context.Context, endpoint string, state invoice.DeliveryState, from, to time.Time, afterSeq int64, limit int) (int, int64, error)

	// RegisterEndpoints registers a replica's configured endpoints; it never deactivates any.
	RegisterEndpoints(ctx context.Context, eps []invoice.Endpoint) error
	Endpoints(ctx context.Context) ([]invoice.Endpoint, error)
	RemoveEndpoint(ctx context.Context, name string) (invoice.Endpoint, error)
	DisableEndpoint(ctx context.Context, name, reason string) error
	EnableEndpoint(ctx context.Context, name string) (invoice.Endpoint, error)
	// ClaimDeliveries hands out due deliveries to endpoint, each held for lease; FinishAttempt
	// records an attempt and the state it leaves the delivery in.
	ClaimDeliveries(ctx context.Context, endpoint string, limit int, lease time.Duration) ([]invoice.Job, error)
	FinishAttempt(ctx context.Context, job invoice.Job, a invoice.Attempt, state invoice.DeliveryState, next time.Time) error
	// DeliveryBacklog is every registered endpoint with its backlog.
	DeliveryBacklog(ctx context.Context) ([]invoice.Endpoint, error)

	// CreateStreamToken stores a token's digest for ttl and clears those expired keepExpired ago.
	CreateStreamToken(ctx context.Context, number string, digest []byte, ttl, keepExpired time.Duration) (time.Time, error)
	// StreamTokenInvoice is the invoice a token opens and until when: the token's expiry, or the end of
	// grace after its invoice became final, whichever is first; ErrNotFound for a token that is
	// unknown, revoked or past that.
	StreamTokenInvoice(ctx context.Context, digest []byte, grace time.Duration) (number string, until time.Time, err error)
	// RevokeStreamTokens revokes every token of an invoice and says how many were still valid.
	RevokeStreamTokens(ctx context.Context, number string) (int, error)
	// WatchInvoice has the invoice's changes notified to every replica for d from now.
	WatchInvoice(ctx context.Context, number string, d time.Duration) error
}

// Gateway issues payment codes and answers status checks (DOKU). Its errors are
// invoice.ErrDokuRejected for a definite refusal and invoice.ErrDokuUnavailable otherwise.
type Gateway interface {
	// Environment names the DOKU this gateway talks to (its base URL and our Client-Id there), as
	// invoices record it.
	Environment() string
	// RequestBody is the exact request for inv, built once and stored with it.
	RequestBody(inv *invoice.Invoice) ([]byte, error)
	// Issue sends inv's stored Request-Id and body and returns the issued code.
	Issue(ctx context.Context, inv *invoice.Invoice) (invoice.Issued, error)
	// Check asks for an invoice's status (DokuStatus PENDING, SUCCESS, EXPIRED or FAILED); the report
	// is anonymous (api/DOKU.md §5).
	Check(ctx context.Context, invoiceNumber string) (invoice.PaymentReport, error)
	// HowToPay fetches the how-to-pay instructions at apiURL (the how_to_pay_api of the generate
	// answer).
	HowToPay(ctx context.Context, apiURL string) ([]invoice.Instruction, error)
}

// Config is what the service decides by; it comes whole from the configuration.
type Config struct {
	Limits invoice.Limits
	Issue  invoice.IssuePolicy
	Check  invoice.CheckPolicy
	// CheckLease is how long a claimed check holds its invoice: past it, another replica may check.
	CheckLease time.Duration
	// SyncInterval is the least time between two manual syncs of one invoice.
	SyncInterval time.Duration
	// StoreTimeout bounds the store step that records DOKU's answer, which runs detached from the
	// caller's cancellation so that an answer is not lost to a client hanging up.
	StoreTimeout time.Duration
	// Delivery is how webhooks are retried; DeliveryLease how long a claimed delivery is held (it
	// outlasts the POST's timeout, or a slow receiver could get the event from two replicas).
	Delivery      invoice.DeliveryPolicy
	DeliveryLease time.Duration
	// StreamTokenTTL is the longest a stream token may live (and what a token lives when not asked).
	StreamTokenTTL time.Duration
	// CustomerAccessGrace is how long after its invoice became final a stream token still opens it.
	CustomerAccessGrace time.Duration
	// PublicBaseURL is where browsers reach the service (PUBLIC_BASE_URL; "" makes the addresses the
	// API hands out relative).
	PublicBaseURL string
	// Retention is what the purge removes and when; PurgeBatch the rows one purge statement takes at
	// most, PurgeLease how long a purging replica holds the purge without renewing.
	Retention  invoice.RetentionPolicy
	PurgeBatch int
	PurgeLease time.Duration
}

// Service is the application service. Build it with New; it is safe for concurrent use.
type Service struct {
	cfg     Config
	store   Store
	gateway Gateway
	now     func() time.Time
	// env is the DOKU environment the gateway talks to: the one invoices are issued by and checked with.
	env string
	// fetches shares the fetch of an invoice's instructions among concurrent first views.
	fetches singleflight.Group
}

// New returns the service over store and gateway, deciding by cfg.
func New(cfg Config, store Store, gateway Gateway) *Service {
	return &Service{cfg: cfg, store: store, gateway: gateway, now: time.Now, env: gateway.Environment()}
}

// Environment is the DOKU environment this service issues invoices with and asks about them.
func (s *Service) Environment() string { return s.env }

// requestIDSpace is the namespace of the Request-Ids invoices are issued with.
var requestIDSpace = uuid.MustParse("6c1e0c6a-5d4f-4b0e-9f57-2b9f6f9f4a1d")

// requestIDFor is the Request-Id an invoice is issued with: derived from the DOKU environment, the
// invoice number and the exact request bytes, so the same request always carries the same id. Should
// a committed invoice be lost with a database that failed over, the client's retry of the same
// request sends DOKU the same Request-Id and bytes, and DOKU's idempotency answers with the code it
// issued the first time — never "invoice number already used", which would fail an invoice whose
// code the customer holds.
func requestIDFor(env, number string, body []byte) string {
	digest := sha256.Sum256(body)
	return uuid.NewSHA1(requestIDSpace, []byte(env+"\n"+number+"\n"+hex.EncodeToString(digest[:]))).String()
}

// update is every row-locked change: fn decides, and the invoice's check schedule is kept true to
// what the change made of it.
func (s *Service) update(ctx context.Context, number string, fn func(*invoice.Invoice) error) (*invoice.Invoice, error) {
	inv, err := s.store.Update(ctx, number, func(cur *invoice.Invoice) error {
		// Before fn: the events its change publishes carry the invoice as the API shows it.
		s.withLinks(cur)
		if err := fn(cur); err != nil {
			return err
		}
		cur.KeepSchedule(s.now(), s.cfg.Check)
		return nil
	})
	return inv, err
}

// detached is ctx for the store step after a DOKU call: free of the caller's cancellation (an answer
// DOKU gave is recorded even if the client hung up), bounded by StoreTimeout of its own.
func (s *Service) detached(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), s.cfg.StoreTimeout)
}
