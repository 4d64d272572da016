package service

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"time"

	"github.com/merchant/o2o/internal/invoice"
)

// Cancel calls an invoice's order off (invoice.Cancel): idempotent, the first reason stands. The code
// DOKU issued cannot be withdrawn, so the reconciler keeps asking about it: money that still comes is
// recorded and flagged.
func (s *Service) Cancel(ctx context.Context, number, reason string) (*invoice.Invoice, error) {
	return s.update(ctx, number, func(cur *invoice.Invoice) error {
		_, err := cur.Cancel(reason, s.now(), invoice.SourceAPI)
		return err
	})
}

// Feed is a page of events, oldest first, the cursor to continue after it, and whether more are
// there already.
func (s *Service) Feed(ctx context.Context, f invoice.EventFilter) ([]*invoice.Published, string, bool, error) {
	return s.store.ListEvents(ctx, f)
}

// Event is one event with its deliveries and their attempts.
func (s *Service) Event(ctx context.Context, id string) (*invoice.Published, error) {
	return s.store.GetEvent(ctx, id)
}

// InvoiceEvents is what the status stream sends: an invoice's events after the one with id after.
func (s *Service) InvoiceEvents(ctx context.Context, number, after string) ([]*invoice.Published, error) {
	return s.store.InvoiceEvents(ctx, number, after)
}

// Redeliver offers an event again to endpoint ("" for every configured one), with a fresh retry
// period — for a receiver that lost it or was fixed after it died.
func (s *Service) Redeliver(ctx context.Context, id, endpoint string) (*invoice.Published, error) {
	return s.store.Redeliver(ctx, id, endpoint)
}

// redeliverBatch is how many deliveries one statement of a bulk redelivery offers again.
const redeliverBatch = 1000

// RedeliverAll offers again every one of endpoint's deliveries in state (dead, or delivered for a
// receiver that lost what it had) whose events were created in [from, to), each with a fresh retry
// period, in batches of short statements; it returns how many.
func (s *Service) RedeliverAll(ctx context.Context, endpoint string, state invoice.DeliveryState, from, to time.Time) (int, error) {
	ep, err := s.endpoint(ctx, endpoint)
	if err != nil {
		return 0, err
	}
	if !ep.Active {
		// No replica delivers to a removed endpoint: what it queued would wait for good.
		return 0, invoice.Errorf(invoice.ErrNotFound, "webhook endpoint %q was removed; POST /v1/webhook-endpoints/%s/enable registers it again", endpoint, endpoint)
	}
	total := 0
	for after := int64(0); ; {
		n, last, err := s.store.RedeliverBatch(ctx, endpoint, state, from, to, after, redeliverBatch)
		total += n
		if err != nil || last == 0 {
			return total, err
		}
		after = last
	}
}

// endpoint is the registered endpoint name, or ErrNotFound.
func (s *Service) endpoint(ctx context.Context, name string) (invoice.Endpoint, error) {
	eps, err := s.store.Endpoints(ctx)
	if err != nil {
		return invoice.Endpoint{}, err
	}
	for _, e := range eps {
		if e.Name == name {
			return e, nil
		}
	}
	return invoice.Endpoint{}, invoice.Errorf(invoice.ErrNotFound, "no webhook endpoint is named %q", name)
}

// FeedLag is how far the feed trails what is committed.
func (s *Service) FeedLag(ctx context.Context) (time.Duration, error) { return s.store.FeedLag(ctx) }

// Endpoints lists the webhook endpoints with their state and backlog.
func (s *Service) Endpoints(ctx context.Context) ([]invoice.Endpoint, error) {
	return s.store.Endpoints(ctx)
}

// EnableEndpoint resumes deliveries to an endpoint a 410 Gone disabled, or registers a removed one
// again; what waited becomes due with a fresh retry period.
func (s *Service) EnableEndpoint(ctx context.Context, name string) (invoice.Endpoint, error) {
	return s.store.EnableEndpoint(ctx, name)
}

// RemoveEndpoint stops queueing events for an endpoint: the merchant's decision, which no
// configuration undoes.
func (s *Service) RemoveEndpoint(ctx context.Context, name string) (invoice.Endpoint, error) {
	return s.store.RemoveEndpoint(ctx, name)
}

// RegisterEndpoints registers a replica's configured endpoints, so that every event from now on is
// queued for them (whichever replica makes it).
func (s *Service) RegisterEndpoints(ctx context.Context, eps []invoice.Endpoint) error {
	return s.store.RegisterEndpoints(ctx, eps)
}

// EndpointDisagreements is how configured (this replica's endpoints) and the registry differ.
func (s *Service) EndpointDisagreements(ctx context.Context, configured []invoice.Endpoint) ([]invoice.EndpointDisagreement, error) {
	registered, err := s.store.Endpoints(ctx)
	if err != nil {
		return nil, err
	}
	return invoice.CompareEndpoints(configured, registered), nil
}

// ClaimDeliveries hands a delivery worker up to limit due deliveries to endpoint, held for the
// delivery lease.
func (s *Service) ClaimDeliveries(ctx context.Context, endpoint string, limit int) ([]invoice.Job, error) {
	return s.store.ClaimDeliveries(ctx, endpoint, limit, s.cfg.DeliveryLease)
}

// FinishDelivery records an attempt of job and what follows it by the delivery policy: delivered,
// tried again later, or dead after the retry period. A 410 Gone disables the endpoint; its deliveries
// wait until a person enables it again. It returns the delivery's new state.
func (s *Service) FinishDelivery(ctx context.Context, job invoice.Job, a invoice.Attempt, result invoice.AttemptResult) (invoice.DeliveryState, error) {
	state, next := s.cfg.Delivery.Next(job, result, s.now())
	if result == invoice.AttemptGone {
		if err := s.store.DisableEndpoint(ctx, job.Endpoint, "answered 410 Gone to event "+job.Event.ID); err != nil {
			return "", err
		}
	}
	return state, s.store.FinishAttempt(ctx, job, a, state, next)
}

// DeliveryBacklog is every registered endpoint with how many deliveries wait and how long the
// oldest has.
func (s *Service) DeliveryBacklog(ctx context.Context) ([]invoice.Endpoint, error) {
	return s.store.DeliveryBacklog(ctx)
}

// keepExpiredTokens is how old an expired stream token must be before the next token issued clears
// it: a day keeps the recent ones for whoever looks into a refused stream.
const keepExpiredTokens = 24 * time.Hour

// streamTokenPrefix marks a stream token, so that one pasted where an API key belongs is recognised.
const streamTokenPrefix = "st_"

// IssueStreamToken issues a token that opens one invoice's status stream and nothing else, for a
// checkout page that cannot hold an API key. It is 256 random bits (unguessable), only its SHA-256
// is stored, and it expires after ttl (at most, and by default, the configured StreamTokenTTL).
func (s *Service) IssueStreamToken(ctx context.Context, number string, ttl time.Duration) (string, time.Time, error) {
	if ttl <= 0 || ttl > s.cfg.StreamTokenTTL {
		ttl = s.cfg.StreamTokenTTL
	}
	raw := make([]byte, 32)
	_, _ = rand.Read(raw) // never fails (crypto/rand)
	token := streamTokenPrefix + base64.RawURLEncoding.EncodeToString(raw)
	expires, err := s.store.CreateStreamToken(ctx, number, TokenDigest(token), ttl, keepExpiredTokens)
	if err != nil {
		return "", time.Time{}, err
	}
	return token, expires, nil
}

// WatchInvoice has every replica told of invoice number's events until d from now, for a status
// stream that lasts that long; unwatched invoices' changes wake only the replica that made them.
func (s *Service) WatchInvoice(ctx context.Context, number string, d time.Duration) error {
	return s.store.WatchInvoice(ctx, number, d)
}

// StreamTokenInvoice is the invoice a stream token opens, and until when: its expiry, or the end of
// the grace after its invoice became final (paid, expired, failed, cancelled), whichever comes first.
// invoice.ErrNotFound for a token that is unknown, revoked, past that, or not a stream token at all.
func (s *Service) StreamTokenInvoice(ctx context.Context, token string) (string, time.Time, error) {
	if !strings.HasPrefix(token, streamTokenPrefix) {
		return "", time.Time{}, invoice.Errorf(invoice.ErrNotFound, "unknown or expired stream token")
	}
	return s.store.StreamTokenInvoice(ctx, TokenDigest(token), s.cfg.CustomerAccessGrace)
}

// TokenDigest is what is kept of a stream token: its SHA-256.
func TokenDigest(token string) []byte {
	d := sha256.Sum256([]byte(token))
	return d[:]
}

// RevokeStreamTokens revokes every stream token of an invoice (a page that must stop following it):
// open streams opened with one end at their next heartbeat. It returns how many were still valid.
func (s *Service) RevokeStreamTokens(ctx context.Context, number string) (int, error) {
	if _, err := s.store.Get(ctx, number); err != nil {
		return 0, err
	}
	return s.store.RevokeStreamTokens(ctx, number)
}
