package service

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/merchant/o2o/internal/invoice"
)

// adoptBatch is how many invoices one statement of an adoption moves.
const adoptBatch = 1000

// AdoptInvoices makes this service's DOKU environment the one of the open invoices that have none
// (made before invoices recorded their environment) and of those of the environments in from — a
// deliberate move (DOKU_ADOPT_ENVIRONMENTS): new credentials, or DOKU's new address, for the same
// account. It returns how many it moved.
func (s *Service) AdoptInvoices(ctx context.Context, from []string) (int, error) {
	total := 0
	for {
		n, err := s.store.AdoptInvoices(ctx, s.env, from, adoptBatch)
		total += n
		if err != nil || n < adoptBatch {
			return total, err
		}
	}
}

// ForeignInvoices says which open invoices were issued by another DOKU than this service's, by
// environment: this service leaves them alone (it never asks its DOKU about them), and says so at
// start and in /readyz.
func (s *Service) ForeignInvoices(ctx context.Context) (map[string]int, error) {
	return s.store.ForeignInvoices(ctx, s.env)
}

// ForeignNotice is the sentence that says so, or "" when there are none.
func ForeignNotice(env string, foreign map[string]int) string {
	if len(foreign) == 0 {
		return ""
	}
	var parts []string
	for _, e := range slices.Sorted(maps.Keys(foreign)) {
		parts = append(parts, fmt.Sprintf("%d of %s", foreign[e], e))
	}
	return fmt.Sprintf("open invoices issued by another DOKU environment than this service's (%s) are left alone: %s. "+
		"They are never checked with this DOKU; point the service back at theirs, or, for a deliberate move of the same DOKU account "+
		"(new credentials or address), set DOKU_ADOPT_ENVIRONMENTS to their environment", env, strings.Join(parts, ", "))
}

// ownInvoice refuses an operation that would ask this service's DOKU about an invoice another DOKU
// issued.
func (s *Service) ownInvoice(inv *invoice.Invoice) error {
	if inv.DokuEnv == "" || inv.DokuEnv == s.env {
		return nil
	}
	return invoice.Errorf(invoice.ErrOtherEnvironment, "invoice %s was issued by DOKU environment %s; this service talks to %s and does not ask it about the invoice",
		inv.Number, inv.DokuEnv, s.env)
}
