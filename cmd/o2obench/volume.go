package main

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/merchant/o2o/internal/config"
	"github.com/merchant/o2o/internal/doku"
	"github.com/merchant/o2o/internal/dokusim"
	"github.com/merchant/o2o/internal/invoice"
	"github.com/merchant/o2o/internal/postgres"
	"github.com/merchant/o2o/internal/service"
	"github.com/merchant/o2o/internal/view"
)

// A year of a large merchant's data, for -volume: what the service's tables hold after a year in
// production with the purge never run, loaded with COPY in minutes.
//
// Every invoice lives its year through the service's own code: the domain's transitions (invoice
// package) decide each status change, payment, attention item, history item and check schedule; the
// event payloads are view.ChangeData's, the notification bodies the simulator's, read by the service's
// own verifier and parser; the DOKU request body is doku.GenerateBody's. What the service's store
// would write for each step (postgres.Store's writeChanges and appendLog: one log entry per change, its
// history riding on it) is then written here as rows, table by table (the copyTable values below and
// life.flush: a schema change is a change of one column list and one row function). Each invoice's
// life is a pure function of its number g, so any subset of invoices can be loaded in any order and
// loads the same rows.
//
// Ids follow time, as in production. The purge walks events, deliveries and notifications in key
// order and stops at the first batch younger than its cutoff, so the year must sit below whatever the
// bench writes today: in volume mode the bench moves the identity sequences past the ranges reserved
// here (reserveYear) before its first row, and each invoice g owns a fixed stride of event sequence
// numbers, payment, notification and attention ids. An event's xid (the feed's order) is likewise
// drawn from below the first transaction id of the bench database, spread over the year.

// Shape of the year: the shares below are of invoices unless said otherwise.
const (
	yearSpan        = 365 * 24 * time.Hour
	shareReusable   = 0.02  // reusable codes: paid again and again, polled until a week after expiry
	shareFailed     = 0.005 // DOKU refused to issue a code
	sharePaid       = 0.80  // of single-use codes: paid before expiry
	shareCancelled  = 0.015 // of single-use codes: called off by the merchant
	sharePaidLate   = 0.003 // of paid single-use codes: paid after expiry (an attention item)
	sharePaidCancel = 0.05  // of cancelled ones: paid all the same (an attention item)
	shareLateNotify = 0.02  // of payments: DOKU's notification comes late, a status check may see it first
	shareRedeliver  = 0.03  // of notifications: delivered twice by DOKU
	shareLaggyDOKU  = 0.03  // of unpaid codes: DOKU says PENDING past expiry (our grace period expires them)
	sharePageOpened = 0.25  // of issued codes: the customer opened the payment page (instructions kept)
	shareMetadata   = 0.40  // invoices created with metadata
	shareFlaky      = 0.005 // of webhook deliveries: one or two failed attempts before a 2xx
	// The receiver's one long outage in the year: events of its first hours die after the retry
	// period, the rest are delivered when it ends, after dozens of attempts each.
	outageStartDay = 200
	outageLength   = 80 * time.Hour
)

// Strides: how many ids of each kind one invoice may use, so that invoice g's ids are fixed
// ((g-1)*stride+1 …) whatever order invoices are loaded in. live fails if an invoice needs more.
const (
	// Log entries: a reusable code is checked every 6 hours for the 37 days it may still be paid,
	// each check an entry of its own.
	strideEvents        = 256
	stridePayments      = 4
	strideNotifications = 4
	strideAttention     = 4
)

// The merchant's webhook endpoint, which received the year's events.
const (
	loadedEndpoint    = "merchant"
	loadedEndpointURL = "https://shop.example/webhooks/o2o"
)

// checkShift moves the next status check of the invoices still open at the end of the year a day
// later than the schedule put it, so that none falls due during the bench: the reconciler's own
// work (status calls to a simulator that never issued these codes) is not what the rows measure.
const checkShift = 24 * time.Hour

// copyTable is one table the year is loaded into: the columns each row gives, in order. Columns not
// named take their defaults.
type copyTable struct {
	i       int
	name    string
	columns []string
}

// The tables in the order they are loaded (references before what refers to them).
var (
	tInvoices = &copyTable{0, "invoices", []string{"id", "invoice_number", "channel", "amount", "currency", "status",
		"customer_name", "customer_email", "expires_in_minutes", "reusable", "info", "receipt_footer", "metadata",
		"doku_request_id", "doku_request_body", "doku_env", "page_token", "payment_code", "how_to_pay_page", "how_to_pay_api",
		"expires_at", "paid_at", "paid_after_expiry", "cancelled_at", "cancel_reason", "paid_after_cancel",
		"failure_code", "failure_message", "expired_by_grace", "issue_attempts", "next_issue_at", "next_check_at",
		"check_attempts", "created_at", "updated_at"}}
	tPayments = &copyTable{1, "payments", []string{"id", "invoice_id", "dedupe_key", "amount", "paid_at", "source",
		"doku_request_id", "identifiers", "created_at"}}
	// The inbox keeps a notification's invoice by its number (invoice_id is no longer written).
	tNotifications = &copyTable{2, "notifications", []string{"id", "doku_request_id", "invoice_number",
		"headers", "body", "body_sha256", "outcome", "deliveries", "received_at", "last_received_at"}}
	// The log: public events (an id, a feed position, a payload) and 'history' entries (none of the
	// three), each change's history on its first entry.
	tEvents = &copyTable{3, "events", []string{"seq", "id", "type", "invoice_id", "invoice_number", "created_at", "xid", "data", "history"}}
	// webhook_endpoints holds the one endpoint (ensureLoadedEndpoint), not copied.
	tDeliveries = &copyTable{4, "webhook_deliveries", []string{"event_seq", "endpoint", "invoice_number", "state", "attempts",
		"next_attempt_at", "created_at", "finished_at"}}
	tAttempts  = &copyTable{5, "webhook_attempts", []string{"event_seq", "endpoint", "at", "status", "latency_ms", "error"}}
	tAttention = &copyTable{6, "attention_items", []string{"id", "key", "reason", "invoice_id", "invoice_number", "source",
		"evidence", "state", "created_at", "resolved_at", "resolved_by", "note"}}
	tInstructions = &copyTable{7, "payment_instructions", []string{"invoice_id", "source", "body", "fetched_at"}}

	yearTables = []*copyTable{tInvoices, tPayments, tNotifications, tEvents, tDeliveries, tAttempts, tAttention, tInstructions}
)

// identityReserve is, for each table whose ids the year fixes, the column and how many ids per
// invoice it reserves.
var identityReserve = []struct {
	table, column string
	stride        int
}{
	{"invoices", "id", 1}, {"events", "seq", strideEvents}, {"payments", "id", stridePayments},
	{"notifications", "id", strideNotifications}, {"attention_items", "id", strideAttention},
}

// yearBatch is the rows of some invoices, by table.
type yearBatch struct {
	rows     [8][][]any
	invoices int
}

func (b *yearBatch) add(t *copyTable, row ...any) {
	if len(row) != len(t.columns) {
		panic(fmt.Sprintf("o2obench: %d values for the %d columns of %s", len(row), len(t.columns), t.name))
	}
	b.rows[t.i] = append(b.rows[t.i], row)
}

// yearPlan is the year to load: n invoices spread evenly over the year before end.
type yearPlan struct {
	n        int
	end      time.Time // the load's "now"
	env      string    // doku.EnvironmentID of the bench's DOKU: the loaded invoices are its
	dokuURL  string    // how-to-pay links point there
	clientID string
	secret   []byte
	// Events' xids are spread over [xidLo, xidHi): below every transaction of the bench database.
	xidLo, xidHi uint64
	check        invoice.CheckPolicy
	policy       invoice.DeliveryPolicy
	body         doku.BodyDefaults
	verifier     doku.Verifier
	outage       [2]time.Time
}

func newYearPlan(n int, end time.Time, env, dokuURL, clientID, secret string, xidLo, xidHi uint64) *yearPlan {
	cfg := config.Defaults() // the production defaults: the year was lived under them
	y := &yearPlan{n: n, end: end.UTC(), env: env, dokuURL: strings.TrimRight(dokuURL, "/"), clientID: clientID,
		secret: []byte(secret), xidLo: xidLo, xidHi: xidHi,
		check:  invoice.CheckPolicy{Schedule: cfg.ReconcileSchedule, Grace: cfg.ExpiryGrace, Window: cfg.ReconcileWindow},
		policy: cfg.DeliveryPolicy(),
		body: doku.BodyDefaults{Info: cfg.DokuDefaultInfo, CustomerEmail: "billing@shop.example",
			ReceiptFooter: cfg.DokuDefaultReceiptFooter},
		verifier: doku.Verifier{ClientID: clientID, Secret: []byte(secret), Target: cfg.DokuNotificationPath},
	}
	start := y.start().Add(outageStartDay * 24 * time.Hour)
	y.outage = [2]time.Time{start, start.Add(outageLength)}
	return y
}

func (y *yearPlan) start() time.Time { return y.end.Add(-yearSpan) }

// createdAt is when invoice g was created: the invoices are evenly spread, the last just before end.
func (y *yearPlan) createdAt(g int) time.Time {
	return y.start().Add(time.Duration((float64(g) - 0.5) / float64(y.n) * float64(yearSpan))).Truncate(time.Microsecond)
}

// xidAt is the transaction id of a change made at t: increasing with time, below xidHi.
func (y *yearPlan) xidAt(t time.Time) uint64 {
	f := float64(t.Sub(y.start())) / float64(yearSpan)
	f = min(max(f, 0), 1)
	return y.xidLo + uint64(f*float64(y.xidHi-y.xidLo-1))
}

var (
	firstNames = []string{"Budi", "Siti", "Agus", "Dewi", "Rina", "Andi", "Putri", "Joko", "Wati", "Hendra", "Nur", "Rizki",
		"Sri", "Bambang", "Lestari", "Fajar", "Indah", "Yusuf", "Ayu", "Dian"}
	lastNames = []string{"Santoso", "Rahma", "Wijaya", "Saputra", "Hidayat", "Pratama", "Kusuma", "Nugroho", "Lestari",
		"Setiawan", "Purnama", "Halim", "Susanto", "Gunawan", "Wibowo", "Hartono", "Utami", "Siregar", "Nasution", "Simanjuntak"}
	amounts       = []int64{25000, 49000, 75000, 99000, 150000, 199000, 250000, 499000, 750000, 1250000}
	cancelReasons = []string{"customer cancelled the order", "out of stock", "duplicate order", "payment method changed"}
)

// life is one invoice living its year.
type life struct {
	y   *yearPlan
	g   int
	r   *rand.Rand
	inv *invoice.Invoice
	b   *yearBatch
	// Ids used so far of each stride, and what was written already.
	events, notifications, attention, paymentsStamped int
	attentionRows                                     map[string][]any // by key, written at the end
	attentionKeys                                     []string
}

// fate is what the world outside the service does to one invoice: DOKU's answers and the payments.
type fate struct {
	rejected   bool
	cancelAt   time.Time   // zero: never cancelled
	pays       []time.Time // when the customer paid, in order
	notifyAt   []time.Time // when DOKU's notification of each payment arrives
	expiredFor time.Time   // from when DOKU's check status says EXPIRED
}

// live runs invoice g's year and adds its rows to b.
func (y *yearPlan) live(g int, b *yearBatch) error {
	r := rand.New(rand.NewPCG(uint64(g), 0x0b2bbe4c))
	t0 := y.createdAt(g)
	inv := &invoice.Invoice{ID: int64(g), Number: fmt.Sprintf("INV-%s-%07d", t0.Format("20060102"), g), Status: invoice.StatusCreating,
		Channel: invoice.ChannelAlfa, Amount: amounts[r.IntN(len(amounts))], DokuEnv: y.env, IssueAttempts: 1,
		Customer:  invoice.Customer{Name: firstNames[r.IntN(len(firstNames))] + " " + lastNames[r.IntN(len(lastNames))]},
		CreatedAt: t0, UpdatedAt: t0}
	if r.Float64() < 0.45 {
		inv.Channel = invoice.ChannelIndomaret
	}
	inv.Customer.Email = fmt.Sprintf("%s.%d@mail.example", strings.ToLower(strings.Fields(inv.Customer.Name)[0]), r.IntN(200000))
	inv.Reusable = r.Float64() < shareReusable
	switch u := r.Float64(); {
	case inv.Reusable:
		inv.ExpiresInMinutes = 43200
	case u < 0.50:
		inv.ExpiresInMinutes = 60
	case u < 0.75:
		inv.ExpiresInMinutes = 180
	case u < 0.95:
		inv.ExpiresInMinutes = 1440
	default:
		inv.ExpiresInMinutes = 4320
	}
	inv.Info = fmt.Sprintf("Order %d", 100000+g)
	if r.Float64() < shareMetadata {
		inv.Metadata = json.RawMessage(fmt.Sprintf(`{"order_id":"ORD-%d","cart_items":%d,"storefront":"web"}`, 100000+g, 1+r.IntN(6)))
	}
	body, err := doku.GenerateBody(inv, y.body)
	if err != nil {
		return err
	}
	inv.DokuRequestBody = body
	sum := sha256.Sum256(body)
	inv.DokuRequestID = uuid.NewSHA1(uuid.NameSpaceOID, []byte(y.env+"\n"+inv.Number+"\n"+hex.EncodeToString(sum[:]))).String()
	token := make([]byte, 24)
	for i := range token {
		token[i] = byte(r.Uint32())
	}
	inv.PageToken = base64.RawURLEncoding.EncodeToString(token)
	inv.PaymentPageURL = service.PagePath(inv.Number, inv.PageToken)
	cfgIssue := 20 * time.Second // the issue lease a create takes (DOKU_TIMEOUT + margin)
	inv.NextIssueAt = t0.Add(cfgIssue)

	// The invoice row is the record of its creation: the store writes no log entry for it.
	l := &life{y: y, g: g, r: r, inv: inv, b: b, attentionRows: map[string][]any{}}
	f := l.fate()
	t1 := t0.Add(time.Duration(40+r.IntN(360)) * time.Millisecond) // DOKU's generate answer
	call := invoice.Event{Source: invoice.SourceAPI, Kind: invoice.EventDokuGenerate, Detail: map[string]any{
		"doku_request_id": inv.DokuRequestID, "attempt": 1, "duration_ms": t1.Sub(t0).Milliseconds()}}
	if f.rejected {
		msg := "customer.name contains characters DOKU does not accept"
		call.Detail["result"], call.Detail["message"] = "rejected", msg
		inv.Record(call)
		inv.MarkFailed("doku_rejected", msg, invoice.SourceAPI)
	} else {
		code := fmt.Sprintf("8888%012d", g)
		if inv.Channel == invoice.ChannelIndomaret {
			code = fmt.Sprintf("7777%012d", g)
		}
		call.Detail["result"], call.Detail["payment_code"] = "issued", code
		inv.Record(call)
		inv.MarkIssued(invoice.Issued{PaymentCode: code, HowToPayPage: y.dokuURL + "/simulator/how-to-pay/" + code,
			HowToPayAPI: y.dokuURL + "/simulator/how-to-pay-api/" + code,
			ExpiresAt:   t0.Add(time.Duration(inv.ExpiresInMinutes) * time.Minute)}, invoice.SourceAPI)
	}
	inv.KeepSchedule(t1, y.check)
	if err := l.flush(t1); err != nil {
		return err
	}
	if !f.rejected && r.Float64() < sharePageOpened {
		if at := t1.Add(time.Duration(1+r.IntN(30)) * time.Minute); at.Before(y.end) {
			l.instructions(at)
		}
	}
	if err := l.run(f); err != nil {
		return err
	}
	l.finish()
	return nil
}

// fate draws what happens to the invoice from outside.
func (l *life) fate() fate {
	r, inv := l.r, l.inv
	expires := inv.CreatedAt.Add(time.Duration(inv.ExpiresInMinutes) * time.Minute)
	issued := inv.CreatedAt.Add(time.Second)
	f := fate{expiredFor: expires}
	if r.Float64() < shareLaggyDOKU {
		f.expiredFor = expires.Add(l.y.check.Grace + 6*time.Hour)
	}
	life := expires.Sub(issued)
	switch u := r.Float64(); {
	case inv.Reusable:
		if u < 0.85 {
			for k := 1 + r.IntN(3); k > 0; k-- {
				f.pays = append(f.pays, issued.Add(time.Duration(r.Float64()*float64(life))))
			}
			slices.SortFunc(f.pays, func(a, b time.Time) int { return a.Compare(b) })
		}
	case u < shareFailed:
		f.rejected = true
	case u < shareFailed+sharePaid:
		if r.Float64() < sharePaidLate {
			f.pays = []time.Time{expires.Add(time.Duration(2+r.IntN(180)) * time.Minute)}
		} else {
			x := r.Float64()
			f.pays = []time.Time{issued.Add(time.Duration(0.9 * x * x * float64(life)))}
		}
	case u < shareFailed+sharePaid+shareCancelled:
		f.cancelAt = issued.Add(time.Duration((0.05 + 0.4*r.Float64()) * float64(life)))
		if r.Float64() < sharePaidCancel {
			f.pays = []time.Time{f.cancelAt.Add(time.Duration((0.1 + 0.8*r.Float64()) * float64(expires.Sub(f.cancelAt))))}
		}
	}
	for _, p := range f.pays {
		delay := time.Duration(1000+r.IntN(3000)) * time.Millisecond
		if r.Float64() < shareLateNotify {
			delay = time.Duration(15+r.IntN(165)) * time.Minute
		}
		f.notifyAt = append(f.notifyAt, p.Add(delay))
	}
	return f
}

// run plays the invoice's life after its code was issued, in time order, up to the end of the year:
// the reconciler's checks as the schedule makes them due, DOKU's notifications, a cancellation.
func (l *life) run(f fate) error {
	inv, y := l.inv, l.y
	notified := 0
	cancelled := f.cancelAt.IsZero()
	for steps := 0; ; steps++ {
		if steps > 1000 {
			return fmt.Errorf("invoice %d: its life does not end", l.g)
		}
		var next time.Time
		what := ""
		if inv.NextCheckAt != nil {
			next, what = *inv.NextCheckAt, "check"
		}
		if notified < len(f.notifyAt) && (what == "" || f.notifyAt[notified].Before(next)) {
			next, what = f.notifyAt[notified], "notify"
		}
		if !cancelled && (what == "" || f.cancelAt.Before(next)) {
			next, what = f.cancelAt, "cancel"
		}
		if what == "" || !next.Before(y.end) {
			return nil
		}
		switch what {
		case "check":
			l.checkStatus(next, f)
		case "notify":
			if err := l.notification(next, f, notified); err != nil {
				return err
			}
			notified++
		case "cancel":
			cancelled = true
			if _, err := inv.Cancel(cancelReasons[l.r.IntN(len(cancelReasons))], next, invoice.SourceAPI); err != nil {
				continue // already paid or expired: the merchant's request is refused, nothing changes
			}
			inv.KeepSchedule(next, y.check)
		}
		if err := l.flush(next); err != nil {
			return err
		}
	}
}

// checkStatus is one reconciler check at t (service.Check): DOKU's anonymous answer applied, the
// call recorded, the next check planned.
func (l *life) checkStatus(t time.Time, f fate) {
	inv, y := l.inv, l.y
	inv.CheckAttempts++ // the claim counts it
	status := invoice.DokuPending
	switch {
	case len(f.pays) > 0 && !f.pays[0].After(t):
		status = invoice.DokuSuccess
	case !t.Before(f.expiredFor):
		status = invoice.DokuExpired
	}
	took := time.Duration(30+l.r.IntN(400)) * time.Millisecond
	r := invoice.PaymentReport{InvoiceNumber: inv.Number, Amount: inv.Amount, AmountText: strconv.FormatInt(inv.Amount, 10),
		DokuStatus: status, OriginalRequestID: inv.DokuRequestID, Source: invoice.SourceReconciler, Anonymous: true}
	now := t.Add(took)
	outcome := inv.ApplyCheck(r, now, y.check.Grace)
	inv.Record(invoice.Event{Source: invoice.SourceReconciler, Kind: invoice.EventDokuCheck, Detail: map[string]any{
		"duration_ms": took.Milliseconds(), "doku_status": status, "outcome": outcome}})
	inv.ScheduleNextCheck(now, y.check)
	inv.KeepSchedule(now, y.check)
}

// notification is DOKU's notification of payment k arriving at t (service.ReceiveNotification): the
// simulator's body, signed, read by the service's verifier, applied, and kept in the inbox.
func (l *life) notification(t time.Time, f fate, k int) error {
	inv, y := l.inv, l.y
	trx := fmt.Sprintf("TRX%08d%d", l.g, k+1)
	body := dokusim.NotificationBody(dokusim.Payment{InvoiceNumber: inv.Number, Channel: inv.Channel, PaymentCode: inv.PaymentCode,
		Amount: inv.Amount, At: f.pays[k], TransactionID: trx, OriginalRequestID: inv.DokuRequestID})
	var rid [16]byte
	binary.BigEndian.PutUint64(rid[:8], l.r.Uint64())
	binary.BigEndian.PutUint64(rid[8:], l.r.Uint64())
	requestID := uuid.UUID(rid).String()
	h := doku.SignedHeaders(y.secret, doku.Components{ClientID: y.clientID, RequestID: requestID,
		Timestamp: t.UTC().Format(doku.TimestampLayout), Target: y.verifier.Target, Digest: doku.Digest(body)}, true)
	h.Set("User-Agent", "Apache-HttpClient/4.5.13 (Java/1.8.0_392)")
	n, report, err := y.verifier.ReadNotification(http.Header(h), body)
	if err != nil {
		return fmt.Errorf("invoice %d: the service cannot read the notification made for it: %w", l.g, err)
	}
	report.EvidenceKey = n.EvidenceKey()
	outcome := inv.ApplyPayment(*report, t)
	inv.Record(invoice.Event{Source: invoice.SourceWebhook, Kind: invoice.EventNotification, Detail: map[string]any{
		"doku_request_id": n.RequestID, "outcome": outcome, "doku_status": report.DokuStatus, "amount": report.AmountText}})
	inv.KeepSchedule(t, y.check)

	if l.notifications >= strideNotifications {
		return fmt.Errorf("invoice %d needs more than %d notification ids", l.g, strideNotifications)
	}
	l.notifications++
	deliveries, last := 1, t
	if l.r.Float64() < shareRedeliver {
		deliveries, last = 2, t.Add(time.Duration(5+l.r.IntN(55))*time.Minute)
	}
	headers, _ := json.Marshal(n.Headers)
	sum := n.BodyDigest()
	l.b.add(tNotifications, int64((l.g-1)*strideNotifications+l.notifications), n.RequestID, n.InvoiceNumber,
		headers, body, sum, string(outcome), int32(deliveries), t, last)
	return nil
}

// instructions is the payment page opened at t: DOKU's how-to-pay instructions fetched and kept.
func (l *life) instructions(t time.Time) {
	inv := l.inv
	stores, label := "Alfamart, Alfamidi, Lawson atau Dan+Dan", "Alfamart / Alfamidi / Lawson / Dan+Dan"
	if inv.Channel == invoice.ChannelIndomaret {
		stores, label = "Indomaret", "Indomaret"
	}
	body, _ := json.Marshal([]invoice.Instruction{{Channel: label, Steps: []string{
		"Catat kode pembayaran Anda: " + inv.PaymentCode + ".",
		"Datang ke gerai " + stores + " terdekat.",
		"Sampaikan kepada kasir bahwa Anda ingin melakukan pembayaran DOKU.",
		"Berikan kode pembayaran kepada kasir.",
		"Kasir akan menyebutkan jumlah yang harus dibayar, termasuk biaya administrasi bila ada.",
		"Bayar sesuai jumlah tersebut dan simpan struk sebagai bukti pembayaran.",
	}}})
	l.b.add(tInstructions, inv.ID, "doku", string(body), t)
}

// flush writes what the change at t did, as the store's writeChanges would: the payments'
// creation, the log entries (each public one with its delivery; the change's history on the first, or
// on a 'history' entry of its own when the change tells the merchant nothing) and the attention items
// it raised or settled.
func (l *life) flush(t time.Time) error {
	inv := l.inv
	inv.UpdatedAt = t
	for ; l.paymentsStamped < len(inv.Payments); l.paymentsStamped++ {
		if l.paymentsStamped >= stridePayments {
			return fmt.Errorf("invoice %d needs more than %d payment ids", l.g, stridePayments)
		}
		p := &inv.Payments[l.paymentsStamped]
		p.ID, p.CreatedAt = int64((l.g-1)*stridePayments+l.paymentsStamped+1), t
	}
	var history any
	if len(inv.NewEvents) > 0 {
		raw, err := postgres.HistoryJSON(inv.NewEvents, t)
		if err != nil {
			return err
		}
		history = raw
	}
	xid := l.y.xidAt(t)
	if len(inv.NewChanges) == 0 && history != nil {
		if err := l.entry(t, nil, invoice.LogHistory, nil, history); err != nil {
			return err
		}
	}
	for i, c := range inv.NewChanges {
		data, err := view.ChangeData(c, inv)
		if err != nil {
			return err
		}
		if i > 0 {
			history = nil
		}
		if err := l.entry(t, &xid, string(c.Type), data, history); err != nil {
			return err
		}
	}
	for i := range inv.NewAttention {
		a := inv.NewAttention[i]
		if _, seen := l.attentionRows[a.Key]; seen {
			continue // the store's ON CONFLICT (key) DO NOTHING: raised once
		}
		if l.attention >= strideAttention {
			return fmt.Errorf("invoice %d needs more than %d attention ids", l.g, strideAttention)
		}
		l.attention++
		a.ID, a.CreatedAt, a.State = int64((l.g-1)*strideAttention+l.attention), t, invoice.AttentionOpen
		evidence, err := json.Marshal(a.Evidence)
		if err != nil {
			return err
		}
		l.attentionRows[a.Key] = []any{a.ID, a.Key, string(a.Reason), inv.ID, a.InvoiceNumber, string(a.Source), evidence,
			string(invoice.AttentionOpen), t, nil, "", ""}
		l.attentionKeys = append(l.attentionKeys, a.Key)
		data, err := view.AttentionData(&a, inv)
		if err != nil {
			return err
		}
		if err := l.entry(t, &xid, string(invoice.ChangeAttentionRaised), data, nil); err != nil {
			return err
		}
	}
	for _, res := range inv.ResolvedAttention {
		if row, ok := l.attentionRows[res.Key]; ok && row[7] == string(invoice.AttentionOpen) {
			row[7], row[9], row[10], row[11] = string(invoice.AttentionResolved), t, "system", res.Note
		}
	}
	inv.NewEvents, inv.NewChanges, inv.NewAttention, inv.ResolvedAttention = nil, nil, nil, nil
	return nil
}

// entry writes one entry of the invoice's log made at t: a public event (xid set: its transaction)
// with its delivery, or a history entry (no id, feed position, invoice number or payload).
func (l *life) entry(t time.Time, xid *uint64, typ string, data []byte, history any) error {
	if l.events >= strideEvents {
		return fmt.Errorf("invoice %d needs more than %d event sequence numbers", l.g, strideEvents)
	}
	l.events++
	seq := int64((l.g-1)*strideEvents + l.events)
	if xid == nil {
		l.b.add(tEvents, seq, nil, typ, l.inv.ID, nil, t, nil, nil, history)
		return nil
	}
	l.b.add(tEvents, seq, l.eventID(t), typ, l.inv.ID, l.inv.Number, t, *xid, string(data), history)
	l.deliver(seq, t)
	return nil
}

// eventID is an event's public id as newEventID makes it (a UUIDv7, time-ordered), at t.
func (l *life) eventID(t time.Time) string {
	var u [16]byte
	binary.BigEndian.PutUint64(u[8:], l.r.Uint64())
	binary.BigEndian.PutUint64(u[:8], uint64(t.UnixMilli())<<16|uint64(l.r.Uint32()&0x0fff))
	u[6] = 0x70 | u[6]&0x0f // version 7
	u[8] = 0x80 | u[8]&0x3f // RFC 4122 variant
	return "evt_" + hex.EncodeToString(u[:])
}

// deliver is the webhook delivery of event seq, made at t, to the merchant's endpoint: delivered at
// once almost always; a few after a failed attempt or two; during the receiver's outage, retried with
// the deliverer's backoff until it ends (delivered) or the retry period does (dead).
func (l *life) deliver(seq int64, t time.Time) {
	r, p, o := l.r, l.y.policy, l.y.outage
	at := t.Add(time.Duration(5+r.IntN(150)) * time.Millisecond)
	attempt := func(status int, latency time.Duration, errText string) {
		var st any
		if status != 0 {
			st = int32(status)
		}
		l.b.add(tAttempts, seq, loadedEndpoint, at, st, int32(latency.Milliseconds()), errText)
	}
	backoff := p.BaseBackoff
	retry := func() {
		at = at.Add(time.Duration(float64(backoff) * (0.8 + 0.4*r.Float64())))
		backoff = min(2*backoff, p.MaxBackoff)
	}
	n, state := 0, "delivered"
	switch {
	case !at.Before(o[0]) && at.Before(o[1]):
		for at.Before(o[1]) && at.Sub(t) < p.RetryPeriod {
			attempt(0, 10*time.Second, "no answer within 10s")
			n++
			retry()
		}
		if at.Sub(t) >= p.RetryPeriod {
			state = "dead"
		}
	case r.Float64() < shareFlaky:
		for k := 1 + r.IntN(2); k > 0; k-- {
			attempt(503, time.Duration(20+r.IntN(200))*time.Millisecond, "HTTP 503")
			n++
			retry()
		}
	}
	latency := time.Duration(20+r.IntN(380)) * time.Millisecond
	if state == "delivered" {
		attempt(200, latency, "")
		n++
	}
	finished := at.Add(latency)
	// The claim moved next_attempt_at a lease ahead of the last attempt; a finished delivery keeps it.
	l.b.add(tDeliveries, seq, loadedEndpoint, l.inv.Number, state, int32(n), at.Add(30*time.Second), t, finished)
}

// finish writes the invoice as its year left it, its payments and its attention items (a person
// resolves what is still open a few days after it was raised).
func (l *life) finish() {
	inv, y := l.inv, l.y
	next := inv.NextCheckAt
	if next != nil {
		shifted := next.Add(checkShift)
		next = &shifted
	}
	l.b.add(tInvoices, inv.ID, inv.Number, string(inv.Channel), inv.Amount, invoice.Currency, string(inv.Status),
		inv.Customer.Name, inv.Customer.Email, int32(inv.ExpiresInMinutes), inv.Reusable, inv.Info, inv.ReceiptFooter,
		bytesOrNil(inv.Metadata), inv.DokuRequestID, inv.DokuRequestBody, inv.DokuEnv, inv.PageToken, textOrNil(inv.PaymentCode),
		inv.HowToPayPage, inv.HowToPayAPI, timeOrNil(inv.ExpiresAt), timeOrNil(inv.PaidAt), inv.PaidAfterExpiry,
		timeOrNil(inv.CancelledAt), inv.CancelReason, inv.PaidAfterCancel, inv.FailureCode, inv.FailureMessage, inv.ExpiredByGrace,
		int32(inv.IssueAttempts), inv.NextIssueAt, timeOrNil(next), int32(inv.CheckAttempts), inv.CreatedAt, inv.UpdatedAt)
	for _, p := range inv.Payments {
		ids, _ := json.Marshal(identifiersOf(p.Identifiers))
		l.b.add(tPayments, p.ID, inv.ID, p.DedupeKey, p.Amount, p.PaidAt, string(p.Source), p.RequestID, ids, p.CreatedAt)
	}
	for _, key := range l.attentionKeys {
		row := l.attentionRows[key]
		if row[7] == string(invoice.AttentionOpen) {
			if at := row[8].(time.Time).Add(time.Duration(24+l.r.IntN(72)) * time.Hour); at.Before(y.end) {
				row[7], row[9], row[10], row[11] = string(invoice.AttentionResolved), at, "ops", "refunded the customer"
			}
		}
		l.b.add(tAttention, row...)
	}
	l.b.invoices++
}

func identifiersOf(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

func textOrNil(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func timeOrNil(t *time.Time) any {
	if t == nil {
		return nil
	}
	return *t
}

func bytesOrNil(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return []byte(b)
}

// The load.

// loadPhase is one load into the bench database.
type loadPhase struct {
	Invoices     int              `json:"invoices"`      // loaded in this phase
	Total        int              `json:"total"`         // loaded so far
	Seconds      float64          `json:"seconds"`       // the whole phase
	CopySeconds  float64          `json:"copy_seconds"`  // COPY, while the next rows are generated
	IndexSeconds float64          `json:"index_seconds"` // the non-unique indexes dropped and built again
	Vacuum       float64          `json:"vacuum_analyze_seconds"`
	Rows         map[string]int64 `json:"rows"`
	FKChecks     string           `json:"fk_checks"`
}

// reserveYear moves the identity sequences of the tables whose ids the year fixes past the ids it
// reserves for n invoices, before the bench writes anything, and returns the first transaction id the
// bench database's own work can have: the year's events take xids below it.
func reserveYear(ctx context.Context, conn *pgxpool.Pool, n int) (uint64, error) {
	for _, r := range identityReserve {
		if _, err := conn.Exec(ctx, `SELECT setval(pg_get_serial_sequence($1, $2), $3)`, r.table, r.column, int64(n)*int64(r.stride)); err != nil {
			return 0, fmt.Errorf("reserve %s ids for the year: %w", r.table, err)
		}
	}
	var next uint64
	err := conn.QueryRow(ctx, `SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint`).Scan(&next)
	return next, err
}

// ensureLoadedEndpoint registers the merchant's endpoint the year was delivered to, and removes it
// again, as the store does: a removed endpoint gets no new events, so the rows write at volume what
// they wrote on the empty database. The claims and the purge enable it while they run.
func (b *bench) ensureLoadedEndpoint() error {
	store := b.store()
	if err := store.RegisterEndpoints(b.ctx, []invoice.Endpoint{{Name: loadedEndpoint, URL: loadedEndpointURL, Active: true}}); err != nil {
		return err
	}
	_, err := store.RemoveEndpoint(b.ctx, loadedEndpoint)
	return err
}

// loadYear copies the invoices of y that keep selects (and everything of theirs) into the bench
// database, chunk by chunk, then rebuilds the indexes it set aside and vacuums and analyzes what it
// loaded. total is how many invoices are loaded once it is done.
func loadYear(ctx context.Context, st *stack, y *yearPlan, keep func(g int) bool, total int) (loadPhase, error) {
	ph := loadPhase{Rows: map[string]int64{}}
	t0 := time.Now()
	// Two sessions copy at once (the server's work is most of the load), each its own tables.
	var conns [2]*pgx.Conn
	for i := range conns {
		c, err := pgx.Connect(ctx, st.dbURL)
		if err != nil {
			return ph, err
		}
		defer c.Close(context.WithoutCancel(ctx))
		conns[i] = c
		// Session settings of these connections only. A commit need not wait for its WAL to reach
		// the disk (a load cut short is redone from scratch), indexes are built with room to sort,
		// and rows built consistent by construction need no foreign-key trigger per row (which needs
		// a superuser; without it the load is slower and copies one table at a time, in order).
		for _, set := range []string{"SET synchronous_commit = off", "SET maintenance_work_mem = '256MB'"} {
			if _, err := c.Exec(ctx, set); err != nil {
				return ph, err
			}
		}
		if _, err := c.Exec(ctx, "SET session_replication_role = replica"); err != nil {
			ph.FKChecks = "on (" + err.Error() + "): one session, tables in order"
		}
	}
	if ph.FKChecks == "" {
		ph.FKChecks = "off for the load's sessions (session_replication_role = replica): the rows are consistent by construction"
	}
	parallel := !strings.HasPrefix(ph.FKChecks, "on")

	// Inserting into a B-tree row by row costs more than the rows themselves: the non-unique indexes
	// of the loaded tables are dropped for the load and built again from their definitions after it,
	// as a bulk load is done. (Unique ones stay: constraints and foreign keys hang on them.)
	i0 := time.Now()
	indexes, err := setIndexesAside(ctx, conns[0])
	if err != nil {
		return ph, err
	}
	ph.IndexSeconds = time.Since(i0).Seconds()

	// Two goroutines live the invoices, a chunk each in turn, while the sessions copy what they made:
	// each chunk is a fixed range of invoice numbers, and every row's ids follow from its number, so
	// the order the chunks arrive in changes nothing.
	const chunk, workers = 4000, 2
	batches := make(chan *yearBatch, workers)
	genErr := make(chan error, workers)
	gctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for lo := 1 + w*chunk; lo <= y.n; lo += workers * chunk {
				b := &yearBatch{}
				for g := lo; g < lo+chunk && g <= y.n; g++ {
					if !keep(g) {
						continue
					}
					if err := y.live(g, b); err != nil {
						genErr <- err
						return
					}
				}
				select {
				case batches <- b:
				case <-gctx.Done():
					return
				}
			}
		}()
	}
	go func() { wg.Wait(); close(batches) }()
	var copying time.Duration
	for b := range batches {
		c0 := time.Now()
		if err := copyBatch(ctx, conns, b, parallel, ph.Rows); err != nil {
			cancel()
			return ph, err
		}
		copying += time.Since(c0)
		ph.Invoices += b.invoices
	}
	select {
	case err := <-genErr:
		return ph, err
	default:
	}
	if err := ctx.Err(); err != nil {
		return ph, err
	}
	ph.CopySeconds = round(copying.Seconds(), 1)
	ph.Total = total

	i0 = time.Now()
	for _, def := range indexes {
		if _, err := conns[0].Exec(ctx, def); err != nil {
			return ph, fmt.Errorf("rebuild an index set aside for the load: %w", err)
		}
	}
	ph.IndexSeconds = round(ph.IndexSeconds+time.Since(i0).Seconds(), 1)
	// The rows are new to the planner and their pages have no hint bits or visibility map yet: a
	// production database's autovacuum would have seen to both long ago.
	v0 := time.Now()
	names := make([]string, 0, len(yearTables))
	for _, t := range yearTables {
		names = append(names, t.name)
	}
	if _, err := conns[0].Exec(ctx, "VACUUM (ANALYZE) "+strings.Join(names, ", ")+", webhook_endpoints"); err != nil {
		return ph, fmt.Errorf("vacuum the loaded tables: %w", err)
	}
	ph.Vacuum = round(time.Since(v0).Seconds(), 1)
	ph.Seconds = round(time.Since(t0).Seconds(), 1)
	return ph, nil
}

// copyBatch copies one batch, table by table; in parallel, the two sessions take a share each, about
// equal in the server's work (measured: the log against the rest).
func copyBatch(ctx context.Context, conns [2]*pgx.Conn, b *yearBatch, parallel bool, counts map[string]int64) error {
	copyTables := func(conn *pgx.Conn, tables []*copyTable, n []int64) error {
		for k, t := range tables {
			rows := b.rows[t.i]
			if len(rows) == 0 {
				continue
			}
			got, err := conn.CopyFrom(ctx, pgx.Identifier{t.name}, t.columns, pgx.CopyFromRows(rows))
			if err != nil {
				return fmt.Errorf("copy the year into %s: %w", t.name, err)
			}
			n[k] = got
		}
		return nil
	}
	if !parallel {
		n := make([]int64, len(yearTables))
		err := copyTables(conns[0], yearTables, n)
		for k, t := range yearTables {
			counts[t.name] += n[k]
		}
		return err
	}
	var shares [2][]*copyTable
	for _, t := range yearTables {
		k := 0
		if t == tAttempts || t == tDeliveries || t == tNotifications {
			k = 1
		}
		shares[k] = append(shares[k], t)
	}
	n := [2][]int64{make([]int64, len(shares[0])), make([]int64, len(shares[1]))}
	errs := make(chan error, 2)
	for k := range shares {
		go func() { errs <- copyTables(conns[k], shares[k], n[k]) }()
	}
	err := errors.Join(<-errs, <-errs)
	for k := range shares {
		for j, t := range shares[k] {
			counts[t.name] += n[k][j]
		}
	}
	return err
}

// setIndexesAside drops the non-unique indexes of the loaded tables and returns the statements that
// build them again.
func setIndexesAside(ctx context.Context, conn *pgx.Conn) ([]string, error) {
	names := make([]string, 0, len(yearTables))
	for _, t := range yearTables {
		names = append(names, t.name)
	}
	rows, err := conn.Query(ctx, `
		SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i
		JOIN pg_class t ON t.oid = i.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace
		WHERE n.nspname = current_schema() AND t.relname = ANY($1) AND NOT i.indisunique AND i.indisvalid
		ORDER BY 1`, names)
	if err != nil {
		return nil, err
	}
	var index, def string
	var drop, defs []string
	if _, err := pgx.ForEachRow(rows, []any{&index, &def}, func() error {
		drop, defs = append(drop, index), append(defs, def)
		return nil
	}); err != nil {
		return nil, err
	}
	if len(drop) > 0 {
		if _, err := conn.Exec(ctx, "DROP INDEX "+strings.Join(drop, ", ")); err != nil {
			return nil, fmt.Errorf("set the indexes aside for the load: %w", err)
		}
	}
	return defs, nil
}

// tableSizes is each loaded table's size on disk, indexes and TOAST included, in bytes, and the
// whole database's.
func tableSizes(ctx context.Context, st *stack) (map[string]int64, int64, error) {
	out := map[string]int64{}
	names := []string{}
	for _, t := range yearTables {
		names = append(names, t.name)
	}
	rows, err := st.pool.Query(ctx, `SELECT relname::text, pg_total_relation_size(oid) FROM pg_class WHERE relname = ANY($1) AND relkind = 'r'`, names)
	if err != nil {
		return nil, 0, err
	}
	var name string
	var size int64
	if _, err := pgx.ForEachRow(rows, []any{&name, &size}, func() error { out[name] = size; return nil }); err != nil {
		return nil, 0, err
	}
	var db int64
	err = st.pool.QueryRow(ctx, `SELECT pg_database_size(current_database())`).Scan(&db)
	return out, db, err
}

// everyTenth selects the intermediate volume: every tenth invoice, so that it is a year too, of a
// merchant with a tenth of the sales.
func everyTenth(g int) bool { return g%10 == 0 }

func notTenth(g int) bool { return g%10 != 0 }

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.0f MB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d kB", n>>10)
}
