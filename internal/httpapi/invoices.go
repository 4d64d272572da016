package httpapi

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/rs/zerolog"

	"github.com/merchant/o2o/internal/invoice"
	"github.com/merchant/o2o/internal/view"
)

func (h *handlers) createInvoice(w http.ResponseWriter, r *http.Request) {
	var req createRequest
	if err := decodeJSON(r, &req); err != nil {
		writeError(w, r, err)
		return
	}
	if invoice.CheckInvoiceNumber(req.InvoiceNumber) == "" {
		logAbout(r, req.InvoiceNumber)
	}
	// Every bad field at once: the body's own, and the domain's — one message per field, the body's
	// (an amount of "150000" is not an integer; that it is then missing is no news).
	d, errs := req.draft()
	var domain *invoice.ValidationError
	if err := h.svc.ValidateDraft(d); errors.As(err, &domain) {
		for _, fe := range domain.Fields {
			if !slices.ContainsFunc(errs, func(e invoice.FieldError) bool { return e.Field == fe.Field }) {
				errs = append(errs, fe)
			}
		}
	}
	if len(errs) > 0 {
		writeError(w, r, invalid(errs...))
		return
	}
	stored, created, err := h.svc.Create(r.Context(), d)
	if err != nil {
		writeError(w, r, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
		w.Header().Set("Location", "/v1/invoices/"+stored.Number)
	}
	writeJSON(w, status, view.OfInvoice(stored))
}

// invoiceNumber is the route's invoice number, added to every log line of the request. A number no
// invoice can have is answered 404 at once, without asking the database.
func invoiceNumber(w http.ResponseWriter, r *http.Request) (string, bool) {
	// chi hands over the segment as escaped when the path had escapes: a client that writes a
	// character of the number as %XX (INV%2D1, as some encode ~) means the number all the same.
	number, err := url.PathUnescape(chi.URLParam(r, "invoice_number"))
	if err != nil || invoice.CheckInvoiceNumber(number) != "" {
		writeError(w, r, refuse(http.StatusNotFound, codeNotFound, "invoice not found"))
		return "", false
	}
	logAbout(r, number)
	return number, true
}

func (h *handlers) getInvoice(w http.ResponseWriter, r *http.Request) {
	number, ok := invoiceNumber(w, r)
	if !ok {
		return
	}
	inv, err := h.svc.Get(r.Context(), number)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, view.OfInvoice(inv))
}

// syncInvoice checks the invoice with DOKU now and answers it as it then is.
func (h *handlers) syncInvoice(w http.ResponseWriter, r *http.Request) {
	number, ok := invoiceNumber(w, r)
	if !ok {
		return
	}
	inv, outcome, err := h.svc.Sync(r.Context(), number)
	if err != nil {
		writeError(w, r, err)
		return
	}
	if outcome.Mismatch() {
		zerolog.Ctx(r.Context()).Error().Str("invoice_number", number).Str("outcome", string(outcome)).
			Msg("DOKU reports a payment that does not match the invoice; left unchanged for a person")
	}
	writeJSON(w, http.StatusOK, view.OfInvoice(inv))
}

type historyJSON struct {
	At     string         `json:"at"`
	Source string         `json:"source"`
	Kind   string         `json:"kind"`
	From   *string        `json:"from_status"`
	To     *string        `json:"to_status"`
	Detail map[string]any `json:"detail"`
}

// invoiceEvents is an invoice's history: every status change, payment, DOKU call and notification,
// oldest first, with time and source — why the invoice is where it is.
func (h *handlers) invoiceEvents(w http.ResponseWriter, r *http.Request) {
	number, ok := invoiceNumber(w, r)
	if !ok {
		return
	}
	evs, err := h.svc.Events(r.Context(), number)
	if err != nil {
		writeError(w, r, err)
		return
	}
	out := struct {
		InvoiceNumber string        `json:"invoice_number"`
		Items         []historyJSON `json:"items"`
	}{InvoiceNumber: number, Items: make([]historyJSON, 0, len(evs))}
	for _, e := range evs {
		d := e.Detail
		if d == nil {
			d = map[string]any{}
		}
		out.Items = append(out.Items, historyJSON{At: e.At.UTC().Format(time.RFC3339Nano), Source: string(e.Source),
			Kind: string(e.Kind), From: view.OptString(string(e.From)), To: view.OptString(string(e.To)), Detail: d})
	}
	writeJSON(w, http.StatusOK, out)
}

type listJSON struct {
	Items      []view.Invoice `json:"items"`
	NextCursor *string        `json:"next_cursor"`
}

func (h *handlers) listInvoices(w http.ResponseWriter, r *http.Request) {
	f, err := parseListFilter(r.URL.RawQuery)
	if err != nil {
		writeError(w, r, err)
		return
	}
	items, next, err := h.svc.List(r.Context(), f)
	if err != nil {
		writeError(w, r, err)
		return
	}
	out := listJSON{Items: make([]view.Invoice, 0, len(items)), NextCursor: view.OptString(next)}
	for _, inv := range items {
		out.Items = append(out.Items, view.OfInvoice(inv))
	}
	writeJSON(w, http.StatusOK, out)
}

func parseListFilter(raw string) (invoice.ListFilter, error) {
	var f invoice.ListFilter
	err := listQuery(raw, &f.Limit, &f.Cursor, func(key string, vals []string) *invoice.FieldError {
		if key != "status" && key != "channel" {
			return unknownParam(key)
		}
		if len(vals) != 1 {
			return &invoice.FieldError{Field: key, Message: "must be given once"}
		}
		var ok bool
		switch v := vals[0]; key {
		case "status":
			if f.Status, ok = invoice.ParseStatus(v); !ok {
				return &invoice.FieldError{Field: key, Message: oneOf(invoice.Statuses)}
			}
		case "channel":
			if f.Channel, ok = invoice.ParseChannel(v); !ok {
				return &invoice.FieldError{Field: key, Message: oneOf(invoice.Channels)}
			}
		}
		return nil
	})
	return f, err
}
