// Package httpapi is the service's HTTP face: the internal invoice API for checkout frontends, DOKU's
// payment webhook, the event feed and the status streams, and the health endpoints, all on one chi
// router (routes.go). It owns the HTTP
// vocabulary — request bodies, problem codes, the one table from domain errors to statuses — and
// calls the application service for everything else.
package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/rs/zerolog"

	"github.com/merchant/o2o/api"
	"github.com/merchant/o2o/internal/invoice"
	"github.com/merchant/o2o/internal/metrics"
	"github.com/merchant/o2o/internal/service"
	"github.com/merchant/o2o/internal/stream"
)

// NotificationReader verifies and reads DOKU's notifications (doku.Verifier): the notification as the
// inbox keeps it and its payment report. A notification that is not genuine comes back nil; a genuine
// one whose body cannot be read comes back without a report.
type NotificationReader interface {
	ReadNotification(h http.Header, body []byte) (*invoice.Notification, *invoice.PaymentReport, error)
}

// Config is what the HTTP layer needs from the service configuration.
type Config struct {
	// APIKeys are the accepted API keys.
	APIKeys          []APIKey
	NotificationPath string
	MaxBodyBytes     int64
	Webhook          WebhookConfig
	// ServeMetrics serves Metrics at GET /metrics (behind an API key) on this handler.
	ServeMetrics bool
	Stream       StreamConfig
}

// Deps are the collaborators the handlers call.
type Deps struct {
	Service       *service.Service
	Notifications NotificationReader
	// Ready reports whether the service can do its work (database reachable, schema current);
	// Notices, what a ready service still wants an operator to know.
	Ready   func(ctx context.Context) error
	Notices func(ctx context.Context) ([]string, error)
	Logger  zerolog.Logger
	Metrics *metrics.Metrics
	// Hub wakes the status streams when their invoice has new events; Closing, once closed, ends
	// them (the server is shutting down: a stream would otherwise hold it until its deadline).
	Hub     *stream.Hub
	Closing <-chan struct{}
}

type handlers struct {
	cfg           Config
	svc           *service.Service
	notifications NotificationReader
	ready         func(ctx context.Context) error
	notices       func(ctx context.Context) ([]string, error)
	metrics       *metrics.Metrics
	hub           *stream.Hub
	closing       <-chan struct{}
	streams       streamSlots
}

// NewServer returns the service's HTTP handler.
func NewServer(cfg Config, deps Deps) http.Handler {
	h := &handlers{cfg: cfg, svc: deps.Service, notifications: deps.Notifications, ready: deps.Ready, notices: deps.Notices,
		metrics: deps.Metrics, hub: deps.Hub, closing: deps.Closing}
	return h.routes(deps.Logger)
}

// NewHTTPServer wraps handler in an http.Server with the service's limits: header and body read
// timeouts against slow clients, a write timeout that outlasts the longest request, and a header
// size cap.
func NewHTTPServer(handler http.Handler, dokuTimeout, statementTimeout time.Duration) *http.Server {
	return &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		// The longest request is a create (or a sync): a statement, the DOKU call, a statement that
		// stores DOKU's answer. A write deadline shorter than that cuts the connection of a create that
		// succeeded, and its client sees a network error instead of the code.
		WriteTimeout:   dokuTimeout + 2*statementTimeout + 5*time.Second,
		IdleTimeout:    120 * time.Second,
		MaxHeaderBytes: 32 << 10,
	}
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
	out := struct {
		Status  string   `json:"status"`
		Notices []string `json:"notices,omitempty"`
	}{Status: "ready"}
	if h.notices != nil {
		// Ready all the same: notices are for a person, not a reason to take the replica out.
		out.Notices, _ = h.notices(r.Context())
	}
	writeJSON(w, http.StatusOK, out)
}
