package httpapi_test

import (
	"bytes"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/merchant/o2o/internal/apitest"
)

// The event and endpoint routes take names, ids, cursors and bodies from anyone holding a key: no
// byte of any of them may answer 500 (PostgreSQL refuses some text outright, so what is not a valid
// name is refused before it gets there).
func TestEventRoutesRefuseWhatPostgreSQLCannotStore(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, apitest.Options{})
	for _, c := range []struct {
		method, path, body string
		want               int
	}{
		{http.MethodPost, "/v1/webhook-endpoints/%FF/enable", "", http.StatusNotFound},
		{http.MethodPost, "/v1/webhook-endpoints/%00/enable", "", http.StatusNotFound},
		{http.MethodDelete, "/v1/webhook-endpoints/%FF", "", http.StatusNotFound},
		{http.MethodPost, "/v1/webhook-endpoints/%C0%80/redeliver", "", http.StatusNotFound},
		{http.MethodPost, "/v1/events/evt_00000000000000000000000000000001/redeliver", `{"endpoint":"\u0000"}`, http.StatusUnprocessableEntity},
		{http.MethodPost, "/v1/events/evt_00000000000000000000000000000001/redeliver", `{"endpoint":"\ud800"}`, http.StatusUnprocessableEntity},
		{http.MethodGet, "/v1/events?endpoint=%00&delivery_state=dead", "", http.StatusUnprocessableEntity},
		{http.MethodGet, "/v1/events?after=" + url.QueryEscape("ev:99999999999999999999:1"), "", http.StatusUnprocessableEntity},
		{http.MethodGet, "/v1/events?after=ZXY6MTow", "", http.StatusUnprocessableEntity}, // "ev:1:0"
		{http.MethodPost, "/v1/webhook-endpoints/orders/redeliver", `{"from":"yesterday"}`, http.StatusUnprocessableEntity},
		{http.MethodPost, "/v1/webhook-endpoints/orders/redeliver", `{"state":"pending"}`, http.StatusUnprocessableEntity},
	} {
		var body []byte
		if c.body != "" {
			body = []byte(c.body)
		}
		if r := s.Send(apitest.Request{Method: c.method, Path: c.path, Body: body}); r.Status != c.want {
			t.Errorf("%s %s %s: HTTP %d %s, want %d", c.method, c.path, c.body, r.Status, r.Body, c.want)
		}
	}
}

// FuzzEventRoutes sends whatever path segment, query and body to the event and endpoint routes: the
// answer is never a 5xx. Its seed corpus runs in every `make test`.
func FuzzEventRoutes(f *testing.F) {
	for _, seed := range []struct {
		route   uint8
		segment string
		query   string
		body    []byte
	}{
		{0, "orders", "", nil},
		{1, "\xff", "", []byte(`{"endpoint":"\u0000"}`)},
		{2, "%00", "delivery_state=dead&endpoint=orders", nil},
		{3, "evt_0123456789abcdef0123456789abcdef", "after=ev:1:1&limit=3", []byte(`{"endpoint":"orders"}`)},
		{4, "orders", "", []byte(`{"state":"dead","from":"2026-01-01T00:00:00Z","to":"2025-01-01T00:00:00Z"}`)},
		{5, "orders", "type=invoice.paid&invoice_number=INV-1&after=aWQ6MQ", nil},
		{6, "x", "", []byte(`{"state":"delivered","from":"2026-01-01T00:00:00+07:00"}`)},
		{0, "a..b", "endpoint=%ED%A0%80", []byte("\x00")},
	} {
		f.Add(seed.route, seed.segment, seed.query, seed.body)
	}
	s := apitest.New(f, apitest.Options{})
	f.Fuzz(func(t *testing.T, route uint8, segment, query string, body []byte) {
		seg := url.PathEscape(segment)
		paths := []struct{ method, path string }{
			{http.MethodPost, "/v1/webhook-endpoints/" + seg + "/enable"},
			{http.MethodPost, "/v1/events/" + seg + "/redeliver"},
			{http.MethodGet, "/v1/events/" + seg},
			{http.MethodGet, "/v1/events"},
			{http.MethodPost, "/v1/webhook-endpoints/" + seg + "/redeliver"},
			{http.MethodGet, "/v1/events"},
			{http.MethodDelete, "/v1/webhook-endpoints/" + seg},
		}
		p := paths[int(route)%len(paths)]
		target := s.URL + p.path
		if query != "" {
			target += "?" + query
		}
		req, err := http.NewRequest(p.method, target, bytes.NewReader(body))
		if err != nil {
			return // not a request a client could send
		}
		req.Header.Set("Authorization", "Bearer "+apitest.APIKey)
		if len(body) > 0 {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return
		}
		defer resp.Body.Close()
		answer, _ := io.ReadAll(resp.Body)
		if resp.StatusCode >= 500 {
			t.Fatalf("%s %s with body %q: HTTP %d %s", p.method, strings.TrimPrefix(target, s.URL), body, resp.StatusCode, answer)
		}
	})
}
