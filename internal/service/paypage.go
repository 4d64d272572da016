package service

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/url"
	"time"

	"github.com/merchant/o2o/internal/invoice"
)

// PageStore is the store's side of the payment page.
type PageStore interface {
	Instructions(ctx context.Context, invoiceID int64) (ins []invoice.Instruction, source string, asked time.Time, found bool, err error)
	SaveInstructions(ctx context.Context, invoiceID int64, source string, ins []invoice.Instruction) error
	ReplacePageToken(ctx context.Context, number, token string) (*invoice.Invoice, error)
}

// newPageToken is a payment page's token: 192 random bits, URL-safe.
func newPageToken() string {
	raw := make([]byte, 24)
	_, _ = rand.Read(raw) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(raw)
}

// withLinks fills in the addresses the API hands out with an invoice: its payment page's.
func (s *Service) withLinks(inv *invoice.Invoice) *invoice.Invoice {
	if inv != nil && inv.PageToken != "" {
		inv.PaymentPageURL = s.cfg.PublicBaseURL + PagePath(inv.Number, inv.PageToken)
	}
	return inv
}

// PagePath is the path of an invoice's payment page.
func PagePath(number, token string) string {
	return "/pay/" + url.PathEscape(number) + "/" + url.PathEscape(token)
}

// errNoPage is the one answer to a page address that opens nothing — another invoice's token, a
// revoked or expired one, an invoice that does not exist — so that it says nothing about which.
var errNoPage = invoice.Errorf(invoice.ErrNotFound, "this payment page does not exist or is no longer available")

// PaymentPage is the invoice whose payment page number and token open, and until when they open it:
// CUSTOMER_ACCESS_GRACE after the invoice became final (paid, expired, failed, cancelled; a reusable
// code's paid invoice is not final while its code may still be paid), for ever before. Anything else
// is invoice.ErrNotFound, the same whatever the reason.
func (s *Service) PaymentPage(ctx context.Context, number, token string) (*invoice.Invoice, time.Time, error) {
	if invoice.CheckInvoiceNumber(number) != "" || token == "" {
		return nil, time.Time{}, errNoPage
	}
	inv, err := s.store.Get(ctx, number)
	if err != nil {
		if errors.Is(err, invoice.ErrNotFound) {
			return nil, time.Time{}, errNoPage
		}
		return nil, time.Time{}, err
	}
	if inv.PageToken == "" || subtle.ConstantTimeCompare([]byte(inv.PageToken), []byte(token)) != 1 {
		return nil, time.Time{}, errNoPage
	}
	until := time.Now().Add(100 * 365 * 24 * time.Hour)
	if since, final := inv.FinalSince(); final {
		until = since.Add(s.cfg.CustomerAccessGrace)
		if !until.After(s.now()) {
			return nil, time.Time{}, errNoPage
		}
	}
	return s.withLinks(inv), until, nil
}

// RevokePaymentPage gives the invoice's payment page a new address: the old one opens nothing from
// now on (and a page open with it stops following the invoice at its next heartbeat).
func (s *Service) RevokePaymentPage(ctx context.Context, number string) (*invoice.Invoice, error) {
	inv, err := s.store.ReplacePageToken(ctx, number, newPageToken())
	return s.withLinks(inv), err
}

// instructionsTimeout bounds the one fetch of DOKU's instructions: a page that waits longer shows
// our own steps.
const instructionsTimeout = 3 * time.Second

// instructionsRetry is how long our own steps stand in for DOKU's that could not be had (DOKU down or
// slow past instructionsTimeout, an answer we could not read) before a view of the page asks DOKU
// again: a blip must not pin the fallback for the invoice's whole life, and a DOKU that stays down
// is asked at most this often per invoice, however many views.
const instructionsRetry = 5 * time.Minute

// PaymentInstructions are the steps at the counter for inv, and whether they are DOKU's: fetched from
// DOKU's how_to_pay_api once — the first time anyone asks, on whichever replica — and kept with the
// invoice; when DOKU's cannot be had (no address, an error, a shape we cannot read), none (fromDOKU
// false) and that is kept too, so the page shows our own steps; DOKU is asked again only after
// instructionsRetry, while the invoice is pending and has an address to ask.
func (s *Service) PaymentInstructions(ctx context.Context, inv *invoice.Invoice) (ins []invoice.Instruction, fromDOKU bool) {
	if got, source, asked, found, err := s.store.Instructions(ctx, inv.ID); err == nil && found && !s.askAgain(inv, source, asked) {
		return got, source == instructionsFromDOKU
	}
	// Concurrent views on this replica share one fetch.
	v, _, _ := s.fetches.Do(inv.Number, func() (any, error) {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), instructionsTimeout)
		defer cancel()
		// A view that looked just before an earlier fetch was kept comes here after it: look again.
		if got, source, asked, found, err := s.store.Instructions(fctx, inv.ID); err == nil && found && !s.askAgain(inv, source, asked) {
			return fetched{got, source == instructionsFromDOKU}, nil
		}
		got, err := s.gateway.HowToPay(fctx, inv.HowToPayAPI)
		source := instructionsFromDOKU
		if err != nil || inv.HowToPayAPI == "" || len(got) == 0 {
			got, source = nil, instructionsFallback
		}
		_ = s.store.SaveInstructions(fctx, inv.ID, source, got)
		return fetched{got, source == instructionsFromDOKU}, nil
	})
	f := v.(fetched)
	return f.ins, f.fromDOKU
}

// askAgain says whether kept instructions are a fallback old enough to ask DOKU again for inv's.
func (s *Service) askAgain(inv *invoice.Invoice, source string, asked time.Time) bool {
	return source == instructionsFallback && inv.HowToPayAPI != "" && inv.Status == invoice.StatusPending &&
		s.now().Sub(asked) >= instructionsRetry
}

const (
	instructionsFromDOKU = "doku"
	instructionsFallback = "fallback"
)

type fetched struct {
	ins      []invoice.Instruction
	fromDOKU bool
}
