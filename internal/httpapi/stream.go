package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/merchant/o2o/internal/invoice"
	"github.com/merchant/o2o/internal/view"
)

// StreamConfig bounds the status streams.
type StreamConfig struct {
	MaxConnections int           // open streams per process
	Heartbeat      time.Duration // a comment on an idle stream, so proxies and the client know it lives
	MaxDuration    time.Duration // then the stream ends; the client reconnects with Last-Event-ID
}

// writeWait bounds each write to a stream: a client that stops reading is let go.
const writeWait = 10 * time.Second

type streamTokenRequest struct {
	// TTLSeconds asks for a shorter life than the longest allowed (STREAM_TOKEN_TTL).
	TTLSeconds int `json:"ttl_seconds"`
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
	if req.TTLSeconds < 0 {
		writeError(w, r, invalid(invoice.FieldError{Field: "ttl_seconds", Message: "must be positive"}))
		return
	}
	token, expires, err := h.svc.IssueStreamToken(r.Context(), number, time.Duration(req.TTLSeconds)*time.Second)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, streamTokenJSON{Token: token, ExpiresAt: view.Time(expires),
		StreamURL: "/v1/invoices/" + number + "/stream?token=" + token})
}

// streamAccess admits a stream request by API key (Authorization) or by a stream token (?token=) for
// this very invoice, and says until when a token admits it (zero for a key).
func (h *handlers) streamAccess(r *http.Request, number string) (time.Time, error) {
	if r.Header.Get("Authorization") != "" {
		if _, ok := keyFrom(r, h.cfg.APIKeys); !ok {
			return time.Time{}, errNoKey
		}
		return time.Time{}, nil
	}
	token := r.URL.Query().Get("token")
	if token == "" {
		return time.Time{}, refuse(http.StatusUnauthorized, codeUnauthorized, "an API key or a stream token (?token=) is required")
	}
	owner, expires, err := h.svc.StreamTokenInvoice(r.Context(), token)
	switch {
	case errors.Is(err, invoice.ErrNotFound):
		return time.Time{}, refuse(http.StatusUnauthorized, codeUnauthorized, "the stream token is unknown or has expired")
	case err != nil:
		return time.Time{}, err
	case owner != number:
		return time.Time{}, refuse(http.StatusForbidden, codeForbidden, "the stream token is for another invoice")
	}
	return expires, nil
}

// streamInvoice is the status stream (Server-Sent Events): the invoice at once, then every event of
// it as it commits — whichever replica made the change — until the client leaves, the stream's time
// is up or its token expires. A client that reconnects with Last-Event-ID gets what it missed.
func (h *handlers) streamInvoice(w http.ResponseWriter, r *http.Request) {
	number, ok := invoiceNumber(w, r)
	if !ok {
		return
	}
	tokenExpires, err := h.streamAccess(r, number)
	if err != nil {
		writeError(w, r, err)
		return
	}
	if h.openStreams.Add(1) > int64(h.cfg.Stream.MaxConnections) {
		h.openStreams.Add(-1)
		writeError(w, r, invoice.Errorf(invoice.ErrUnavailable, "too many status streams are open; retry shortly"))
		return
	}
	defer h.openStreams.Add(-1)
	h.metrics.StreamOpened()
	defer h.metrics.StreamClosed()

	end := time.Now().Add(h.cfg.Stream.MaxDuration)
	if !tokenExpires.IsZero() && tokenExpires.Before(end) {
		end = tokenExpires
	}
	// Subscribe and watch before reading, so that nothing committed in between is missed: a change
	// on any replica whose statement ran after the watch committed is notified. (One whose statement
	// ran just before, and committed after the read, is sent at the next heartbeat.)
	wake, stop := h.hub.Subscribe(number)
	defer stop()
	if err := h.svc.WatchInvoice(r.Context(), number, time.Until(end)); err != nil {
		writeError(w, r, err)
		return
	}
	s, err := h.openStream(r, number)
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
// wake-up was lost — until the stream ends.
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
	number string
	inv    *invoice.Invoice
	missed []*invoice.Published // events after Last-Event-ID, sent at start
	last   string               // the id of the last event sent (or known at start)
}

// openStream reads what the stream starts with: the invoice, and where in its events to continue —
// after Last-Event-ID when the client gives one, else after the latest event (the invoice as read
// already shows it). An event may be sent although the snapshot already reflects it; none is missed.
func (h *handlers) openStream(r *http.Request, number string) (*eventStream, error) {
	s := &eventStream{h: h, r: r, number: number, last: r.Header.Get("Last-Event-ID")}
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

// start sends the reconnection delay, the invoice as it stands, and what a reconnecting client
// missed.
func (s *eventStream) start() error {
	body, err := json.Marshal(view.OfInvoice(s.inv))
	if err != nil {
		return err
	}
	var b bytes.Buffer
	b.WriteString("retry: 2000\n\nevent: invoice\ndata: ")
	b.Write(body)
	b.WriteString("\n\n")
	if err := s.write(b.Bytes()); err != nil {
		return err
	}
	return s.send(s.missed)
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
		body, err := json.Marshal(eventView(e))
		if err != nil {
			return err
		}
		// Event ids and types are plain ASCII; the body is one line of JSON.
		b.WriteString("id: " + e.ID + "\nevent: " + string(e.Type) + "\ndata: ")
		b.Write(body)
		b.WriteString("\n\n")
	}
	if err := s.write(b.Bytes()); err != nil {
		return err
	}
	s.last = evs[len(evs)-1].ID
	return nil
}

func (s *eventStream) write(p []byte) error {
	_ = s.rc.SetWriteDeadline(time.Now().Add(writeWait))
	if _, err := s.w.Write(p); err != nil {
		return err
	}
	return s.rc.Flush()
}
