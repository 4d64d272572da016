package httpapi

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/merchant/o2o/internal/invoice"
	"github.com/merchant/o2o/internal/view"
)

type notificationJSON struct {
	ID             int64             `json:"id"`
	DokuRequestID  string            `json:"doku_request_id"`
	InvoiceNumber  string            `json:"invoice_number"`
	Outcome        invoice.Outcome   `json:"outcome"`
	Deliveries     int               `json:"deliveries"`
	ReceivedAt     string            `json:"received_at"`
	LastReceivedAt string            `json:"last_received_at"`
	Headers        map[string]string `json:"headers"`
	// Body is the raw body as received; BodyJSON the same parsed, when it is JSON.
	Body     string          `json:"body"`
	BodyJSON json.RawMessage `json:"body_json"`
}

type notificationListJSON struct {
	Items      []notificationJSON `json:"items"`
	NextCursor *string            `json:"next_cursor"`
}

// listNotifications is the inbox for operations: ?outcome=flagged lists what DOKU reported and we
// could not match — money a person has to look at.
func (h *handlers) listNotifications(w http.ResponseWriter, r *http.Request) {
	var f invoice.NotificationFilter
	err := listQuery(r.URL.RawQuery, &f.Limit, &f.Cursor, func(key string, vals []string) *invoice.FieldError {
		switch key {
		case "outcome":
			var fe *invoice.FieldError
			f.Outcomes, fe = parseOutcomes(key, vals)
			return fe
		case "invoice_number":
			if len(vals) != 1 {
				return &invoice.FieldError{Field: key, Message: "must be given once"}
			}
			return invoiceNumberParam(vals[0], &f.InvoiceNumber)
		default:
			return unknownParam(key)
		}
	})
	if err != nil {
		writeError(w, r, err)
		return
	}
	items, next, err := h.svc.Notifications(r.Context(), f)
	if err != nil {
		writeError(w, r, err)
		return
	}
	out := notificationListJSON{Items: make([]notificationJSON, 0, len(items)), NextCursor: view.OptString(next)}
	for _, n := range items {
		j := notificationJSON{ID: n.ID, DokuRequestID: n.RequestID, InvoiceNumber: n.InvoiceNumber, Outcome: n.Outcome,
			Deliveries: n.Deliveries, ReceivedAt: view.Time(n.ReceivedAt), LastReceivedAt: view.Time(n.LastReceivedAt),
			Headers: n.Headers, Body: strings.ToValidUTF8(string(n.Body), "\uFFFD"), BodyJSON: json.RawMessage("null")}
		// JSON is UTF-8 (RFC 8259); json.Valid does not check that, and a body DOKU signed may hold
		// any bytes, or JSON that is no object: such a one is shown only as text, bytes replaced.
		if trimmed := bytes.TrimSpace(n.Body); len(trimmed) > 0 && trimmed[0] == '{' && json.Valid(trimmed) && utf8.Valid(trimmed) {
			j.BodyJSON = n.Body
		}
		out.Items = append(out.Items, j)
	}
	writeJSON(w, http.StatusOK, out)
}

// parseOutcomes reads ?outcome=, comma-separated or repeated; "flagged" stands for every mismatch.
func parseOutcomes(key string, vals []string) ([]invoice.Outcome, *invoice.FieldError) {
	var out []invoice.Outcome
	for _, part := range vals {
		for _, o := range strings.Split(part, ",") {
			if o == "flagged" {
				for _, k := range invoice.NotificationOutcomes {
					if k.Mismatch() {
						out = append(out, k)
					}
				}
				continue
			}
			outcome, ok := invoice.ParseOutcome(o)
			if !ok {
				return nil, &invoice.FieldError{Field: key, Message: strconv.Quote(o) + ` is not an outcome: each ` +
					oneOf(append([]invoice.Outcome{"flagged"}, invoice.NotificationOutcomes...))[len("must be "):]}
			}
			out = append(out, outcome)
		}
	}
	return out, nil
}
