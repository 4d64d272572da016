package invoice

import (
	"errors"
	"fmt"
	"time"
)

// Code is a stable, machine-readable error code. Clients switch on it, so a code, once published in
// api/openapi.yaml, never changes meaning.
type Code string

const (
	CodeValidation          Code = "validation_failed"
	CodeInvalidJSON         Code = "invalid_json"
	CodeNotFound            Code = "not_found"
	CodeInvoiceExists       Code = "invoice_exists"
	CodeUnauthorized        Code = "unauthorized"
	CodeTooLarge            Code = "payload_too_large"
	CodeUnsupportedType     Code = "unsupported_media_type"
	CodeDokuUnavailable     Code = "doku_unavailable"
	CodeDokuRejected        Code = "doku_rejected"
	CodeUnavailable         Code = "unavailable"
	CodeNotIssued           Code = "invoice_not_issued"
	CodeBadSignature        Code = "invalid_signature"
	CodeInvalidNotification Code = "invalid_notification"
	CodeMethodNotAllowed    Code = "method_not_allowed"
	CodeRequestInProgress   Code = "request_in_progress"
	CodeRateLimited         Code = "rate_limited"
	CodeForbidden           Code = "forbidden"
	CodeStaleNotification   Code = "stale_notification"
	CodeAlreadyResolved     Code = "already_resolved"
	CodeInternal            Code = "internal"
)

// FieldError names one invalid field of a request, in the JSON path the client sent.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// Error is an error the caller can act on: a code, a human sentence and, for validation, the fields.
type Error struct {
	Code    Code
	Message string
	Fields  []FieldError
	// Cause is the underlying fault, for logs; it is never shown to the client.
	Cause error
	// RetryAfter, when set, tells the client when a retry can succeed.
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	if e.Cause != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Cause)
	}
	if len(e.Fields) == 0 {
		return fmt.Sprintf("%s: %s", e.Code, e.Message)
	}
	return fmt.Sprintf("%s: %s (%d field errors)", e.Code, e.Message, len(e.Fields))
}

func (e *Error) Unwrap() error { return e.Cause }

// Errorf builds an *Error with a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the Code of err if it is (or wraps) an *Error, and "" otherwise.
func ErrorCode(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// ErrNotFound is returned by stores when no invoice has the requested number.
var ErrNotFound = &Error{Code: CodeNotFound, Message: "invoice not found"}

// ErrUnavailable is wrapped by stores when the database cannot be reached; callers answer 503 so that
// the client (or DOKU) retries, and nothing was changed.
var ErrUnavailable = &Error{Code: CodeUnavailable, Message: "the database is unavailable"}
