package httpapi

import (
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"
	"github.com/rs/zerolog"

	"github.com/merchant/o2o/internal/config"
)

// route is one route of the internal API and the scope an API key needs for it: who may call what is
// decided in this one table (apiRoutes), and the one middleware below enforces it.
type route struct {
	method, pattern, scope string
	handler                http.HandlerFunc
}

// apiRoutes is every route that needs an API key.
func (h *handlers) apiRoutes() []route {
	return []route{
		{http.MethodPost, "/v1/invoices", config.ScopeCheckout, h.createInvoice},
		{http.MethodGet, "/v1/invoices", config.ScopeCheckout, h.listInvoices},
		{http.MethodGet, "/v1/invoices/{invoice_number}", config.ScopeCheckout, h.getInvoice},
		{http.MethodPost, "/v1/invoices/{invoice_number}/cancel", config.ScopeCheckout, h.cancelInvoice},
		{http.MethodPost, "/v1/invoices/{invoice_number}/stream-token", config.ScopeCheckout, h.issueStreamToken},
		{http.MethodDelete, "/v1/invoices/{invoice_number}/stream-tokens", config.ScopeCheckout, h.revokeStreamTokens},
		{http.MethodPost, "/v1/invoices/{invoice_number}/payment-page/revoke", config.ScopeCheckout, h.revokePaymentPage},

		{http.MethodGet, "/v1/events", config.ScopeEvents, h.listEvents},
		{http.MethodGet, "/v1/events/{id}", config.ScopeEvents, h.getEvent},

		{http.MethodPost, "/v1/invoices/{invoice_number}/sync", config.ScopeOperator, h.syncInvoice},
		{http.MethodGet, "/v1/invoices/{invoice_number}/events", config.ScopeOperator, h.invoiceEvents},
		{http.MethodPost, "/v1/events/{id}/redeliver", config.ScopeOperator, h.redeliverEvent},
		{http.MethodGet, "/v1/webhook-endpoints", config.ScopeOperator, h.listEndpoints},
		{http.MethodPost, "/v1/webhook-endpoints/{name}/enable", config.ScopeOperator, h.enableEndpoint},
		{http.MethodDelete, "/v1/webhook-endpoints/{name}", config.ScopeOperator, h.removeEndpoint},
		{http.MethodPost, "/v1/webhook-endpoints/{name}/redeliver", config.ScopeOperator, h.redeliverEndpoint},
		{http.MethodGet, "/v1/notifications", config.ScopeOperator, h.listNotifications},
		{http.MethodGet, "/v1/attention", config.ScopeOperator, h.listAttention},
		{http.MethodPost, "/v1/attention/{id}/resolve", config.ScopeOperator, h.resolveAttention},
	}
}

// routes is every route the service answers, in one place.
func (h *handlers) routes(log zerolog.Logger) http.Handler {
	r := chi.NewRouter()
	r.Use(accessLog(log, h.metrics))
	r.Use(limitBody(h.cfg.MaxBodyBytes))
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, refuse(http.StatusNotFound, codeNotFound, "no route %s %s", r.Method, r.URL.Path))
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, req *http.Request) {
		// The path as chi routed it: the escaped one when the request had escapes (a%2Fb).
		path := req.URL.RawPath
		if path == "" {
			path = req.URL.Path
		}
		allowed := allowedMethods(r, path)
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		writeError(w, req, refuse(http.StatusMethodNotAllowed, codeMethodNotAllowed, "method %s is not allowed here; this route allows %s",
			req.Method, strings.Join(allowed, ", ")))
	})

	r.Get("/healthz", h.healthz)
	r.Get("/readyz", h.readyz)
	r.Get("/openapi.yaml", serveSpec)
	if h.cfg.ServeMetrics && h.metrics != nil {
		// This listener also faces DOKU, so metrics need a key here (Prometheus sends it as a bearer
		// token); METRICS_ADDR serves them without one on an admin network instead.
		r.With(h.authorize(config.ScopeMetrics)).Method(http.MethodGet, "/metrics", h.metrics.Handler())
	}
	// DOKU cannot send our API key: the webhook is authenticated by its signature instead.
	r.Post(h.cfg.NotificationPath, h.dokuNotification)
	// A checkout page cannot hold an API key either: a stream takes a key or a stream token, and a
	// browser on another origin asks first (CORS).
	r.Get("/v1/invoices/{invoice_number}/stream", h.streamInvoice)
	r.Options("/v1/invoices/{invoice_number}/stream", h.streamPreflight)
	// The customer's payment page and its stream: the page's token is the key.
	r.Get("/pay/{invoice_number}/{token}", h.paymentPage)
	r.Get("/pay/{invoice_number}/{token}/events", h.pageStream)

	for _, rt := range h.apiRoutes() {
		r.With(h.authorize(rt.scope)).Method(rt.method, rt.pattern, rt.handler)
	}
	return r
}

// allowedMethods are the methods router answers on path, for a 405's Allow header.
func allowedMethods(router *chi.Mux, path string) []string {
	var out []string
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions} {
		if router.Match(chi.NewRouteContext(), m, path) {
			out = append(out, m)
		}
	}
	return out
}
