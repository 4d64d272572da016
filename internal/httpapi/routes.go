package httpapi

import (
	"net/http"

	"github.com/go-chi/chi/v5"
	"github.com/rs/zerolog"
)

// routes is every route the service answers, in one place.
func (h *handlers) routes(log zerolog.Logger) http.Handler {
	r := chi.NewRouter()
	r.Use(accessLog(log, h.metrics))
	r.Use(limitBody(h.cfg.MaxBodyBytes))
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, refuse(http.StatusNotFound, codeNotFound, "no route %s %s", r.Method, r.URL.Path))
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, refuse(http.StatusMethodNotAllowed, codeMethodNotAllowed, "method %s is not allowed here", r.Method))
	})

	r.Get("/healthz", h.healthz)
	r.Get("/readyz", h.readyz)
	r.Get("/openapi.yaml", serveSpec)
	auth := bearerAuth(h.cfg.APIKeys)
	if h.cfg.ServeMetrics && h.metrics != nil {
		// This listener also faces DOKU, so metrics need a key here (Prometheus sends it as a bearer
		// token); METRICS_ADDR serves them without one on an admin network instead.
		r.With(auth).Method(http.MethodGet, "/metrics", h.metrics.Handler())
	}
	// DOKU cannot send our API key: the webhook is authenticated by its signature instead.
	r.Post(h.cfg.NotificationPath, h.dokuNotification)
	// A checkout page cannot hold an API key either: a stream takes a key or a stream token.
	r.Get("/v1/invoices/{invoice_number}/stream", h.streamInvoice)

	r.Group(func(r chi.Router) {
		r.Use(auth)
		r.Post("/v1/invoices", h.createInvoice)
		r.Get("/v1/invoices", h.listInvoices)
		r.Get("/v1/invoices/{invoice_number}", h.getInvoice)
		r.Post("/v1/invoices/{invoice_number}/sync", h.syncInvoice)
		r.Get("/v1/invoices/{invoice_number}/events", h.invoiceEvents)
		r.Post("/v1/invoices/{invoice_number}/cancel", h.cancelInvoice)
		r.Post("/v1/invoices/{invoice_number}/stream-token", h.issueStreamToken)
		r.Get("/v1/events", h.listEvents)
		r.Get("/v1/events/{id}", h.getEvent)
		r.Post("/v1/events/{id}/redeliver", h.redeliverEvent)
		r.Get("/v1/webhook-endpoints", h.listEndpoints)
		r.Post("/v1/webhook-endpoints/{name}/enable", h.enableEndpoint)
		r.Get("/v1/notifications", h.listNotifications)
		r.Get("/v1/attention", h.listAttention)
		r.Post("/v1/attention/{id}/resolve", h.resolveAttention)
	})
	return r
}
