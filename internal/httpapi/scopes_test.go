package httpapi

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/go-chi/chi/v5"
	"github.com/rs/zerolog"

	"github.com/merchant/o2o/api"
	"github.com/merchant/o2o/internal/config"
	"github.com/merchant/o2o/internal/metrics"
)

// publicRoutes answer without an API key, each for a reason: health and the contract for anyone,
// DOKU's webhook (its signature), a status stream (a key with the checkout scope, or a token).
var publicRoutes = []string{"GET /healthz", "GET /readyz", "GET /openapi.yaml", "POST /v1/notifications/doku",
	"GET /v1/invoices/{invoice_number}/stream", "OPTIONS /v1/invoices/{invoice_number}/stream",
	"GET /pay/{invoice_number}/{token}", "GET /pay/{invoice_number}/{token}/events"}

// Every route the router serves is either public for a reason listed above or in the route table with
// a scope: a route added any other way fails here. And a key with one scope is refused (403) on every
// route of another — the checkout frontend's key cannot resolve attention items, enable endpoints or
// redeliver events.
func TestEveryRouteNeedsItsScope(t *testing.T) {
	t.Parallel()
	const checkoutKey, operatorKey = "checkout-key-0123456789", "operator-key-0123456789"
	keys := []APIKey{
		{Name: "checkout", Digest: KeyFor("", checkoutKey).Digest, Scopes: []string{config.ScopeCheckout}},
		{Name: "ops", Digest: KeyFor("", operatorKey).Digest, Scopes: []string{config.ScopeOperator}},
	}
	router := NewServer(Config{APIKeys: keys, NotificationPath: "/v1/notifications/doku", MaxBodyBytes: 1 << 16, ServeMetrics: true},
		Deps{Logger: zerolog.Nop(), Metrics: metrics.New(nil)})
	table := map[string]string{}
	for _, rt := range (&handlers{}).apiRoutes() {
		if !slices.Contains(config.Scopes, rt.scope) {
			t.Errorf("%s %s needs scope %q, which is not one of %v", rt.method, rt.pattern, rt.scope, config.Scopes)
		}
		table[rt.method+" "+rt.pattern] = rt.scope
	}
	table["GET /metrics"] = config.ScopeMetrics

	var served []string
	err := chi.Walk(router.(chi.Routes), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		served = append(served, method+" "+route)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range served {
		scope, guarded := table[r]
		if !guarded {
			if !slices.Contains(publicRoutes, r) {
				t.Errorf("%s is served without a scope and is not a public route", r)
			}
			continue
		}
		method, pattern, _ := strings.Cut(r, " ")
		path := strings.NewReplacer("{invoice_number}", "INV-1", "{id}", "1", "{name}", "orders").Replace(pattern)
		for _, key := range []struct{ name, key, scope string }{{"checkout", checkoutKey, config.ScopeCheckout}, {"operator", operatorKey, config.ScopeOperator}} {
			if key.scope == scope {
				continue
			}
			req := httptest.NewRequest(method, path, nil)
			req.Header.Set("Authorization", "Bearer "+key.key)
			w := httptest.NewRecorder()
			router.ServeHTTP(w, req)
			if w.Code != http.StatusForbidden {
				t.Errorf("%s with a %s-scoped key: HTTP %d, want 403 (the route needs %s)", r, key.name, w.Code, scope)
			}
		}
		req := httptest.NewRequest(method, path, nil)
		w := httptest.NewRecorder()
		router.ServeHTTP(w, req)
		if w.Code != http.StatusUnauthorized {
			t.Errorf("%s without a key: HTTP %d, want 401", r, w.Code)
		}
	}
	if len(served) < len(table) {
		t.Errorf("the router serves %d routes, the table has %d", len(served), len(table))
	}

	// And the contract names the same scope for every route (x-scope), and none for the public ones.
	doc, err := openapi3.NewLoader().LoadFromData(api.OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	// The stream is public (a token opens it) but a key opening it needs the checkout scope.
	table["GET /v1/invoices/{invoice_number}/stream"] = config.ScopeCheckout
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			key := method + " " + path
			want := table[key]
			got, _ := op.Extensions["x-scope"].(string)
			if got != want {
				t.Errorf("contract: %s has x-scope %q, the route table %q", key, got, want)
			}
		}
	}
}
