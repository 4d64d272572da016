// Package httpapi is the service's HTTP face: the internal invoice API for checkout frontends, DOKU's
// payment webhook, and the health endpoints, all on one chi router.
package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/rs/zerolog"

	"github.com/merchant/o2o/api"
	"github.com/merchant/o2o/internal/invoice"
	"github.com/merchant/o2o/internal/metrics"
)

// NotificationReader verifies and reads DOKU's notifications (doku.Verifier): the notification as the
// inbox keeps it and its payment report (nil when the body could not be read).
type NotificationReader interface {
	ReadNotification(h http.Header, body []byte) (*invoice.Notification, *invoice.PaymentReport, error)
}

// Config is what the HTTP layer needs from the service configuration.
type Config struct {
	// APIKeys are the accepted API keys.
	APIKeys          []APIKey
	NotificationPath string
	MaxBodyBytes     int64
	Limits           invoice.Limits
	Webhook          WebhookConfig
}

// Deps are the collaborators the handlers call.
type Deps struct {
	Service       *invoice.Service
	Notifications NotificationReader
	// Ready reports whether the service can do its work (database reachable, schema current).
	Ready  func(ctx context.Context) error
	Logger zerolog.Logger
	// Metrics is counted into and, unless ServeMetrics is false, served at GET /metrics.
	Metrics      *metrics.Metrics
	ServeMetrics bool
}

// NewServer returns the service's HTTP handler.
func NewServer(cfg Config, deps Deps) http.Handler {
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 64 << 10
	}
	h := &handlers{cfg: cfg, svc: deps.Service, notifications: deps.Notifications, ready: deps.Ready,
		webhook: cfg.Webhook, metrics: deps.Metrics}

	r := chi.NewRouter()
	r.Use(accessLog(deps.Logger, deps.Metrics))
	r.Use(limitBody(cfg.MaxBodyBytes))
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, invoice.Errorf(invoice.CodeNotFound, "no route %s %s", r.Method, r.URL.Path))
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, invoice.Errorf(invoice.CodeMethodNotAllowed, "method %s is not allowed here", r.Method))
	})

	r.Get("/healthz", h.healthz)
	r.Get("/readyz", h.readyz)
	r.Get("/openapi.yaml", serveSpec)
	auth := bearerAuth(cfg.APIKeys)
	if deps.ServeMetrics && deps.Metrics != nil {
		// This listener also faces DOKU, so metrics need a key here (Prometheus sends it as a bearer
		// token); METRICS_ADDR serves them without one on an admin network instead.
		r.With(auth).Method(http.MethodGet, "/metrics", deps.Metrics.Handler())
	}
	// DOKU cannot send our API key: the webhook is authenticated by its signature instead.
	r.Post(cfg.NotificationPath, h.dokuNotification)

	r.With(auth).Get("/v1/notifications", h.listNotifications)
	r.With(auth).Get("/v1/attention", h.listAttention)
	r.With(auth).Post("/v1/attention/{id}/resolve", h.resolveAttention)
	r.Route("/v1/invoices", func(r chi.Router) {
		r.Use(auth)
		r.Post("/", h.createInvoice)
		r.Get("/", h.listInvoices)
		r.Get("/{invoice_number}", h.getInvoice)
		r.Post("/{invoice_number}/sync", h.syncInvoice)
		r.Get("/{invoice_number}/events", h.invoiceEvents)
	})
	return r
}

// NewHTTPServer wraps handler in an http.Server with the service's limits: header and body read
// timeouts against slow clients, a write timeout that outlasts a DOKU call, and a header size cap.
func NewHTTPServer(handler http.Handler, dokuTimeout time.Duration) *http.Server {
	return &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		// A create waits for DOKU; the write deadline must outlast DOKU's timeout.
		WriteTimeout:   dokuTimeout + 15*time.Second,
		IdleTimeout:    120 * time.Second,
		MaxHeaderBytes: 32 << 10,
	}
}

type handlers struct {
	cfg           Config
	svc           *invoice.Service
	notifications NotificationReader
	ready         func(ctx context.Context) error
	webhook       WebhookConfig
	metrics       *metrics.Metrics
}

// serveSpec serves the HTTP contract the service is tested against.
func serveSpec(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/yaml")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(api.OpenAPI)
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
