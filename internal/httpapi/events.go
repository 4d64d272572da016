package httpapi

import (
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"

	"github.com/merchant/o2o/internal/invoice"
	"github.com/merchant/o2o/internal/view"
)

// eventJSON is an event as the feed shows it: the event (as a webhook carries it) and its deliveries.
type eventJSON struct {
	view.Event
	Deliveries []deliveryJSON `json:"deliveries"`
}

type deliveryJSON struct {
	Endpoint      string        `json:"endpoint"`
	State         string        `json:"state"`
	Attempts      []attemptJSON `json:"attempts"`
	NextAttemptAt *string       `json:"next_attempt_at"`
	FinishedAt    *string       `json:"finished_at"`
}

type attemptJSON struct {
	At        string `json:"at"`
	Status    *int   `json:"status"`
	LatencyMS int64  `json:"latency_ms"`
	Error     string `json:"error"`
}

func eventView(e *invoice.Published) view.Event {
	return view.Event{ID: e.ID, Type: e.Type, CreatedAt: view.Time(e.CreatedAt), InvoiceNumber: view.OptString(e.InvoiceNumber), Data: e.Data}
}

func toEventJSON(e *invoice.Published) eventJSON {
	out := eventJSON{Event: eventView(e), Deliveries: make([]deliveryJSON, 0, len(e.Deliveries))}
	for _, d := range e.Deliveries {
		dj := deliveryJSON{Endpoint: d.Endpoint, State: string(d.State), Attempts: make([]attemptJSON, 0, len(d.Tries)),
			FinishedAt: view.OptTime(d.FinishedAt)}
		if d.State == invoice.DeliveryPending {
			dj.NextAttemptAt = view.OptTime(&d.NextAttemptAt)
		}
		for _, a := range d.Tries {
			aj := attemptJSON{At: view.Time(a.At), LatencyMS: a.Latency.Milliseconds(), Error: a.Error}
			if a.Status != 0 {
				aj.Status = &a.Status
			}
			dj.Attempts = append(dj.Attempts, aj)
		}
		out.Deliveries = append(out.Deliveries, dj)
	}
	return out
}

type eventListJSON struct {
	Items []eventJSON `json:"items"`
	// NextCursor continues after the last item (after=…); it is the given cursor when there was
	// nothing new, so a consumer keeps polling with it.
	NextCursor *string `json:"next_cursor"`
	HasMore    bool    `json:"has_more"`
}

// listEvents is the feed for consumers that pull: every event, in the feed's order, from a cursor.
func (h *handlers) listEvents(w http.ResponseWriter, r *http.Request) {
	var f invoice.EventFilter
	err := listQuery(r.URL.RawQuery, &f.Limit, nil, func(key string, vals []string) *invoice.FieldError {
		if len(vals) != 1 {
			return &invoice.FieldError{Field: key, Message: "must be given once"}
		}
		v := vals[0]
		var ok bool
		switch key {
		case "after":
			f.After = v
		case "type":
			if f.Type, ok = invoice.ParseChangeType(v); !ok {
				return &invoice.FieldError{Field: key, Message: oneOf(invoice.ChangeTypes)}
			}
		case "invoice_number":
			return invoiceNumberParam(v, &f.InvoiceNumber)
		case "delivery_state":
			if f.DeliveryState, ok = invoice.ParseDeliveryState(v); !ok {
				return &invoice.FieldError{Field: key, Message: oneOf(invoice.DeliveryStates)}
			}
		case "endpoint":
			if !validEndpointName(v) {
				return &invoice.FieldError{Field: key, Message: endpointNameRule}
			}
			f.Endpoint = v
		default:
			return unknownParam(key)
		}
		return nil
	})
	if err != nil {
		writeError(w, r, err)
		return
	}
	evs, next, more, err := h.svc.Feed(r.Context(), f)
	if err != nil {
		writeError(w, r, err)
		return
	}
	out := eventListJSON{Items: make([]eventJSON, 0, len(evs)), NextCursor: view.OptString(next), HasMore: more}
	for _, e := range evs {
		out.Items = append(out.Items, toEventJSON(e))
	}
	writeJSON(w, http.StatusOK, out)
}

// endpointNameRule is what an endpoint's name is (EVENTS_ENDPOINTS names them).
const endpointNameRule = "must be an endpoint name: 1-64 of A-Z a-z 0-9 . _ -"

// validEndpointName reports whether name could be an endpoint's; no other is looked up (the database
// would refuse some bytes outright).
func validEndpointName(name string) bool {
	return len(name) >= 1 && len(name) <= 64 && !strings.ContainsFunc(name, func(r rune) bool {
		return !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-')
	})
}

// endpointName is the route's endpoint name; one no endpoint can have is answered 404 at once.
func endpointName(w http.ResponseWriter, r *http.Request) (string, bool) {
	name := chi.URLParam(r, "name")
	if !validEndpointName(name) {
		writeError(w, r, refuse(http.StatusNotFound, codeNotFound, "no webhook endpoint is named so (%s)", endpointNameRule))
		return "", false
	}
	return name, true
}

// validEventID reports whether id could be an event's id; no other is looked up.
func validEventID(id string) bool {
	rest, ok := strings.CutPrefix(id, "evt_")
	return ok && len(rest) == 32 && !strings.ContainsFunc(rest, func(r rune) bool { return !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f') })
}

func (h *handlers) getEvent(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	if !validEventID(id) {
		writeError(w, r, refuse(http.StatusNotFound, codeNotFound, "event not found"))
		return
	}
	e, err := h.svc.Event(r.Context(), id)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toEventJSON(e))
}

type redeliverRequest struct {
	Endpoint string `json:"endpoint"`
}

// redeliverEvent offers an event again, to one endpoint or all, with a fresh retry period.
func (h *handlers) redeliverEvent(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	if !validEventID(id) {
		writeError(w, r, refuse(http.StatusNotFound, codeNotFound, "event not found"))
		return
	}
	var req redeliverRequest
	if err := decodeOptionalJSON(r, &req); err != nil {
		writeError(w, r, err)
		return
	}
	if req.Endpoint != "" && !validEndpointName(req.Endpoint) {
		writeError(w, r, invalid(invoice.FieldError{Field: "endpoint", Message: endpointNameRule}))
		return
	}
	e, err := h.svc.Redeliver(r.Context(), id, req.Endpoint)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, toEventJSON(e))
}

type endpointJSON struct {
	Name           string  `json:"name"`
	URL            string  `json:"url"`
	State          string  `json:"state"`
	Active         bool    `json:"active"`
	RemovedAt      *string `json:"removed_at"`
	DisabledAt     *string `json:"disabled_at"`
	DisabledReason *string `json:"disabled_reason"`
	EnabledAt      *string `json:"enabled_at"`
	Pending        *int    `json:"pending"`
	OldestPendingS *int64  `json:"oldest_pending_seconds"`
}

// toEndpointJSON is e as the API shows it; its backlog only when withBacklog (the listing counts it;
// enabling or removing an endpoint does not, whatever its size).
func toEndpointJSON(e invoice.Endpoint, withBacklog bool) endpointJSON {
	state := "active"
	switch {
	case !e.Active:
		state = "removed"
	case e.DisabledAt != nil:
		state = "disabled"
	}
	out := endpointJSON{Name: e.Name, URL: e.URL, State: state, Active: e.Active, RemovedAt: view.OptTime(e.RemovedAt),
		DisabledAt: view.OptTime(e.DisabledAt), DisabledReason: view.OptString(e.DisabledReason), EnabledAt: view.OptTime(e.EnabledAt)}
	if withBacklog {
		oldest := int64(e.Oldest.Seconds())
		out.Pending, out.OldestPendingS = &e.Pending, &oldest
	}
	return out
}

func (h *handlers) listEndpoints(w http.ResponseWriter, r *http.Request) {
	eps, err := h.svc.Endpoints(r.Context())
	if err != nil {
		writeError(w, r, err)
		return
	}
	out := struct {
		Items []endpointJSON `json:"items"`
	}{Items: make([]endpointJSON, 0, len(eps))}
	for _, e := range eps {
		out.Items = append(out.Items, toEndpointJSON(e, true))
	}
	writeJSON(w, http.StatusOK, out)
}

// enableEndpoint resumes deliveries to an endpoint a 410 Gone disabled, or registers a removed one
// again; what waited goes out with a fresh retry period.
func (h *handlers) enableEndpoint(w http.ResponseWriter, r *http.Request) {
	name, ok := endpointName(w, r)
	if !ok {
		return
	}
	e, err := h.svc.EnableEndpoint(r.Context(), name)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toEndpointJSON(e, false))
}

// removeEndpoint stops queueing events for an endpoint, whatever the replicas' configurations say.
func (h *handlers) removeEndpoint(w http.ResponseWriter, r *http.Request) {
	name, ok := endpointName(w, r)
	if !ok {
		return
	}
	e, err := h.svc.RemoveEndpoint(r.Context(), name)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toEndpointJSON(e, false))
}

type bulkRedeliverRequest struct {
	State string `json:"state"`
	From  string `json:"from"`
	To    string `json:"to"`
}

// redeliverEndpoint offers again, in bulk, an endpoint's dead deliveries (or its delivered ones, to a
// receiver that lost them) of events created in [from, to).
func (h *handlers) redeliverEndpoint(w http.ResponseWriter, r *http.Request) {
	name, ok := endpointName(w, r)
	if !ok {
		return
	}
	var req bulkRedeliverRequest
	if err := decodeOptionalJSON(r, &req); err != nil {
		writeError(w, r, err)
		return
	}
	state, from, to := invoice.DeliveryDead, time.Time{}, time.Now().Add(time.Hour)
	var errs []invoice.FieldError
	if req.State != "" {
		if s, ok := invoice.ParseDeliveryState(req.State); ok && s != invoice.DeliveryPending {
			state = s
		} else {
			errs = append(errs, invoice.FieldError{Field: "state", Message: `must be "dead" or "delivered"`})
		}
	}
	for _, t := range []struct {
		field, value string
		into         *time.Time
	}{{"from", req.From, &from}, {"to", req.To, &to}} {
		if t.value == "" {
			continue
		}
		v, err := time.Parse(time.RFC3339, t.value)
		if err != nil {
			errs = append(errs, invoice.FieldError{Field: t.field, Message: "must be an RFC 3339 time such as 2026-01-02T15:04:05Z"})
			continue
		}
		*t.into = v
	}
	if len(errs) == 0 && !from.Before(to) {
		errs = append(errs, invoice.FieldError{Field: "to", Message: "must be after from"})
	}
	if len(errs) > 0 {
		writeError(w, r, invalid(errs...))
		return
	}
	n, err := h.svc.RedeliverAll(r.Context(), name, state, from, to)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, struct {
		Endpoint    string `json:"endpoint"`
		State       string `json:"state"`
		Redelivered int    `json:"redelivered"`
	}{name, string(state), n})
}

type cancelRequest struct {
	Reason string `json:"reason"`
}

// maxCancelReason bounds the reason kept with a cancellation.
const maxCancelReason = 500

// cancelInvoice cancels a creating or pending invoice; cancelling again answers the same invoice.
func (h *handlers) cancelInvoice(w http.ResponseWriter, r *http.Request) {
	number, ok := invoiceNumber(w, r)
	if !ok {
		return
	}
	var req cancelRequest
	if err := decodeJSON(r, &req); err != nil {
		writeError(w, r, err)
		return
	}
	reason := strings.TrimSpace(req.Reason)
	var msg string
	switch {
	case reason == "":
		msg = "is required: say why the order is cancelled"
	case utf8.RuneCountInString(reason) > maxCancelReason:
		msg = "must be at most 500 characters"
	case strings.ContainsFunc(reason, func(r rune) bool { return r < 0x20 && r != '\n' || r == 0x7f }):
		msg = "must not contain control characters"
	}
	if msg != "" {
		writeError(w, r, invalid(invoice.FieldError{Field: "reason", Message: msg}))
		return
	}
	inv, err := h.svc.Cancel(r.Context(), number, reason)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, view.OfInvoice(inv))
}
