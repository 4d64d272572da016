package httpapi

import (
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"strconv"

	"github.com/rs/zerolog"

	"github.com/merchant/o2o/internal/invoice"
)

// problem is an RFC 9457 problem document with our stable machine code and field errors.
type problem struct {
	Type      string               `json:"type"`
	Title     string               `json:"title"`
	Status    int                  `json:"status"`
	Detail    string               `json:"detail"`
	Code      invoice.Code         `json:"code"`
	Errors    []invoice.FieldError `json:"errors,omitempty"`
	RequestID string               `json:"request_id,omitempty"`
}

// problemTypeBase prefixes the code to make the problem's type URI.
const problemTypeBase = "urn:o2o:problem:"

// retryAfterSeconds is the hint sent with every 503: long enough for a DOKU or database blip to pass,
// short enough that a checkout page can wait for it.
const retryAfterSeconds = 5

// statusOf is the one table from error code to HTTP status.
var statusOf = map[invoice.Code]int{
	invoice.CodeValidation:          http.StatusUnprocessableEntity,
	invoice.CodeInvalidJSON:         http.StatusBadRequest,
	invoice.CodeInvalidNotification: http.StatusBadRequest,
	invoice.CodeNotFound:            http.StatusNotFound,
	invoice.CodeInvoiceExists:       http.StatusConflict,
	invoice.CodeNotIssued:           http.StatusConflict,
	invoice.CodeRequestInProgress:   http.StatusConflict,
	invoice.CodeAlreadyResolved:     http.StatusConflict,
	invoice.CodeRateLimited:         http.StatusTooManyRequests,
	invoice.CodeForbidden:           http.StatusForbidden,
	invoice.CodeStaleNotification:   http.StatusUnauthorized,
	invoice.CodeUnauthorized:        http.StatusUnauthorized,
	invoice.CodeBadSignature:        http.StatusUnauthorized,
	invoice.CodeMethodNotAllowed:    http.StatusMethodNotAllowed,
	invoice.CodeTooLarge:            http.StatusRequestEntityTooLarge,
	invoice.CodeUnsupportedType:     http.StatusUnsupportedMediaType,
	invoice.CodeDokuRejected:        http.StatusBadGateway,
	invoice.CodeDokuUnavailable:     http.StatusServiceUnavailable,
	invoice.CodeUnavailable:         http.StatusServiceUnavailable,
	invoice.CodeInternal:            http.StatusInternalServerError,
}

// writeError answers err as problem+json. Errors that are not *invoice.Error are internal faults:
// they are logged in full and the client sees only a generic sentence.
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	var e *invoice.Error
	if !errors.As(err, &e) {
		e = &invoice.Error{Code: invoice.CodeInternal, Message: "an internal error occurred", Cause: err}
	}
	status, ok := statusOf[e.Code]
	if !ok {
		status = http.StatusInternalServerError
	}
	log := zerolog.Ctx(r.Context())
	switch {
	case status == http.StatusServiceUnavailable:
		// DOKU or the database unavailable: the caller retries, and so do we.
		log.Warn().Err(err).Str("code", string(e.Code)).Msg("request failed; retry later")
	case status >= 500:
		log.Error().Err(err).Str("code", string(e.Code)).Msg("request failed")
	case e.Cause != nil:
		log.Warn().Err(err).Str("code", string(e.Code)).Msg("request refused")
	}
	switch {
	case e.RetryAfter > 0:
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(e.RetryAfter.Seconds()))))
	case status == http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds))
	case e.Code == invoice.CodeRequestInProgress:
		w.Header().Set("Retry-After", "1")
	}
	if status == http.StatusUnauthorized && e.Code == invoice.CodeUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="o2o"`)
	}
	p := problem{
		Type:      problemTypeBase + string(e.Code),
		Title:     http.StatusText(status),
		Status:    status,
		Detail:    e.Message,
		Code:      e.Code,
		Errors:    e.Fields,
		RequestID: requestIDFrom(r.Context()),
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(p)
}

// writeJSON answers v as JSON with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
