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

// Endpoints lists the webhook endpoints with their state.
func (s *Service) Endpoints(ctx context.Context) ([]invoice.Endpoint, error) {
	return s.store.Endpoints(ctx)
}

// EnableEndpoint resumes deliveries to an endpoint that had been disabled (by a 410 Gone).
func (s *Service) EnableEndpoint(ctx context.Context, name string) (invoice.Endpoint, error) {
	return s.store.EnableEndpoint(ctx, name)
}

// SyncEndpoints makes the configured endpoints the ones events are queued for.
func (s *Service) SyncEndpoints(ctx context.Context, eps []invoice.Endpoint) error {
	return s.store.SyncEndpoints(ctx, eps)
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

// DeliveryBacklog is how many deliveries wait, and how long the oldest has.
func (s *Service) DeliveryBacklog(ctx context.Context) (int, time.Duration, error) {
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
	digest := sha256.Sum256([]byte(token))
	expires, err := s.store.CreateStreamToken(ctx, number, digest[:], ttl, keepExpiredTokens)
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

// StreamTokenInvoice is the invoice a stream token opens, and when it expires; invoice.ErrNotFound
// for a token that is unknown, expired or not a stream token at all.
func (s *Service) StreamTokenInvoice(ctx context.Context, token string) (string, time.Time, error) {
	if !strings.HasPrefix(token, streamTokenPrefix) {
		return "", time.Time{}, invoice.Errorf(invoice.ErrNotFound, "unknown or expired stream token")
	}
	digest := sha256.Sum256([]byte(token))
	return s.store.StreamTokenInvoice(ctx, digest[:])
}
