// Package httpapi is the service's HTTP face: the internal invoice API for checkout frontends, DOKU's
// payment webhook, and the health endpoints, all on one chi router.
package httpapi

import (
	"context"
	"net/http"

	"github.com/go-chi/chi/v5"
	"github.com/rs/zerolog"

	"github.com/merchant/o2o/internal/invoice"
)

// NotificationReader verifies and parses DOKU's notifications (doku.Verifier).
type NotificationReader interface {
	ReadNotification(h http.Header, body []byte) (invoice.PaymentReport, error)
}

// Config is what the HTTP layer needs from the service configuration.
type Config struct {
	APIKeys          []string
	NotificationPath string
	MaxBodyBytes     int64
	Limits           invoice.Limits
}

// Deps are the collaborators the handlers call.
type Deps struct {
	Service       *invoice.Service
	Notifications NotificationReader
	// Ready reports whether the service can do its work (database reachable, schema current).
	Ready  func(ctx context.Context) error
	Logger zerolog.Logger
}

// NewServer returns the service's HTTP handler.
func NewServer(cfg Config, deps Deps) http.Handler {
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 64 << 10
	}
	h := &handlers{cfg: cfg, svc: deps.Service, notifications: deps.Notifications, ready: deps.Ready}

	r := chi.NewRouter()
	r.Use(accessLog(deps.Logger))
	r.Use(limitBody(cfg.MaxBodyBytes))
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, invoice.Errorf(invoice.CodeNotFound, "no route %s %s", r.Method, r.URL.Path))
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, invoice.Errorf(invoice.CodeMethodNotAllowed, "method %s is not allowed here", r.Method))
	})

	r.Get("/healthz", h.healthz)
	r.Get("/readyz", h.readyz)
	// DOKU cannot send our API key: the webhook is authenticated by its signature instead.
	r.Post(cfg.NotificationPath, h.dokuNotification)

	r.Route("/v1/invoices", func(r chi.Router) {
		r.Use(bearerAuth(cfg.APIKeys))
		r.Post("/", h.createInvoice)
		r.Get("/", h.listInvoices)
		r.Get("/{invoice_number}", h.getInvoice)
		r.Post("/{invoice_number}/sync", h.syncInvoice)
	})
	return r
}

type handlers struct {
	cfg           Config
	svc           *invoice.Service
	notifications NotificationReader
	ready         func(ctx context.Context) error
}

func (h *handlers) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (h *handlers) readyz(w http.ResponseWriter, r *http.Request) {
	if err := h.ready(r.Context()); err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}
