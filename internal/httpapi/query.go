package httpapi

import (
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/merchant/o2o/internal/invoice"
)

const (
	defaultPageSize = 20
	maxPageSize     = 100
)

// listQuery reads a list endpoint's query string strictly: a malformed string, an unknown parameter or
// a repeated one is a field error, never silently ignored — a misspelt filter would otherwise widen
// the result. limit and cursor are common to every list (cursor nil: the list pages otherwise); param
// handles the endpoint's own filters.
func listQuery(raw string, limit *int, cursor *string, param func(key string, vals []string) *invoice.FieldError) error {
	// url.URL.Query() drops what it cannot parse; ParseQuery says so.
	q, err := url.ParseQuery(raw)
	if err != nil {
		return invalid(invoice.FieldError{Field: "query", Message: "is not a valid URL query string"})
	}
	*limit = defaultPageSize
	var errs []invoice.FieldError
	for key, vals := range q {
		var fe *invoice.FieldError
		switch {
		case key == "limit":
			n, err := strconv.Atoi(vals[0])
			if err != nil || n < 1 || n > maxPageSize || len(vals) != 1 {
				fe = &invoice.FieldError{Field: key, Message: "must be one integer from 1 to " + strconv.Itoa(maxPageSize)}
			}
			*limit = n
		case key == "cursor" && cursor != nil:
			if len(vals) != 1 {
				fe = &invoice.FieldError{Field: key, Message: "must be given once"}
			}
			*cursor = vals[0]
		default:
			fe = param(key, vals)
		}
		if fe != nil {
			errs = append(errs, *fe)
		}
	}
	if len(errs) == 0 {
		return nil
	}
	slices.SortFunc(errs, func(a, b invoice.FieldError) int { return strings.Compare(a.Field, b.Field) })
	return invalid(errs...)
}

func unknownParam(key string) *invoice.FieldError {
	return &invoice.FieldError{Field: key, Message: "is not a known query parameter"}
}

// invoiceNumberParam reads the invoice_number filter the lists share into into.
func invoiceNumberParam(v string, into *string) *invoice.FieldError {
	if invoice.CheckInvoiceNumber(v) != "" {
		return &invoice.FieldError{Field: "invoice_number", Message: "must be a valid invoice number"}
	}
	*into = v
	return nil
}

// oneOf is the message for a value that is not in list: the list itself, from the domain's one list
// of the values (the contract's enum is tested against the same list).
func oneOf[T ~string](list []T) string {
	quoted := make([]string, len(list))
	for i, v := range list {
		quoted[i] = strconv.Quote(string(v))
	}
	return "must be one of " + strings.Join(quoted, ", ")
}
