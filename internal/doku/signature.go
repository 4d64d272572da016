// Package doku speaks DOKU's non-SNAP ("Jokul") O2O protocol: request signing, generating Alfa and
// Indomaret payment codes, and verifying and parsing payment notifications (api/DOKU.md).
package doku

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
)

// Header names DOKU signs and sends.
const (
	HeaderClientID          = "Client-Id"
	HeaderRequestID         = "Request-Id"
	HeaderRequestTimestamp  = "Request-Timestamp"
	HeaderResponseTimestamp = "Response-Timestamp"
	HeaderSignature         = "Signature"
)

// TimestampLayout is DOKU's Request-Timestamp: UTC, second precision, a literal Z. Format it from a
// UTC time only; formatting local time with this layout would lie about the zone.
const TimestampLayout = "2006-01-02T15:04:05Z"

const signaturePrefix = "HMACSHA256="

// Components are the signed parts of a request. Digest is empty for a request without a body (GET),
// which drops the Digest line entirely, as DOKU specifies; it is not the digest of "".
type Components struct {
	ClientID  string
	RequestID string
	Timestamp string
	Target    string // the path only: no scheme, host or query
	Digest    string
}

// Digest is DOKU's body digest: standard, padded base64 of SHA-256 over the exact bytes sent.
func Digest(body []byte) string {
	sum := sha256.Sum256(body)
	return base64.StdEncoding.EncodeToString(sum[:])
}

// String is the component string that is HMAC'd: lines joined by "\n", no trailing newline.
func (c Components) String() string {
	var b strings.Builder
	b.Grow(128 + len(c.ClientID) + len(c.RequestID) + len(c.Target))
	b.WriteString("Client-Id:")
	b.WriteString(c.ClientID)
	b.WriteString("\nRequest-Id:")
	b.WriteString(c.RequestID)
	b.WriteString("\nRequest-Timestamp:")
	b.WriteString(c.Timestamp)
	b.WriteString("\nRequest-Target:")
	b.WriteString(c.Target)
	if c.Digest != "" {
		b.WriteString("\nDigest:")
		b.WriteString(c.Digest)
	}
	return b.String()
}

// Sign returns the Signature header value for c under secret.
func Sign(secret []byte, c Components) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(c.String()))
	return signaturePrefix + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// Errors of notification verification. They are deliberately coarse: the caller answers 401 either
// way, and a detailed reason helps only an attacker.
var (
	ErrMissingHeader = errors.New("doku: a signature header is missing")
	ErrWrongClient   = errors.New("doku: Client-Id is not ours")
	ErrBadSignature  = errors.New("doku: signature does not match")
)

// Verifier checks that a notification came from DOKU for our merchant account.
type Verifier struct {
	ClientID string
	Secret   []byte
	// Target is the path of our Notification URL as configured at DOKU. It is never taken from the
	// request: DOKU signs the URL it was told to call, and trusting what arrives lets a proxy or an
	// attacker choose what is verified.
	Target string
}

// Verify checks the Client-Id and the signature of a notification over its raw body.
func (v Verifier) Verify(h http.Header, body []byte) error {
	clientID := h.Get(HeaderClientID)
	requestID := h.Get(HeaderRequestID)
	timestamp := h.Get(HeaderRequestTimestamp)
	got := h.Get(HeaderSignature)
	if clientID == "" || requestID == "" || timestamp == "" || got == "" {
		return ErrMissingHeader
	}
	if subtle.ConstantTimeCompare([]byte(clientID), []byte(v.ClientID)) != 1 {
		return ErrWrongClient
	}
	want := Sign(v.Secret, Components{
		ClientID:  clientID,
		RequestID: requestID,
		Timestamp: timestamp,
		Target:    v.Target,
		Digest:    Digest(body),
	})
	if !hmac.Equal([]byte(want), []byte(got)) {
		return ErrBadSignature
	}
	return nil
}

// SignedHeaders are the headers of a request signed as DOKU signs one: Client-Id, Request-Id,
// Request-Timestamp, Signature and, with a body, Content-Type.
func SignedHeaders(secret []byte, c Components, hasBody bool) http.Header {
	h := http.Header{}
	h.Set(HeaderClientID, c.ClientID)
	h.Set(HeaderRequestID, c.RequestID)
	h.Set(HeaderRequestTimestamp, c.Timestamp)
	h.Set(HeaderSignature, Sign(secret, c))
	if hasBody {
		h.Set("Content-Type", "application/json")
	}
	return h
}
