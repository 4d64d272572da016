package httpapi

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/rs/zerolog"

	"github.com/merchant/o2o/internal/invoice"
	"github.com/merchant/o2o/internal/paypage"
	"github.com/merchant/o2o/internal/service"
	"github.com/merchant/o2o/internal/view"
)

// The customer's payment page lives under /pay/ — the one prefix, besides DOKU's notification path,
// that faces the public internet — at /pay/{invoice_number}/{token}, with its live stream at
// …/events. No API key: the unguessable token is the key, and it opens that one invoice's page and
// nothing else.

// pageHeaders are the headers of every answer under /pay/: the page is the customer's, about one
// invoice, at an address that must not travel to anyone else (no Referer), never framed, never cached.
func pageHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", paypage.CSP)
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cache-Control", "no-store")
}

// paymentPage serves the page, server-rendered (it works without JavaScript), in Indonesian unless
// the browser prefers English or ?lang= says. Any address that opens nothing — another invoice's
// token, a revoked or expired one, an invoice that does not exist — gets the same 404 page.
func (h *handlers) paymentPage(w http.ResponseWriter, r *http.Request) {
	pageHeaders(w)
	lang := paypage.Language(r.Header.Get("Accept-Language"), r.URL.Query().Get("lang"))
	number, token := chi.URLParam(r, "invoice_number"), chi.URLParam(r, "token")
	inv, _, err := h.svc.PaymentPage(r.Context(), number, token)
	if err != nil {
		h.pageError(w, r, lang, err)
		return
	}
	logAbout(r, number)
	var ins []invoice.Instruction
	fromDOKU := false
	if inv.PaymentCode != "" {
		ins, fromDOKU = h.svc.PaymentInstructions(r.Context(), inv)
	}
	path := service.PagePath(inv.Number, token)
	var b bytes.Buffer
	err = paypage.Render(&b, paypage.Page{Invoice: view.ForCustomer(view.OfInvoice(inv)), Instructions: ins, FromDOKU: fromDOKU,
		Lang: lang, Path: path, StreamPath: path + "/events", Now: time.Now()})
	if err != nil {
		h.pageError(w, r, lang, err)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Add("Vary", "Accept-Language")
	_, _ = w.Write(b.Bytes())
}

// pageError answers a page request that failed: 404 for an address that opens nothing, 503 when the
// database (or DOKU) is unavailable — as a page a person can read, never a JSON problem.
func (h *handlers) pageError(w http.ResponseWriter, r *http.Request, lang string, err error) {
	status := problemOf(err).Status
	if status >= 500 {
		zerolog.Ctx(r.Context()).Warn().Err(err).Int("status", status).Msg("payment page failed")
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "5")
	}
	w.WriteHeader(status)
	_ = paypage.RenderError(w, lang, status)
}

// pageStream is the page's live stream: the customer's view of the invoice's status, as a stream
// token would show it, for as long as the page's address opens it.
func (h *handlers) pageStream(w http.ResponseWriter, r *http.Request) {
	number, token := chi.URLParam(r, "invoice_number"), chi.URLParam(r, "token")
	_, until, err := h.svc.PaymentPage(r.Context(), number, token)
	if err != nil {
		pageHeaders(w)
		if errors.Is(err, invoice.ErrNotFound) {
			writeError(w, r, refuse(http.StatusNotFound, codeNotFound, "this payment page does not exist or is no longer available"))
			return
		}
		writeError(w, r, err)
		return
	}
	logAbout(r, number)
	valid := func(ctx context.Context) bool {
		_, _, err := h.svc.PaymentPage(ctx, number, token)
		return !errors.Is(err, invoice.ErrNotFound)
	}
	h.serveStream(w, r, number, access{token: "page:" + hex.EncodeToString(service.TokenDigest(token)), until: until, valid: valid})
}

// revokePaymentPage gives the invoice's payment page a new address; the old one opens nothing.
func (h *handlers) revokePaymentPage(w http.ResponseWriter, r *http.Request) {
	number, ok := invoiceNumber(w, r)
	if !ok {
		return
	}
	inv, err := h.svc.RevokePaymentPage(r.Context(), number)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, view.OfInvoice(inv))
}
