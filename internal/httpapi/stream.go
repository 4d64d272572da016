package httpapi

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/merchant/o2o/internal/config"
	"github.com/merchant/o2o/internal/invoice"
	"github.com/merchant/o2o/internal/service"
	"github.com/merchant/o2o/internal/view"
)

// StreamConfig bounds the status streams.
type StreamConfig struct {
	MaxConnections int           // open streams per process
	MaxPerToken    int           // open streams per stream token, per process
	Heartbeat      time.Duration // a comment on an idle stream, so proxies and the client know it lives
	MaxDuration    time.Duration // then the stream ends; the client reconnects with Last-Event-ID
	// AllowedOrigins may open a stream from a browser page (CORS); PublicBaseURL, when set, makes the
	// stream_url handed out absolute.
	AllowedOrigins []string
	PublicBaseURL  string
}

// writeWait bounds each write to a stream: a client that stops reading is let go.
const writeWait = 10 * time.Second

// snapshotType is the type of a stream's first message: the invoice as it stands.
const snapshotType = "invoice.snapshot"

type streamTokenRequest struct {
	// TTLSeconds asks for a shorter life than the longest allowed (STREAM_TOKEN_TTL); absent, that.
	TTLSeconds *int64 `json:"ttl_seconds"`
}

type streamTokenJSON struct {
	Token     string `json:"token"`
	ExpiresAt string `json:"expires_at"`
	StreamURL string `json:"stream_url"`
}

// issueStreamToken gives a checkout page what it needs to follow one invoice without an API key.
func (h *handlers) issueStreamToken(w http.ResponseWriter, r *http.Request) {
	number, ok := invoiceNumber(w, r)
	if !ok {
		return
	}
	var req streamTokenRequest
	if err := decodeOptionalJSON(r, &req); err != nil {
		writeError(w, r, err)
		return
	}
	var ttl time.Duration // 0: the longest allowed
	if req.TTLSeconds != nil {
		if *req.TTLSeconds < 1 {
			writeError(w, r, invalid(invoice.FieldError{Field: "ttl_seconds", Message: "must be at least 1"}))
			return
		}
		// Longer than allowed is the longest allowed (the service caps it); bounded first, so that
		// seconds × 10⁹ cannot wrap around to a token that is dead on arrival.
		ttl = time.Duration(min(*req.TTLSeconds, math.MaxInt64/int64(time.Second))) * time.Second
	}
	token, expires, err := h.svc.IssueStreamToken(r.Context(), number, ttl)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, streamTokenJSON{Token: token, ExpiresAt: view.Time(expires),
		StreamURL: h.cfg.Stream.PublicBaseURL + "/v1/invoices/" + number + "/stream?token=" + token})
}

// revokeStreamTokens revokes every stream token of the invoice: new streams are refused, open ones
// end at their next heartbeat.
func (h *handlers) revokeStreamTokens(w http.ResponseWriter, r *http.Request) {
	number, ok := invoiceNumber(w, r)
	if !ok {
		return
	}
	n, err := h.svc.RevokeStreamTokens(r.Context(), number)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Revoked int `json:"revoked"`
	}{n})
}

// access is who opened a stream: an API key (the merchant's systems: everything), or a stream token
// (a customer's browser: the customer's view only, until Until).
type access struct {
	token string // the token's digest, hex ("" for a key)
	until time.Time
	// valid says, at each heartbeat, whether the token still admits the stream (it may be revoked).
	valid func(ctx context.Context) bool
}

func (a access) customer() bool { return a.token != "" }

// streamAccess admits a stream request by API key (Authorization, with the checkout scope) or by a
// stream token (?token=) for this very invoice.
func (h *handlers) streamAccess(r *http.Request, number string) (access, error) {
	if r.Header.Get("Authorization") != "" {
		key, ok := keyFrom(r, h.cfg.APIKeys)
		if !ok {
			return access{}, errNoKey
		}
		if !slices.Contains(key.Scopes, config.ScopeCheckout) {
			return access{}, refuse(http.StatusForbidden, codeForbidden, "the API key %q does not have the checkout scope a stream needs", key.Name)
		}
		return access{}, nil
	}
	token := r.URL.Query().Get("token")
	if token == "" {
		return access{}, refuse(http.StatusUnauthorized, codeUnauthorized, "an API key or a stream token (?token=) is required")
	}
	owner, until, err := h.svc.StreamTokenInvoice(r.Context(), token)
	switch {
	case errors.Is(err, invoice.ErrNotFound):
		return access{}, refuse(http.StatusUnauthorized, codeUnauthorized, "the stream token is unknown, revoked or has expired")
	case err != nil:
		return access{}, err
	case owner != number:
		return access{}, refuse(http.StatusForbidden, codeForbidden, "the stream token is for another invoice")
	}
	valid := func(ctx context.Context) bool {
		_, _, err := h.svc.StreamTokenInvoice(ctx, token)
		return !errors.Is(err, invoice.ErrNotFound)
	}
	return access{token: hex.EncodeToString(service.TokenDigest(token)), until: until, valid: valid}, nil
}

// cors answers a browser's cross-origin request: allowed origins get the headers that let the page
// read the stream; others are refused before any work. A request without Origin is not a browser's
// cross-origin request and passes.
func (h *handlers) cors(w http.ResponseWriter, r *http.Request) error {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return nil
	}
	if !slices.Contains(h.cfg.Stream.AllowedOrigins, origin) {
		return refuse(http.StatusForbidden, codeForbidden, "origin %s may not open status streams (STREAM_ALLOWED_ORIGINS)", origin)
	}
	w.Header().Set("Access-Control-Allow-Origin", origin)
	w.Header().Add("Vary", "Origin")
	return nil
}

// streamPreflight answers a browser's CORS preflight for the stream: GET, with Last-Event-ID (which
// EventSource sends when it reconnects).
func (h *handlers) streamPreflight(w http.ResponseWriter, r *http.Request) {
	w.Header().Add("Vary", "Origin")
	if err := h.cors(w, r); err != nil {
		writeError(w, r, err)
		return
	}
	if m := r.Header.Get("Access-Control-Request-Method"); m != http.MethodGet {
		writeError(w, r, refuse(http.StatusForbidden, codeForbidden, "a status stream is opened with GET"))
		return
	}
	for _, hdr := range strings.Split(r.Header.Get("Access-Control-Request-Headers"), ",") {
		if hdr = strings.TrimSpace(hdr); hdr != "" && !strings.EqualFold(hdr, "Last-Event-ID") && !strings.EqualFold(hdr, "Authorization") {
			writeError(w, r, refuse(http.StatusForbidden, codeForbidden, "header %s is not allowed on a status stream", hdr))
			return
		}
	}
	w.Header().Set("Access-Control-Allow-Methods", http.MethodGet)
	w.Header().Set("Access-Control-Allow-Headers", "Last-Event-ID, Authorization")
	w.Header().Set("Access-Control-Max-Age", "600")
	w.WriteHeader(http.StatusNoContent)
}

// streamSlots counts open streams, in all and per token.
type streamSlots struct {
	mu      sync.Mutex
	open    int
	byToken map[string]int
}

// take claims a slot for a stream opened with a (token ""), or says why not.
func (s *streamSlots) take(cfg StreamConfig, a access) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.open >= cfg.MaxConnections {
		return invoice.Errorf(invoice.ErrUnavailable, "too many status streams are open; retry shortly")
	}
	if a.customer() && s.byToken[a.token] >= cfg.MaxPerToken {
		return &invoice.Error{Kind: invoice.ErrRateLimited, Message: "this stream token already has as many open streams as it may (STREAM_MAX_PER_TOKEN)",
			RetryAfter: 5 * time.Second}
	}
	s.open++
	if a.customer() {
		if s.byToken == nil {
			s.byToken = map[string]int{}
		}
		s.byToken[a.token]++
	}
	return nil
}

func (s *streamSlots) release(a access) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.open--
	if a.customer() {
		if s.byToken[a.token]--; s.byToken[a.token] <= 0 {
			delete(s.byToken, a.token)
		}
	}
}

// streamInvoice is the status stream (Server-Sent Events): the invoice at once, then every event of
// it as it commits — whichever replica made the change — until the client leaves, the stream's time
// is up or its token stops admitting it. A client that reconnects with Last-Event-ID gets what it
// missed. A token (a customer's browser) sees the customer's view of the invoice's status changes only.
func (h *handlers) streamInvoice(w http.ResponseWriter, r *http.Request) {
	if err := h.cors(w, r); err != nil {
		writeError(w, r, err)
		return
	}
	number, ok := invoiceNumber(w, r)
	if !ok {
		return
	}
	a, err := h.streamAccess(r, number)
	if err != nil {
		writeError(w, r, err)
		return
	}
	h.serveStream(w, r, number, a)
}

// serveStream serves an invoice's stream to whoever a admits.
func (h *handlers) serveStream(w http.ResponseWriter, r *http.Request, number string, a access) {
	if err := h.streams.take(h.cfg.Stream, a); err != nil {
		writeError(w, r, err)
		return
	}
	defer h.streams.release(a)
	h.metrics.StreamOpened()
	defer h.metrics.StreamClosed()

	end := time.Now().Add(h.cfg.Stream.MaxDuration)
	if a.customer() && a.until.Before(end) {
		end = a.until
	}
	// Subscribe and watch before reading, so that nothing committed in between is missed: a change
	// on any replica whose statement ran after the watch committed is notified. (One whose statement
	// ran just before, and committed after the read, is sent at the next heartbeat.)
	// A resumption from an event that is not the invoice's is refused before anything is written.
	if err := h.checkResumption(r, number); err != nil {
		writeError(w, r, err)
		return
	}
	wake, stop := h.hub.Subscribe(number)
	defer stop()
	if err := h.svc.WatchInvoice(r.Context(), number, time.Until(end)); err != nil {
		writeError(w, r, err)
		return
	}
	s, err := h.openStream(r, number, a)
	if err != nil {
		writeError(w, r, err)
		return
	}
	s.w, s.rc = w, http.NewResponseController(w)
	// The server's read and write timeouts are for requests, not for a stream that lives for minutes:
	// reads stop here (the client sends nothing more), writes get a deadline each.
	_ = s.rc.SetReadDeadline(time.Time{})
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no") // a proxy must pass events on as they come
	w.WriteHeader(http.StatusOK)
	if err := s.start(); err != nil {
		return
	}
	h.follow(r, s, wake, end)
}

// follow sends what is new whenever the hub says so — and at each heartbeat as well, in case a
// wake-up was lost — until the stream ends. A token's stream also ends at the heartbeat after the
// token was revoked.
func (h *handlers) follow(r *http.Request, s *eventStream, wake <-chan struct{}, end time.Time) {
	deadline := time.NewTimer(time.Until(end))
	defer deadline.Stop()
	beat := time.NewTicker(h.cfg.Stream.Heartbeat)
	defer beat.Stop()
	for {
		var err error
		select {
		case <-r.Context().Done():
			return
		case <-deadline.C:
			return
		case <-h.closing:
			return
		case <-wake:
			err = s.sendNew()
		case <-beat.C:
			if s.access.valid != nil && !s.access.valid(r.Context()) {
				return
			}
			if err = s.sendNew(); err == nil {
				err = s.write([]byte(": heartbeat\n\n"))
			}
		}
		if err != nil {
			return
		}
	}
}

// eventStream is one open stream: where it is in its invoice's events.
type eventStream struct {
	h      *handlers
	r      *http.Request
	w      http.ResponseWriter
	rc     *http.ResponseController
	access access
	number string
	inv    *invoice.Invoice
	missed []*invoice.Published // events after Last-Event-ID, sent at start
	last   string               // the id of the last event sent (or known at start)
}

// openStream reads what the stream starts with: the invoice, and where in its events to continue —
// after Last-Event-ID when the client gives one, else after the latest event (the invoice as read
// already shows it). An event may be sent although the snapshot already reflects it; none is missed.
// checkResumption refuses a Last-Event-ID that is not an event id, or not one of invoice number's.
func (h *handlers) checkResumption(r *http.Request, number string) error {
	last := r.Header.Get("Last-Event-ID")
	if last == "" {
		return nil
	}
	if !validEventID(last) {
		return invalid(invoice.FieldError{Field: "Last-Event-ID", Message: "is not an event id"})
	}
	_, err := h.svc.InvoiceEvents(r.Context(), number, last)
	return err
}

func (h *handlers) openStream(r *http.Request, number string, a access) (*eventStream, error) {
	s := &eventStream{h: h, r: r, number: number, access: a, last: r.Header.Get("Last-Event-ID")}
	var err error
	if s.last != "" {
		if !validEventID(s.last) {
			return nil, invalid(invoice.FieldError{Field: "Last-Event-ID", Message: "is not an event id"})
		}
		if s.missed, err = h.svc.InvoiceEvents(r.Context(), number, s.last); err != nil {
			return nil, err
		}
	} else {
		evs, err := h.svc.InvoiceEvents(r.Context(), number, "")
		if err != nil {
			return nil, err
		}
		if len(evs) > 0 {
			s.last = evs[len(evs)-1].ID
		}
	}
	if s.inv, err = h.svc.Get(r.Context(), number); err != nil {
		return nil, err
	}
	return s, nil
}

// start sends the reconnection delay, the invoice as it stands (in the envelope every message has, as
// type invoice.snapshot, with the id of the last event it reflects), and what a reconnecting client
// missed.
func (s *eventStream) start() error {
	v := view.OfInvoice(s.inv)
	var data any = view.EventData{Invoice: &v}
	if s.access.customer() {
		c := view.ForCustomer(v)
		data = customerData{Invoice: &c}
	}
	body, err := json.Marshal(data)
	if err != nil {
		return err
	}
	// The snapshot's id is the last event it reflects (null before the invoice has any), so that a
	// client reconnecting with it as Last-Event-ID gets exactly what came after.
	snap := struct {
		ID            *string         `json:"id"`
		Type          string          `json:"type"`
		CreatedAt     string          `json:"created_at"`
		InvoiceNumber string          `json:"invoice_number"`
		Data          json.RawMessage `json:"data"`
	}{view.OptString(s.last), snapshotType, view.Time(time.Now()), s.number, body}
	raw, err := json.Marshal(snap)
	if err != nil {
		return err
	}
	var b bytes.Buffer
	b.WriteString("retry: 2000\n\n")
	if s.last != "" {
		b.WriteString("id: " + s.last + "\n")
	}
	b.WriteString("event: " + snapshotType + "\ndata: ")
	b.Write(raw)
	b.WriteString("\n\n")
	if err := s.write(b.Bytes()); err != nil {
		return err
	}
	return s.send(s.missed)
}

// customerData is an event's payload in a customer's stream: the customer's view of the invoice.
type customerData struct {
	Invoice *view.CustomerInvoice `json:"invoice"`
}

// customerEvent is e as a customer's stream carries it: a status change, with the customer's view of
// the invoice; nil for what a customer is not shown (payments' details, attention items).
func customerEvent(e *invoice.Published) (*view.Event, error) {
	if !strings.HasPrefix(string(e.Type), "invoice.") {
		return nil, nil
	}
	var full view.EventData
	if err := json.Unmarshal(e.Data, &full); err != nil {
		return nil, err
	}
	if full.Invoice == nil {
		return nil, nil
	}
	c := view.ForCustomer(*full.Invoice)
	body, err := json.Marshal(customerData{Invoice: &c})
	if err != nil {
		return nil, err
	}
	env := eventView(e)
	env.Data = body
	return &env, nil
}

// sendNew sends the invoice's events committed since the last one sent.
func (s *eventStream) sendNew() error {
	evs, err := s.h.svc.InvoiceEvents(s.r.Context(), s.number, s.last)
	if err != nil {
		return err
	}
	return s.send(evs)
}

func (s *eventStream) send(evs []*invoice.Published) error {
	if len(evs) == 0 {
		return nil
	}
	var b bytes.Buffer
	for _, e := range evs {
		env := eventView(e)
		if s.access.customer() {
			c, err := customerEvent(e)
			if err != nil {
				return err
			}
			if c == nil {
				continue
			}
			env = *c
		}
		if err := writeMessage(&b, env); err != nil {
			return err
		}
	}
	if b.Len() > 0 {
		if err := s.write(b.Bytes()); err != nil {
			return err
		}
	}
	s.last = evs[len(evs)-1].ID
	return nil
}

// writeMessage appends one Server-Sent Event: the envelope's id and type, and the envelope as one line
// of JSON. Ids and types are plain ASCII.
func writeMessage(b *bytes.Buffer, env view.Event) error {
	body, err := json.Marshal(env)
	if err != nil {
		return err
	}
	b.WriteString("id: " + env.ID + "\nevent: " + string(env.Type) + "\ndata: ")
	b.Write(body)
	b.WriteString("\n\n")
	return nil
}

func (s *eventStream) write(p []byte) error {
	_ = s.rc.SetWriteDeadline(time.Now().Add(writeWait))
	if _, err := s.w.Write(p); err != nil {
		return err
	}
	return s.rc.Flush()
}
