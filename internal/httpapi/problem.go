package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"

	"github.com/rs/zerolog"

	"github.com/merchant/o2o/internal/invoice"
)

// code is a problem's stable, machine-readable code. Clients switch on it, so a code, once published
// in api/openapi.yaml, never changes meaning.
type code string

const (
	codeValidation          code = "validation_failed"
	codeInvalidJSON         code = "invalid_json"
	codeNotFound            code = "not_found"
	codeInvoiceExists       code = "invoice_exists"
	codeUnauthorized        code = "unauthorized"
	codeTooLarge            code = "payload_too_large"
	codeUnsupportedType     code = "unsupported_media_type"
	codeDokuUnavailable     code = "doku_unavailable"
	codeDokuRejected        code = "doku_rejected"
	codeUnavailable         code = "unavailable"
	codeNotIssued           code = "invoice_not_issued"
	codeBadSignature        code = "invalid_signature"
	codeInvalidNotification code = "invalid_notification"
	codeMethodNotAllowed    code = "method_not_allowed"
	codeRequestInProgress   code = "request_in_progress"
	codeRateLimited         code = "rate_limited"
	codeForbidden           code = "forbidden"
	codeStaleNotification   code = "stale_notification"
	codeAlreadyResolved     code = "already_resolved"
	codeNotCancellable      code = "not_cancellable"
	codeCursorExpired       code = "cursor_expired"
	codeOtherEnvironment    code = "doku_environment_mismatch"
	codeInternal            code = "internal"
)

// codes lists every problem code, for the contract's enum to be held to.
var codes = []code{codeValidation, codeInvalidJSON, codeNotFound, codeInvoiceExists, codeUnauthorized, codeTooLarge,
	codeUnsupportedType, codeDokuUnavailable, codeDokuRejected, codeUnavailable, codeNotIssued, codeBadSignature,
	codeInvalidNotification, codeMethodNotAllowed, codeRequestInProgress, codeRateLimited, codeForbidden,
	codeStaleNotification, codeAlreadyResolved, codeNotCancellable, codeCursorExpired, codeOtherEnvironment, codeInternal}

// domainProblems is the one table from the domain's errors to what a client sees.
var domainProblems = []struct {
	kind   error
	status int
	code   code
}{
	{invoice.ErrNotFound, http.StatusNotFound, codeNotFound},
	{invoice.ErrInvoiceExists, http.StatusConflict, codeInvoiceExists},
	{invoice.ErrRequestInProgress, http.StatusConflict, codeRequestInProgress},
	{invoice.ErrNotIssued, http.StatusConflict, codeNotIssued},
	{invoice.ErrAlreadyResolved, http.StatusConflict, codeAlreadyResolved},
	{invoice.ErrNotCancellable, http.StatusConflict, codeNotCancellable},
	{invoice.ErrRateLimited, http.StatusTooManyRequests, codeRateLimited},
	{invoice.ErrCursorExpired, http.StatusGone, codeCursorExpired},
	{invoice.ErrOtherEnvironment, http.StatusConflict, codeOtherEnvironment},
	{invoice.ErrDokuRejected, http.StatusBadGateway, codeDokuRejected},
	{invoice.ErrDokuUnavailable, http.StatusServiceUnavailable, codeDokuUnavailable},
	{invoice.ErrUnavailable, http.StatusServiceUnavailable, codeUnavailable},
}

// refusal is the HTTP layer's own refusal of a request — its key, its body, its route — before any
// of it reaches the domain.
type refusal struct {
	status int
	code   code
	msg    string
}

func (e *refusal) Error() string { return string(e.code) + ": " + e.msg }

func refuse(status int, c code, format string, args ...any) *refusal {
	return &refusal{status: status, code: c, msg: fmt.Sprintf(format, args...)}
}

// problem is an RFC 9457 problem document with our stable machine code and field errors.
type problem struct {
	Type      string               `json:"type"`
	Title     string               `json:"title"`
	Status    int                  `json:"status"`
	Detail    string               `json:"detail"`
	Code      code                 `json:"code"`
	Errors    []invoice.FieldError `json:"errors,omitempty"`
	RequestID string               `json:"request_id,omitempty"`
}

// problemTypeBase prefixes the code to make the problem's type URI.
const problemTypeBase = "urn:o2o:problem:"

// retryAfterSeconds is the hint sent with every 503: long enough for a DOKU or database blip to pass,
// short enough that a checkout page can wait for it.
const retryAfterSeconds = 5

// problemOf is what a client sees of err. An error that is neither the HTTP layer's nor the domain's
// is an internal fault: the client sees only a generic sentence.
func problemOf(err error) problem {
	var (
		ref     *refusal
		invalid *invoice.ValidationError
	)
	switch {
	case errors.As(err, &ref):
		return problem{Status: ref.status, Code: ref.code, Detail: ref.msg}
	case errors.As(err, &invalid):
		return problem{Status: http.StatusUnprocessableEntity, Code: codeValidation, Detail: "the request has invalid fields",
			Errors: invalid.Fields}
	}
	for _, d := range domainProblems {
		if errors.Is(err, d.kind) {
			return problem{Status: d.status, Code: d.code, Detail: invoice.Message(err)}
		}
	}
	return problem{Status: http.StatusInternalServerError, Code: codeInternal, Detail: "an internal error occurred"}
}

// writeError answers err as problem+json, and logs it: a retried fault (503) as a warning, any other
// failure of ours as an error, a refusal with a cause as a warning.
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	p := problemOf(err)
	log := zerolog.Ctx(r.Context())
	switch {
	case p.Status == http.StatusServiceUnavailable:
		// DOKU or the database unavailable: the caller retries, and so do we.
		log.Warn().Err(err).Str("code", string(p.Code)).Msg("request failed; retry later")
	case p.Status >= 500:
		log.Error().Err(err).Str("code", string(p.Code)).Msg("request failed")
	case errors.Unwrap(err) != nil:
		log.Warn().Err(err).Str("code", string(p.Code)).Msg("request refused")
	}
	switch retry := invoice.RetryAfter(err); {
	case retry > 0:
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(retry.Seconds()))))
	case p.Status == http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds))
	case p.Code == codeRequestInProgress:
		w.Header().Set("Retry-After", "1")
	}
	if p.Code == codeUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="o2o"`)
	}
	p.Type, p.Title, p.RequestID = problemTypeBase+string(p.Code), http.StatusText(p.Status), requestIDFrom(r.Context())
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

// writeJSON answers v as JSON with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// invalid is a validation refusal of the given fields.
func invalid(fields ...invoice.FieldError) error {
	return &invoice.ValidationError{Fields: fields}
}
