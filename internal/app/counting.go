package app

import (
	"context"
	"time"

	"github.com/merchant/o2o/internal/invoice"
	"github.com/merchant/o2o/internal/metrics"
	"github.com/merchant/o2o/internal/postgres"
)

// countingStore counts the status changes a store commits, from outside the store: the store only
// persists, and the metrics see what it persisted.
type countingStore struct {
	*postgres.Store
	m *metrics.Metrics
}

func (s countingStore) Create(ctx context.Context, inv *invoice.Invoice, lease time.Duration) (*invoice.Invoice, bool, error) {
	out, created, err := s.Store.Create(ctx, inv, lease)
	if created {
		s.m.Transition(string(out.Channel), "", string(out.Status))
	}
	return out, created, err
}

func (s countingStore) Update(ctx context.Context, number string, fn func(*invoice.Invoice) error) (*invoice.Invoice, error) {
	out, err := s.Store.Update(ctx, number, fn)
	if err == nil {
		s.count(out)
	}
	return out, err
}

func (s countingStore) RecordNotification(ctx context.Context, n *invoice.Notification, apply func(*invoice.Invoice) invoice.Outcome) (invoice.Outcome, *invoice.Invoice, bool, error) {
	outcome, inv, redelivered, err := s.Store.RecordNotification(ctx, n, apply)
	if err == nil && inv != nil {
		s.count(inv)
	}
	return outcome, inv, redelivered, err
}

func (s countingStore) count(inv *invoice.Invoice) {
	for _, e := range inv.NewEvents {
		if e.Kind == invoice.EventStatus && e.From != e.To {
			s.m.Transition(string(inv.Channel), string(e.From), string(e.To))
		}
	}
}
