package httpapi

import (
	"errors"
	"io"
	"mime"
	"net/http"

	"github.com/merchant/o2o/internal/invoice"
	"github.com/merchant/o2o/internal/strictjson"
)

// decodeJSON decodes exactly one JSON value from the body into dst, refusing unknown fields, trailing
// data, other media types and oversized bodies, each with a precise problem code.
func decodeJSON(r *http.Request, dst any) error {
	if err := jsonContentType(r); err != nil {
		return err
	}
	body, err := io.ReadAll(r.Body) // bounded by the body limit
	if err != nil {
		return decodeError(err)
	}
	return decodeJSONBytes(body, dst)
}

// decodeOptionalJSON is decodeJSON for a body that may be left out: an empty body leaves dst as it is.
func decodeOptionalJSON(r *http.Request, dst any) error {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return decodeError(err)
	}
	if len(body) == 0 {
		return nil
	}
	if err := jsonContentType(r); err != nil {
		return err
	}
	return decodeJSONBytes(body, dst)
}

// jsonContentType refuses a body that says it is not JSON.
func jsonContentType(r *http.Request) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			return refuse(http.StatusUnsupportedMediaType, codeUnsupportedType, "the body must be application/json")
		}
	}
	return nil
}

// decodeJSONBytes is decodeJSON's strict decoding of an already-read body: keys match exactly, an
// unknown, repeated or case-variant key is refused, and so is text that is not UTF-8 — it would be
// replaced silently otherwise, and stored and sent to DOKU as something the client never wrote.
func decodeJSONBytes(body []byte, dst any) error {
	return decodeError(strictjson.Decode(body, dst))
}

func decodeError(err error) error {
	if err == nil {
		return nil
	}
	var (
		maxErr *http.MaxBytesError
		se     *strictjson.Error
	)
	switch {
	case errors.As(err, &maxErr):
		return refuse(http.StatusRequestEntityTooLarge, codeTooLarge, "the request body must be at most %d bytes", maxErr.Limit)
	case errors.As(err, &se) && se.Kind != strictjson.Syntax && se.Path != "":
		return invalid(invoice.FieldError{Field: se.Path, Message: se.Detail})
	case errors.As(err, &se):
		return refuse(http.StatusBadRequest, codeInvalidJSON, "%s", se.Detail)
	}
	return refuse(http.StatusBadRequest, codeInvalidJSON, "the body could not be read")
}
