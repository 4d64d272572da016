package httpapi

import (
	"net/http"
	"strings"
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

// listEvents is the feed for consumers that pull: every event, oldest first, from a cursor.
func (h *handlers) listEvents(w http.ResponseWriter, r *http.Request) {
	var f invoice.EventFilter
	err := listQuery(r.URL.RawQuery, &f.Limit, nil, func(key string, vals []string) *invoice.FieldError {
		if len(vals) != 1 {
			return &invoice.FieldError{Field: key, Message: "must be given once"}
		}
		v := vals[0]
		switch key {
		case "after":
			f.After = v
		case "type":
			t, ok := invoice.ParseChangeType(v)
			if !ok {
				return &invoice.FieldError{Field: key, Message: "must be one of the event types"}
			}
			f.Type = t
		case "invoice_number":
			return invoiceNumberParam(v, &f.InvoiceNumber)
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
	Active         bool    `json:"active"`
	DisabledAt     *string `json:"disabled_at"`
	DisabledReason *string `json:"disabled_reason"`
}

func toEndpointJSON(e invoice.Endpoint) endpointJSON {
	return endpointJSON{Name: e.Name, URL: e.URL, Active: e.Active, DisabledAt: view.OptTime(e.DisabledAt),
		DisabledReason: view.OptString(e.DisabledReason)}
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
		out.Items = append(out.Items, toEndpointJSON(e))
	}
	writeJSON(w, http.StatusOK, out)
}

// enableEndpoint resumes deliveries to an endpoint a 410 Gone disabled; what waited goes out now.
func (h *handlers) enableEndpoint(w http.ResponseWriter, r *http.Request) {
	e, err := h.svc.EnableEndpoint(r.Context(), chi.URLParam(r, "name"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toEndpointJSON(e))
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
