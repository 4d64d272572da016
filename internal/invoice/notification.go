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
