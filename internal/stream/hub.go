// Package stream fans out "this invoice has new events" to everything in this process that waits for
// it: the status streams of checkout pages and the webhook delivery worker. The news comes from this
// process's own commits (postgres.Store.OnPublished) and, for invoices a status stream watches, from
// PostgreSQL's LISTEN/NOTIFY (postgres.Listen), so such a change committed by any replica wakes the
// waiters of every replica. A wake-up carries no data: the waiter reads what is new from the database, so a
// wake-up lost or merged with another costs nothing but a moment.
package stream

import "sync"

// Hub holds the waiters. The zero value is not usable; use NewHub.
type Hub struct {
	mu        sync.Mutex
	byInvoice map[string]map[chan struct{}]struct{}
	all       map[chan struct{}]struct{}
}

// NewHub returns an empty hub.
func NewHub() *Hub {
	return &Hub{byInvoice: map[string]map[chan struct{}]struct{}{}, all: map[chan struct{}]struct{}{}}
}

// Subscribe returns a channel that receives when invoice number has new events, and the function
// that stops it. Wake-ups coalesce: one pending wake-up stands for any number of events.
func (h *Hub) Subscribe(number string) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	h.mu.Lock()
	defer h.mu.Unlock()
	set := h.byInvoice[number]
	if set == nil {
		set = map[chan struct{}]struct{}{}
		h.byInvoice[number] = set
	}
	set[ch] = struct{}{}
	return ch, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		// ch's set stays in the map while ch is in it: the set in the map is ch's.
		cur := h.byInvoice[number]
		delete(cur, ch)
		if len(cur) == 0 {
			delete(h.byInvoice, number)
		}
	}
}

// SubscribeAll is Subscribe for every invoice's events.
func (h *Hub) SubscribeAll() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.all[ch] = struct{}{}
	return ch, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		delete(h.all, ch)
	}
}

// Notify wakes the waiters of invoice number and those of every invoice.
func (h *Hub) Notify(number string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.byInvoice[number] {
		wake(ch)
	}
	for ch := range h.all {
		wake(ch)
	}
}

// NotifyAll wakes every waiter: after the listener reconnects, news may have been missed.
func (h *Hub) NotifyAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, set := range h.byInvoice {
		for ch := range set {
			wake(ch)
		}
	}
	for ch := range h.all {
		wake(ch)
	}
}

// wake sends on ch unless a wake-up is already pending.
func wake(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
