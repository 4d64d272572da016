package invoice

import "time"

// RetentionPolicy is how long what grows with traffic is kept (deploy/RUNBOOK.md, "Data lifecycle"). Money
// records — invoices, payments, attention items and decisions, an invoice's history — are kept for
// good; what only serves delivery or diagnosis is purged or thinned after its window.
type RetentionPolicy struct {
	// Delivered: a delivered webhook and its attempts, and an event no delivery waits for or keeps.
	Delivered time.Duration
	// Dead: a dead delivery (and its event), kept for a redelivery.
	Dead time.Duration
	// NotificationBodies: a notification's raw body, after which only its digest, headers and what was
	// read from it stay.
	NotificationBodies time.Duration
}

// Cutoffs are the times before which each window has passed, at now.
func (p RetentionPolicy) Cutoffs(now time.Time) (delivered, dead, bodies time.Time) {
	return now.Add(-p.Delivered), now.Add(-p.Dead), now.Add(-p.NotificationBodies)
}

// PurgeStep is what one batch of a purge did: rows removed (or thinned), rows removed with them
// (attempts with their delivery), and whether the walk has reached what is too young to purge.
type PurgeStep struct {
	Deleted int
	Related int
	Done    bool
}

// DeliveryKey is a delivery's place in the deliveries' key order.
type DeliveryKey struct {
	EventSeq int64
	Endpoint string
}

// FeedKey is an event's place in the feed's order (postgres.ListEvents says why it is this one).
type FeedKey struct {
	Xid int64
	Seq int64
}

// GrowingTables are the tables whose size is reported (o2o_table_size_bytes): every table that grows
// with traffic.
var GrowingTables = []string{"invoices", "payments", "invoice_events", "notifications", "attention_items", "events",
	"webhook_deliveries", "webhook_attempts", "stream_tokens", "stream_watches", "payment_instructions"}

// TableSize is a table's size on disk and its estimated rows.
type TableSize struct {
	Table string
	Bytes int64
	Rows  int64
}
