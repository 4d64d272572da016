package service

import (
	"context"
	"errors"
	"time"

	"github.com/merchant/o2o/internal/invoice"
)

// Purging is the store's side of the data lifecycle: the lease that keeps the purge on one replica at
// a time, and the batched steps.
type Purging interface {
	TakeLease(ctx context.Context, name, holder string, lease time.Duration) (bool, error)
	ReleaseLease(ctx context.Context, name, holder string) error
	PurgeDeliveries(ctx context.Context, from invoice.DeliveryKey, delivered, dead time.Time, batch int) (invoice.PurgeStep, invoice.DeliveryKey, error)
	PurgeEvents(ctx context.Context, from invoice.FeedKey, cutoff time.Time, batch int) (invoice.PurgeStep, invoice.FeedKey, error)
	ThinNotifications(ctx context.Context, cutoff time.Time, batch int) (invoice.PurgeStep, error)
}

// purgeLease is the name of the purge's lease.
const purgeLease = "purge"

// purgeRest is how long the purge rests after each batch, as a multiple of the batch's own time: it
// takes at most a quarter of what the database gives it, so that the payment path keeps its latency
// while a backlog (a year of it, the first time) is purged. Measured under webhook load in make
// bench's purge row.
const purgeRest = 3

// errLeaseLost stops a purge whose lease another replica took (this one paused longer than the lease).
var errLeaseLost = errors.New("the purge's lease ran out and another replica took it")

// PurgeTables name what each step of the purge works on, in the order it runs: deliveries (with their
// attempts) before the events they keep, and the notifications' bodies.
const (
	PurgeDeliveries   = "webhook_deliveries"
	PurgeEvents       = "events"
	PurgeNotification = "notifications"
)

// Purge removes what is past its retention window (Config.Retention), batch by batch, if holder can
// take the purge's lease: one replica purges at a time, and none holds a lock longer than one batch.
// The lease is renewed after each batch; a holder that dies leaves it to run out. After each batch it
// calls onBatch with the table and what the batch did. It reports whether it ran.
func (s *Service) Purge(ctx context.Context, holder string, onBatch func(table string, step invoice.PurgeStep)) (bool, error) {
	ok, err := s.store.TakeLease(ctx, purgeLease, holder, s.cfg.PurgeLease)
	if err != nil || !ok {
		return false, err
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = s.store.ReleaseLease(rctx, purgeLease, holder)
	}()
	delivered, dead, bodies := s.cfg.Retention.Cutoffs(s.now())
	batch := s.cfg.PurgeBatch
	// renew keeps the lease after a batch that started at start, and stops when it was lost (a pause
	// longer than the lease: another replica may be purging now); then it rests (purgeRest), never
	// longer than half the lease, so that the lease outlives the rest and the next batch.
	renew := func(start time.Time) error {
		took := time.Since(start)
		ok, err := s.store.TakeLease(ctx, purgeLease, holder, s.cfg.PurgeLease)
		if err == nil && !ok {
			return errLeaseLost
		}
		if err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(min(purgeRest*took, s.cfg.PurgeLease/2)):
		}
		return nil
	}

	var from invoice.DeliveryKey
	for {
		start := time.Now()
		step, next, err := s.store.PurgeDeliveries(ctx, from, delivered, dead, batch)
		if err != nil {
			return true, err
		}
		onBatch(PurgeDeliveries, step)
		if step.Done {
			break
		}
		from = next
		if err := renew(start); err != nil {
			return true, err
		}
	}
	for at := (invoice.FeedKey{}); ; {
		start := time.Now()
		step, next, err := s.store.PurgeEvents(ctx, at, delivered, batch)
		if err != nil {
			return true, err
		}
		onBatch(PurgeEvents, step)
		if step.Done {
			break
		}
		at = next
		if err := renew(start); err != nil {
			return true, err
		}
	}
	for {
		start := time.Now()
		step, err := s.store.ThinNotifications(ctx, bodies, batch)
		if err != nil {
			return true, err
		}
		onBatch(PurgeNotification, step)
		if step.Done {
			return true, nil
		}
		if err := renew(start); err != nil {
			return true, err
		}
	}
}
