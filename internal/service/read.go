package service

import (
	"context"

	"github.com/merchant/o2o/internal/invoice"
)

// Get is the invoice with its payments.
func (s *Service) Get(ctx context.Context, number string) (*invoice.Invoice, error) {
	inv, err := s.store.Get(ctx, number)
	return s.withLinks(inv), err
}

// List is a page of invoices, newest first, and the cursor of the next.
func (s *Service) List(ctx context.Context, f invoice.ListFilter) ([]*invoice.Invoice, string, error) {
	invs, next, err := s.store.List(ctx, f)
	for _, inv := range invs {
		s.withLinks(inv)
	}
	return invs, next, err
}

// Events is the invoice's history, oldest first.
func (s *Service) Events(ctx context.Context, number string) ([]invoice.Event, error) {
	return s.store.Events(ctx, number)
}

// Notifications is a page of the notification inbox, newest first.
func (s *Service) Notifications(ctx context.Context, f invoice.NotificationFilter) ([]*invoice.Notification, string, error) {
	return s.store.ListNotifications(ctx, f)
}

// Attention lists the cases that need a person's decision, newest first.
func (s *Service) Attention(ctx context.Context, f invoice.AttentionFilter) ([]*invoice.Attention, string, error) {
	return s.store.ListAttention(ctx, f)
}

// Resolve records that a person (by, the name of their API key) decided an attention item, with a
// note saying what they decided. An item is resolved once; the first decision stands.
func (s *Service) Resolve(ctx context.Context, id int64, by, note string) (*invoice.Attention, error) {
	return s.store.ResolveAttention(ctx, id, by, note)
}
