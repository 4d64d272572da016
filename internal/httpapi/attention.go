package httpapi

import (
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"

	"github.com/merchant/o2o/internal/invoice"
	"github.com/merchant/o2o/internal/view"
)

type attentionListJSON struct {
	Items      []view.Attention `json:"items"`
	NextCursor *string          `json:"next_cursor"`
}

// listAttention is the one queue of cases where money or an order needs a person's decision.
func (h *handlers) listAttention(w http.ResponseWriter, r *http.Request) {
	var f invoice.AttentionFilter
	err := listQuery(r.URL.RawQuery, &f.Limit, &f.Cursor, func(key string, vals []string) *invoice.FieldError {
		if len(vals) != 1 {
			return &invoice.FieldError{Field: key, Message: "must be given once"}
		}
		switch v := vals[0]; key {
		case "state":
			var ok bool
			if f.State, ok = invoice.ParseAttentionState(v); !ok {
				return &invoice.FieldError{Field: key, Message: oneOf(invoice.AttentionStates)}
			}
		case "reason":
			var ok bool
			if f.Reason, ok = invoice.ParseReason(v); !ok {
				return &invoice.FieldError{Field: key, Message: oneOf(invoice.Reasons)}
			}
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
	items, next, err := h.svc.Attention(r.Context(), f)
	if err != nil {
		writeError(w, r, err)
		return
	}
	out := attentionListJSON{Items: make([]view.Attention, 0, len(items)), NextCursor: view.OptString(next)}
	for _, a := range items {
		out.Items = append(out.Items, view.OfAttention(a))
	}
	writeJSON(w, http.StatusOK, out)
}

type resolveRequest struct {
	Note string `json:"note"`
}

// maxNote bounds what a person writes when resolving an item.
const maxNote = 2000

// resolveAttention records a person's decision on an item: who (the API key's name), when and what.
func (h *handlers) resolveAttention(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(chi.URLParam(r, "id"), 10, 64)
	if err != nil || id <= 0 {
		writeError(w, r, refuse(http.StatusNotFound, codeNotFound, "no attention item has this id"))
		return
	}
	var req resolveRequest
	if err := decodeJSON(r, &req); err != nil {
		writeError(w, r, err)
		return
	}
	note := strings.TrimSpace(req.Note)
	var msg string
	switch {
	case note == "":
		msg = "is required: say what was decided"
	case utf8.RuneCountInString(note) > maxNote:
		msg = "must be at most " + strconv.Itoa(maxNote) + " characters"
	case strings.IndexByte(note, 0) >= 0:
		msg = "must not contain the NUL character"
	}
	if msg != "" {
		writeError(w, r, invalid(invoice.FieldError{Field: "note", Message: msg}))
		return
	}
	a, err := h.svc.Resolve(r.Context(), id, keyNameFrom(r.Context()), note)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, view.OfAttention(a))
}
