package invoice

import (
	"crypto/sha256"
	"encoding/hex"
	"time"
)

// Notification is one verified notification from DOKU as kept in the inbox: the raw body and headers
// as received, what it did, and how often DOKU delivered it.
type Notification struct {
	ID            int64
	RequestID     string
	InvoiceNumber string
	Headers       map[string]string
	Body          []byte
	// InvalidReason says why a genuine notification could not be read (empty when it could).
	InvalidReason  string
	Outcome        Outcome
	Deliveries     int
	ReceivedAt     time.Time
	LastReceivedAt time.Time
}

// NotificationFilter selects inbox entries. Empty fields do not filter.
type NotificationFilter struct {
	Outcomes      []Outcome
	InvoiceNumber string
	Limit         int
	Cursor        string
}

// BodyDigest is the SHA-256 of the raw body. With the Request-Id it identifies a notification: DOKU
// redelivers one under the same Request-Id and bytes, and a different body under a Request-Id already
// seen is another notification, never a duplicate to drop.
func (n *Notification) BodyDigest() []byte {
	sum := sha256.Sum256(n.Body)
	return sum[:]
}

// EvidenceKey names the notification in attention items: its Request-Id and body digest.
func (n *Notification) EvidenceKey() string {
	return "notification:" + n.RequestID + ":" + hex.EncodeToString(n.BodyDigest()[:12])
}

// maxKeyText is how much of another party's text goes into a key or an indexed column as it is.
// PostgreSQL refuses a B-tree entry over about 2.7 kB (the write fails, and with it the request); no
// identifier DOKU documents comes near this (a Request-Id is at most 128 characters).
const maxKeyText = 256

// KeyText is s as it goes into a key: s itself when it is at most maxKeyText bytes, else a digest of
// it — the same s always gives the same key, and two different ones (as good as) never one. The text
// itself is kept in full where nothing indexes it: the notification's body and headers, evidence.
func KeyText(s string) string {
	if len(s) <= maxKeyText {
		return s
	}
	sum := sha256.Sum256([]byte(s))
	return "sha256:" + hex.EncodeToString(sum[:])
}
