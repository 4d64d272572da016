package invoice

import (
	"errors"
	"fmt"
	"time"
)

// The domain's errors: what went wrong in terms of invoices, not of any transport. Callers match them
// with errors.Is; the HTTP layer keeps the one table from these to statuses and problem codes.
var (
	// ErrNotFound: no invoice (or attention item) has the identifier asked for.
	ErrNotFound = errors.New("not found")
	// ErrInvoiceExists: the invoice number is taken by an invoice with other details.
	ErrInvoiceExists = errors.New("the invoice number is taken by another invoice")
	// ErrRequestInProgress: the invoice's code is being fetched from DOKU right now; retry shortly.
	ErrRequestInProgress = errors.New("the invoice's payment code is being requested right now")
	// ErrNotIssued: the invoice has no confirmed payment code yet.
	ErrNotIssued = errors.New("the invoice has no confirmed payment code yet")
	// ErrRateLimited: the operation was done moments ago; RetryAfter says when it may be done again.
	ErrRateLimited = errors.New("done moments ago")
	// ErrNotCancellable: the invoice is paid, expired or failed; its outcome is settled.
	ErrNotCancellable = errors.New("the invoice can no longer be cancelled")
	// ErrAlreadyResolved: the attention item has been resolved; the first decision stands.
	ErrAlreadyResolved = errors.New("the attention item has already been resolved")
	// ErrDokuRejected: DOKU definitely refused; sending the same request again is refused again.
	ErrDokuRejected = errors.New("DOKU refused the request")
	// ErrDokuUnavailable: DOKU's answer is unknown or temporary; retry the same request.
	ErrDokuUnavailable = errors.New("DOKU did not answer")
	// ErrOtherEnvironment: the invoice was issued by another DOKU than the one this service talks to.
	ErrOtherEnvironment = errors.New("the invoice belongs to another DOKU environment")
	// ErrCursorExpired: what came after a cursor is no longer kept (retention); start again.
	ErrCursorExpired = errors.New("the cursor points before data that has been purged")
	// ErrUnavailable: the database cannot be reached; nothing was changed, retry.
	ErrUnavailable = errors.New("the database is unavailable")
)

// Error gives one of the errors above the sentence a person reads (and, for a retry, when): it
// matches its kind with errors.Is and keeps the fault that caused it for the logs.
type Error struct {
	Kind       error
	Message    string
	RetryAfter time.Duration
	Cause      error
}

func (e *Error) Error() string {
	if e.Cause != nil {
		return e.Message + ": " + e.Cause.Error()
	}
	return e.Message
}

// Is makes errors.Is(err, e.Kind) hold.
func (e *Error) Is(target error) bool { return target == e.Kind }

// Unwrap is the cause, for errors.As and the logs.
func (e *Error) Unwrap() error { return e.Cause }

// Errorf is an error of kind with a formatted sentence.
func Errorf(kind error, format string, args ...any) *Error {
	return &Error{Kind: kind, Message: fmt.Sprintf(format, args...)}
}

// Message is the sentence err carries for a person: its own for an *Error, else the kind's.
func Message(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return err.Error()
}

// RetryAfter is when an operation refused by err may succeed, or 0 when err does not say.
func RetryAfter(err error) time.Duration {
	var e *Error
	if errors.As(err, &e) {
		return e.RetryAfter
	}
	return 0
}

// FieldError names one invalid field of a request, in the JSON path the client sent.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// ValidationError is a request with invalid fields, every one of them listed.
type ValidationError struct {
	Fields []FieldError
}

func (e *ValidationError) Error() string {
	return fmt.Sprintf("the request has invalid fields (%d)", len(e.Fields))
}

// Invalid is a ValidationError of one field.
func Invalid(field, message string) *ValidationError {
	return &ValidationError{Fields: []FieldError{{Field: field, Message: message}}}
}
