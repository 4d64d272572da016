package httpapi

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net/http"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/rs/zerolog"

	"github.com/merchant/o2o/internal/config"
	"github.com/merchant/o2o/internal/metrics"
)

type ctxKey int

const requestIDKey ctxKey = iota

// HeaderRequestID carries the request id in and out, so a caller's id joins our logs to theirs.
const HeaderRequestID = "X-Request-Id"

func requestIDFrom(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey).(string)
	return id
}

// validRequestID accepts an incoming id only if it is short and plain, so it cannot forge log fields.
func validRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':') {
			return false
		}
	}
	return true
}

func newRequestID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// accessLog gives every request an id (honouring a valid incoming X-Request-Id and echoing it), puts a
// logger carrying that id in the context, recovers panics as 500s, and writes one line per request.
func accessLog(base zerolog.Logger, m *metrics.Metrics) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			id := r.Header.Get(HeaderRequestID)
			if !validRequestID(id) {
				id = newRequestID()
			}
			w.Header().Set(HeaderRequestID, id)
			log := base.With().Str("request_id", id).Logger()
			ctx := context.WithValue(log.WithContext(r.Context()), requestIDKey, id)
			r = r.WithContext(ctx)

			ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
			defer func() {
				if rec := recover(); rec != nil {
					if rec == http.ErrAbortHandler {
						panic(rec)
					}
					log.Error().Str("panic", fmt.Sprint(rec)).Str("stack", string(debug.Stack())).Msg("panic")
					writeError(ww, r, fmt.Errorf("panic: %v", rec))
				}
				route := "unmatched"
				if rc := chi.RouteContext(r.Context()); rc != nil && rc.RoutePattern() != "" {
					route = rc.RoutePattern()
				}
				status := ww.Status()
				if status == 0 {
					status = http.StatusOK
				}
				m.HTTPRequest(route, r.Method, status, time.Since(start))
				// The context's logger, not log: handlers add to it (the invoice a request is about).
				zerolog.Ctx(ctx).Info().
					Str("method", r.Method).
					Str("route", route).
					Int("status", status).
					Float64("duration_ms", float64(time.Since(start).Microseconds())/1000).
					Int("bytes", ww.BytesWritten()).
					Msg("request")
			}()
			next.ServeHTTP(ww, r)
		})
	}
}

// limitBody caps every request body; a larger body fails to read with *http.MaxBytesError, which the
// handler answers as 413 — after routing, so the request is logged and counted under its route. A body
// that announces more than the limit fails at once, without waiting for bytes that would be refused.
func limitBody(max int64) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.ContentLength > max {
				r.Body = tooLarge{limit: max}
			} else {
				r.Body = http.MaxBytesReader(w, r.Body, max)
			}
			next.ServeHTTP(w, r)
		})
	}
}

// tooLarge is the body of a request whose Content-Length is over the limit: reading it fails at once.
type tooLarge struct{ limit int64 }

func (b tooLarge) Read([]byte) (int, error) { return 0, &http.MaxBytesError{Limit: b.limit} }
func (b tooLarge) Close() error             { return nil }

// logAbout adds the invoice a request is about to every line logged for it, the access line included.
func logAbout(r *http.Request, number string) {
	zerolog.Ctx(r.Context()).UpdateContext(func(c zerolog.Context) zerolog.Context { return c.Str("invoice_number", number) })
}

// APIKey is an accepted bearer key: the name it is known by (recorded when it resolves an attention
// item), the SHA-256 of the key, which is all the service keeps of it, and the scopes it has.
type APIKey struct {
	Name   string
	Digest [32]byte
	Scopes []string
}

// KeyFor is the APIKey of a key given in clear, with every scope.
func KeyFor(name, key string) APIKey {
	return APIKey{Name: name, Digest: sha256.Sum256([]byte(key)), Scopes: config.Scopes}
}

const keyNameKey ctxKey = iota + 1

// keyNameFrom is the name of the API key the request was authenticated with.
func keyNameFrom(ctx context.Context) string {
	n, _ := ctx.Value(keyNameKey).(string)
	return n
}

// authorize admits requests carrying one of the API keys (keyFrom) that has scope; the key's name goes
// into the request's context. A valid key without the scope is 403: it is known, but not allowed this.
func (h *handlers) authorize(scope string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			key, ok := keyFrom(r, h.cfg.APIKeys)
			if !ok {
				writeError(w, r, errNoKey)
				return
			}
			if !slices.Contains(key.Scopes, scope) {
				writeError(w, r, refuse(http.StatusForbidden, codeForbidden, "the API key %q does not have the %s scope this route needs (API_KEY_SCOPES)", key.Name, scope))
				return
			}
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), keyNameKey, key.Name)))
		})
	}
}

var errNoKey = refuse(http.StatusUnauthorized, codeUnauthorized, "a valid API key is required: Authorization: Bearer <key>")

// bearerToken is the token of an Authorization header of the Bearer scheme, whose name is
// case-insensitive (RFC 9110 §11.1), or "".
func bearerToken(r *http.Request) string {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimLeft(token, " ")
}

// keyFrom is the API key the request carries as a bearer token, if it carries one of keys. Digests
// are compared in constant time, so neither a key's content nor its length leaks through timing, and
// all are checked whichever matches, so several keys can be valid at once during a rotation.
func keyFrom(r *http.Request, keys []APIKey) (APIKey, bool) {
	token := bearerToken(r)
	if token == "" {
		return APIKey{}, false
	}
	got := sha256.Sum256([]byte(token))
	match, which := 0, 0
	for i := range keys {
		eq := subtle.ConstantTimeCompare(got[:], keys[i].Digest[:])
		match |= eq
		which = subtle.ConstantTimeSelect(eq, i, which)
	}
	if match != 1 {
		return APIKey{}, false
	}
	return keys[which], true
}
