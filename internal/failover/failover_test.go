//go:build ha

package failover

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/merchant/o2o/internal/apitest"
	"github.com/merchant/o2o/internal/config"
)

const (
	database = "o2o"
	// connectTimeout is DATABASE_URL's connect_timeout in the failover tests, in seconds: a host that
	// refuses (the killed primary) costs nothing, a standby not yet promoted is refused by
	// target_session_attrs=read-write at once, so it bounds nothing here; TestPacketDroppingHost is
	// about it.
	connectTimeout = 2
	// detectionDelay stands for the time a failover manager takes to decide the primary is gone:
	// the standby is promoted this long after the kill, which is the window in which no database is
	// writable and /readyz must say so.
	detectionDelay = time.Second
	// recoveryBound is the longest the service may take, after the promotion, to answer a create
	// and /readyz with 200 again: measured well under a second (see the summary); the bound leaves
	// room for a loaded machine.
	recoveryBound = 10 * time.Second
)

// dokuRetries stand for DOKU's redelivery of a notification that was not answered 2xx (+30 min,
// +6 h, +12 h in production): in the test, a second and more after the first attempt, so that a
// notification refused during the outage is redelivered after it.
var dokuRetries = []time.Duration{time.Second, 2 * time.Second, 4 * time.Second}

// TestFailover runs the service on a primary and a streaming standby (synchronous, then
// asynchronous), kills the primary with SIGKILL while creates and webhooks are in flight, promotes
// the standby, and holds every acknowledgement against what the promoted standby has.
func TestFailover(t *testing.T) {
	var results []*figures
	for _, synchronous := range []bool{true, false} {
		name := map[bool]string{true: "synchronous", false: "asynchronous"}[synchronous]
		t.Run(name, func(t *testing.T) {
			results = append(results, failover(t, synchronous))
		})
	}
	var b strings.Builder
	b.WriteString("\nFAILOVER SUMMARY\n")
	for _, f := range results {
		b.WriteString(f.summary())
	}
	t.Log(b.String())
}

// figures are what one failover measured.
type figures struct {
	mode string

	killToPromoted, promotedToCreate, promotedToReady, promotedToListener time.Duration
	readyzOutage, readyzOutage200                                         int
	probesOutage, probesOutage201                                         int
	// Answers after the promotion and before the first 200/201: what stale connections to the
	// killed primary cost.
	readyzFailedAfter, probesFailedAfter int
	walNotOnStandby                      int64

	createsAckedBeforeKill, createsFoundAfter, createsLost int
	createsRegressed, regressedSameCode                    int
	createsAckedAfterKill                                  int
	createsAnsweredLate                                    int // acknowledged only on a retry (after a 503, a 409 or no answer)
	lostCreateRetries, lostCreateSameCode                  int
	lostCreateNewCodes                                     int

	paysAckedBeforeKill, paysFoundAfter, paysLost int
	paysAckedAfterKill                            int
	paysRefused                                   int // first delivery not answered 2xx
	missingBeforeReconciler, foundByReconciler    int
	payments, paymentsMade, doubled               int
	codesIssued, invoices                         int
	attention                                     map[string]int
	webhookAnswers                                map[int]int
	answers                                       map[string]int // every answer of the service during the workload
}

func (f *figures) summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "== %s standby ==\n", f.mode)
	fmt.Fprintf(&b, "  recovery: kill -> standby promoted %s (of which %s is the stand-in for failure detection); promoted -> first create 201 %s, -> /readyz 200 %s, -> event listener reconnected %s\n",
		ms(f.killToPromoted), ms(detectionDelay), ms(f.promotedToCreate), ms(f.promotedToReady), ms(f.promotedToListener))
	fmt.Fprintf(&b, "  while no primary was writable: /readyz %d x 503, %d x 200; creates %d answered, %d x 201\n",
		f.readyzOutage-f.readyzOutage200, f.readyzOutage200, f.probesOutage, f.probesOutage201)
	fmt.Fprintf(&b, "  after the promotion, before the first success: /readyz %d x 503, creates %d x 503\n",
		f.readyzFailedAfter, f.probesFailedAfter)
	if f.mode == "asynchronous" {
		fmt.Fprintf(&b, "  WAL the standby did not have at the kill: at least %d bytes\n", f.walNotOnStandby)
	}
	fmt.Fprintf(&b, "  creates acknowledged before the kill: %d; found after the failover: %d; lost: %d (retried by the client: %d, 201 pending with the customer's code: %d, new codes DOKU issued for them: %d)\n",
		f.createsAckedBeforeKill, f.createsFoundAfter, f.createsLost, f.lostCreateRetries, f.lostCreateSameCode, f.lostCreateNewCodes)
	fmt.Fprintf(&b, "  creates acknowledged before the kill found back in creating (the insert replicated, the code not): %d; the same code back on a retry: %d\n",
		f.createsRegressed, f.regressedSameCode)
	fmt.Fprintf(&b, "  creates acknowledged after the kill: %d; creates acknowledged only on a retry (after a 503, a 409 or no answer): %d\n",
		f.createsAckedAfterKill, f.createsAnsweredLate)
	fmt.Fprintf(&b, "  payments acknowledged (webhook 200) before the kill: %d; recorded after the failover: %d; lost: %d\n",
		f.paysAckedBeforeKill, f.paysFoundAfter, f.paysLost)
	fmt.Fprintf(&b, "  payments acknowledged after the kill: %d; notifications refused at first (503 or no answer; DOKU redelivers): %d\n",
		f.paysAckedAfterKill, f.paysRefused)
	fmt.Fprintf(&b, "  payments DOKU took but the service lacked before the reconciler: %d; found again by the reconciler (DOKU check status): %d\n",
		f.missingBeforeReconciler, f.foundByReconciler)
	fmt.Fprintf(&b, "  at the end: %d payments made at the counter, %d recorded, doubled: %d; %d codes DOKU issued for %d invoices\n",
		f.paymentsMade, f.payments, f.doubled, f.codesIssued, f.invoices)
	fmt.Fprintf(&b, "  webhook answers to first deliveries: %v; open attention items: %v\n", f.webhookAnswers, f.attention)
	fmt.Fprintf(&b, "  every answer of the service during the workload (0: none): %v\n", f.answers)
	return b.String()
}

func ms(d time.Duration) string { return d.Round(time.Millisecond).String() }

// failover runs one failover and checks it; see TestFailover.
func failover(t *testing.T, synchronous bool) *figures {
	f := &figures{mode: map[bool]string{true: "synchronous", false: "asynchronous"}[synchronous]}
	h := newPGHost(t)

	primary := h.initdb("primary")
	primary.start()
	primary.migrate(database)
	standby := h.standbyOf(primary, "standby", "standby")
	standby.start()
	primary.waitStreaming("standby", "async")
	if synchronous {
		// Named only now that the standby streams (every commit would wait for it before), by
		// pg_basebackup's application_name: with synchronous_commit = on, a commit returns only once
		// the standby has flushed its WAL. The standby's copy of the configuration does not name
		// it, so, promoted, it runs alone: naming a standby it does not have would hold every
		// commit. (In production a third instance becomes the new synchronous standby.)
		primary.exec(`ALTER SYSTEM SET synchronous_standby_names = 'standby'`)
		primary.exec(`SELECT pg_reload_conf()`)
		primary.waitStreaming("standby", "sync")
	}

	url := fmt.Sprintf("postgres://postgres@127.0.0.1:%d,127.0.0.1:%d/%s?sslmode=disable&target_session_attrs=read-write&connect_timeout=%d",
		primary.port, standby.port, database, connectTimeout)
	s := apitest.New(t, apitest.Options{
		DatabaseURL: url,
		// A short DOKU timeout keeps the issue lease (DOKU_TIMEOUT + 5 s) of a create cut off by the
		// failure short, so its retries are answered within the test.
		DokuTimeout:   2 * time.Second,
		RetrySchedule: dokuRetries,
		Config: func(c *config.Config) {
			c.ResumerBaseBackoff, c.ResumerMaxBackoff, c.ResumerMaxAttempts = 100*time.Millisecond, time.Second, 100
			c.ReconcileBatch = 10000
		},
	})

	// What Run starts beside the HTTP server: the resumer (which finishes creates cut off by the
	// failure) and the event listener (whose reconnection is timed). The reconciler is run by hand
	// below, so that what it finds is seen apart from the rest.
	bgCtx, bgCancel := context.WithCancel(context.Background())
	var bg sync.WaitGroup
	t.Cleanup(func() { bgCancel(); bg.Wait() })
	var listenMu sync.Mutex
	var listens []time.Time
	bg.Add(2)
	go func() { defer bg.Done(); _ = s.App.Resumer.Run(bgCtx) }()
	go func() {
		defer bg.Done()
		s.App.Listen(bgCtx, func() { listenMu.Lock(); listens = append(listens, time.Now()); listenMu.Unlock() })
	}()

	w := newWorkload(t, s, map[bool]string{true: "SYNC", false: "ASYNC"}[synchronous])
	answered := func(c *createRec) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if _, ok := w.createUntilAnswered(ctx, c); !ok {
			t.Fatalf("create %s was not answered before the failure: %v", c.body.InvoiceNumber, c.answers)
		}
	}
	// Three orders created now and paid just before the kill: invoices the standby has, whose
	// payments come last.
	var held []*createRec
	for i := 0; i < 3; i++ {
		c := w.newOrder("held")
		answered(c)
		held = append(held, c)
	}
	stop := w.run(3)
	time.Sleep(1500 * time.Millisecond)

	if !synchronous {
		// The asynchronous standby is made to lag, deterministically: once it has replayed
		// everything so far, its WAL receiver is stopped (primary_conninfo emptied, a reload). What
		// the primary acknowledges from now on exists on the primary only — as with a standby
		// that fell behind by a network hiccup, a busy disk or a restart when the primary is lost.
		var lsn string
		if err := primary.query(`SELECT pg_current_wal_lsn()::text`, nil, []any{&lsn}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 30*time.Second, "the standby to replay "+lsn, func() bool {
			var ok bool
			return standby.query(`SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn`, []any{lsn}, []any{&ok}) == nil && ok
		})
		standby.exec(`ALTER SYSTEM SET primary_conninfo = ''`)
		standby.exec(`SELECT pg_reload_conf()`)
		waitFor(t, 30*time.Second, "the standby to stop receiving WAL", func() bool {
			var n int
			return primary.query(`SELECT count(*) FROM pg_stat_replication WHERE application_name = 'standby'`, nil, []any{&n}) == nil && n == 0
		})
	}

	// The last acknowledgements before the kill, made one by one so that each is known to be
	// acknowledged: the held orders paid, and three new orders created, two of them paid.
	var last []*payRec
	for _, c := range held {
		last = append(last, w.pay(c))
	}
	var lastCreates []*createRec
	for i := 0; i < 3; i++ {
		c := w.newOrder("last")
		answered(c)
		lastCreates = append(lastCreates, c)
		if i < 2 {
			last = append(last, w.pay(c))
		}
	}
	for _, p := range last {
		if p == nil || !p.acked {
			t.Fatalf("a payment made before the kill was not acknowledged: %+v", p)
		}
	}
	time.Sleep(500 * time.Millisecond) // the workers go on; in async mode, their acknowledgements are lost too

	var primaryLSN string
	if err := primary.query(`SELECT pg_current_wal_lsn()::text`, nil, []any{&primaryLSN}); err != nil {
		t.Fatal(err)
	}
	primary.kill()
	tKill := time.Now()
	t.Logf("%s: primary killed (SIGKILL) with creates and webhooks in flight", f.mode)
	if err := standby.query(`SELECT pg_wal_lsn_diff($1::pg_lsn, greatest(coalesce(pg_last_wal_receive_lsn(), '0/0'), pg_last_wal_replay_lsn()))::bigint`,
		[]any{primaryLSN}, []any{&f.walNotOnStandby}); err != nil {
		t.Fatal(err)
	}

	time.Sleep(detectionDelay)
	tPromote := time.Now()
	standby.promote()
	tPromoted := time.Now()
	f.killToPromoted = tPromoted.Sub(tKill)
	t.Logf("%s: standby promoted", f.mode)

	var tCreate, tReady time.Time
	waitFor(t, recoveryBound, "a create answered 201 and /readyz 200 after the promotion", func() bool {
		probes, readyz := w.snapshotProbes()
		var ok1, ok2 bool
		tCreate, ok1 = firstAfter(probes, tPromoted, http.StatusCreated)
		tReady, ok2 = firstAfter(readyz, tPromoted, http.StatusOK)
		return ok1 && ok2
	})
	f.promotedToCreate, f.promotedToReady = tCreate.Sub(tPromoted), tReady.Sub(tPromoted)
	waitFor(t, recoveryBound, "the event listener to reconnect", func() bool {
		listenMu.Lock()
		defer listenMu.Unlock()
		return len(listens) > 0 && listens[len(listens)-1].After(tPromoted)
	})
	listenMu.Lock()
	f.promotedToListener = listens[len(listens)-1].Sub(tPromoted)
	listenMu.Unlock()
	time.Sleep(time.Second) // the service at work on the new primary
	stop()

	// While no server was writable — from the kill to the promotion — /readyz said so, and nothing
	// was acknowledged.
	probes, readyz := w.snapshotProbes()
	for _, p := range readyz {
		if !p.start.Before(tKill) && !p.end.After(tPromote) {
			f.readyzOutage++
			if p.status == http.StatusOK {
				f.readyzOutage200++
			}
		}
	}
	for _, p := range probes {
		if !p.start.Before(tKill) && !p.end.After(tPromote) {
			f.probesOutage++
			if p.status == http.StatusCreated || p.status == http.StatusOK {
				f.probesOutage201++
			}
		}
	}
	for _, p := range readyz {
		if !p.start.Before(tPromoted) && p.end.Before(tReady) {
			f.readyzFailedAfter++
		}
	}
	for _, p := range probes {
		if !p.start.Before(tPromoted) && p.end.Before(tCreate) {
			f.probesFailedAfter++
		}
	}
	if f.readyzOutage == 0 || f.readyzOutage200 > 0 {
		t.Errorf("/readyz while no primary was writable: %d answers, %d of them 200; want some, none 200", f.readyzOutage, f.readyzOutage200)
	}
	if f.probesOutage == 0 || f.probesOutage201 > 0 {
		t.Errorf("creates while no primary was writable: %d answered, %d of them 201; want some, none 201", f.probesOutage, f.probesOutage201)
	}
	for _, p := range w.pays {
		if p.acked && p.start.After(tKill) && p.end.Before(tPromote) {
			t.Errorf("the webhook acknowledged %s's payment while no primary was writable", p.number)
		}
	}

	f.answers = maps.Clone(w.statuses)

	// What the promoted standby has of what was acknowledged.
	db := loadInvoices(t, s)
	f.webhookAnswers = map[int]int{}
	for _, c := range w.creates {
		if !c.acked {
			continue
		}
		if len(c.answers) > 1 || c.answers[0] != http.StatusCreated {
			f.createsAnsweredLate++
		}
		inv, found := db[c.body.InvoiceNumber]
		// An invoice with no code is back in creating: its insert reached the standby, the code
		// DOKU issued for it did not.
		intact := found && inv.code == c.code
		if found && inv.code != "" && inv.code != c.code {
			t.Errorf("invoice %s: code %s after the failover, %s acknowledged", c.body.InvoiceNumber, inv.code, c.code)
		}
		if c.ackStart.After(tKill) {
			f.createsAckedAfterKill++
			if !intact {
				t.Errorf("invoice %s, acknowledged by the new primary, is missing or without its code", c.body.InvoiceNumber)
			}
			continue
		}
		f.createsAckedBeforeKill++
		switch {
		case intact:
			f.createsFoundAfter++
		case found:
			f.createsRegressed++
		default:
			f.createsLost++
		}
	}
	for _, p := range w.pays {
		f.webhookAnswers[p.firstStatus]++
		if !p.acked {
			f.paysRefused++
			continue
		}
		recorded := db[p.number].hasTrx(p.trx)
		if p.start.After(tKill) {
			f.paysAckedAfterKill++
			if !recorded {
				t.Errorf("payment %s of %s, acknowledged by the new primary, is missing", p.trx, p.number)
			}
			continue
		}
		f.paysAckedBeforeKill++
		if recorded {
			f.paysFoundAfter++
		} else {
			f.paysLost++
		}
	}
	if synchronous {
		if f.createsLost > 0 || f.createsRegressed > 0 || f.paysLost > 0 {
			t.Errorf("synchronous standby: %d acknowledged creates lost, %d back in creating, %d acknowledged payments lost; want none",
				f.createsLost, f.createsRegressed, f.paysLost)
		}
	} else {
		// The deterministic part of the loss: the last payments, and the last creates.
		for _, p := range last {
			if db[p.number].hasTrx(p.trx) {
				t.Errorf("asynchronous standby: payment %s of %s, acknowledged after the standby stopped receiving, survived", p.trx, p.number)
			}
		}
		for _, c := range lastCreates {
			if _, found := db[c.body.InvoiceNumber]; found {
				t.Errorf("asynchronous standby: invoice %s, acknowledged after the standby stopped receiving, survived", c.body.InvoiceNumber)
			}
		}
		if f.paysLost < len(last) || f.createsLost < len(lastCreates) {
			t.Errorf("asynchronous standby: %d payments and %d creates lost; want at least %d and %d", f.paysLost, f.createsLost, len(last), len(lastCreates))
		}
	}

	// The clients: a checkout retries the same request for an order it never got an answer for, and
	// an order system that finds an acknowledged invoice missing (404) submits it again. The retry of
	// a lost create must get the customer's code back — DOKU answers the same Request-Id and bytes
	// with the code it issued — and no new code.
	issued := s.Sim.Issued()
	for _, c := range w.creates {
		if _, found := db[c.body.InvoiceNumber]; !c.acked || found {
			continue
		}
		f.lostCreateRetries++
		status, _, body, err := send(s.Client, http.MethodPost, s.URL+"/v1/invoices", apitest.JSON(t, c.body))
		var v apitest.InvoiceView
		if err != nil || status != http.StatusCreated || json.Unmarshal(body, &v) != nil {
			t.Errorf("the retry of lost create %s: HTTP %d %v %s; want 201", c.body.InvoiceNumber, status, err, body)
			continue
		}
		if v.Status != "pending" || v.PaymentCode == nil || *v.PaymentCode != c.code {
			t.Errorf("the retry of lost create %s: %s with code %v; want pending with the customer's code %s", c.body.InvoiceNumber, v.Status, v.PaymentCode, c.code)
			continue
		}
		f.lostCreateSameCode++
	}
	if f.lostCreateNewCodes = s.Sim.Issued() - issued; f.lostCreateNewCodes != 0 {
		t.Errorf("the retries of %d lost creates made DOKU issue %d new codes; want none", f.lostCreateRetries, f.lostCreateNewCodes)
	}
	if !synchronous && f.lostCreateSameCode < len(lastCreates) {
		t.Errorf("asynchronous standby: %d lost creates got their code back; want at least %d", f.lostCreateSameCode, len(lastCreates))
	}
	for _, c := range w.creates {
		if inv, found := db[c.body.InvoiceNumber]; c.acked && found && inv.code == "" {
			// Back in creating: the resumer or the order system's retry (200, or 409 while the
			// lease of the attempt the failure cut off runs) finishes it with the same code.
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			code, ok := w.createUntilAnswered(ctx, c)
			switch {
			case !ok:
				t.Errorf("create %s, back in creating after the failover, was never answered again: %v", c.body.InvoiceNumber, c.answers)
			case code == c.code:
				f.regressedSameCode++
			}
			cancel()
			continue
		}
		if c.acked {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if _, ok := w.createUntilAnswered(ctx, c); !ok {
			t.Errorf("create %s was never answered after the failover: %v", c.body.InvoiceNumber, c.answers)
		}
		cancel()
	}

	// DOKU redelivers what was refused; its last retry is dokuRetries' last offset after the payment.
	var lastPay time.Time
	for _, p := range w.pays {
		if p.start.After(lastPay) {
			lastPay = p.start
		}
	}
	time.Sleep(time.Until(lastPay.Add(dokuRetries[len(dokuRetries)-1] + 2*time.Second)))

	db = loadInvoices(t, s)
	for _, p := range w.pays {
		if len(db[p.number].sources) == 0 {
			f.missingBeforeReconciler++
		}
	}
	// The reconciler's next round, with every check due (the schedule's first wait is a minute).
	s.Reconcile(1)
	db = loadInvoices(t, s)

	// The end state: every payment DOKU took is recorded exactly once, every invoice has the code
	// DOKU issued for it, and DOKU issued one code per order.
	f.paymentsMade, f.codesIssued, f.invoices = len(w.pays), s.Sim.Issued(), len(db)
	paid := map[string]bool{}
	for _, p := range w.pays {
		paid[p.number] = true
		inv := db[p.number]
		switch {
		case inv == nil:
			t.Errorf("invoice %s, paid at the counter, does not exist", p.number)
		case inv.status != "paid" || len(inv.sources) != 1:
			t.Errorf("invoice %s, paid once at the counter: %s with payments from %v", p.number, inv.status, inv.sources)
		}
	}
	for number, inv := range db {
		f.payments += len(inv.sources)
		if len(inv.sources) > 1 {
			f.doubled++
		}
		for _, src := range inv.sources {
			if src == "reconciler" {
				f.foundByReconciler++
			}
		}
		if !paid[number] && inv.status != "pending" {
			t.Errorf("invoice %s, never paid: %s", number, inv.status)
		}
		if sim := s.Sim.PaymentCode(number); inv.code != sim {
			t.Errorf("invoice %s has code %q, DOKU issued %q", number, inv.code, sim)
		}
	}
	if f.doubled > 0 || f.payments != f.paymentsMade {
		t.Errorf("%d payments made, %d recorded, %d invoices with more than one; want each recorded once", f.paymentsMade, f.payments, f.doubled)
	}
	if f.invoices != len(w.creates) || f.codesIssued != len(w.creates) {
		t.Errorf("%d orders, %d invoices, %d codes issued by DOKU; want one each", len(w.creates), f.invoices, f.codesIssued)
	}
	if f.foundByReconciler != f.missingBeforeReconciler {
		t.Errorf("the reconciler recorded %d payments; %d were missing", f.foundByReconciler, f.missingBeforeReconciler)
	}
	if !synchronous {
		for _, p := range last {
			if src := db[p.number].sources; len(src) != 1 || src[0] != "reconciler" {
				t.Errorf("lost payment of %s: recorded by %v; want the reconciler", p.number, src)
			}
		}
	}
	f.attention = openAttention(t, s)
	if t.Failed() {
		logTail(t, s.Logs.String(), 60)
	}
	return f
}

// dbInvoice is an invoice as the database holds it, with its payments' sources and store
// transaction ids.
type dbInvoice struct {
	status, code string
	sources      []string
	trxs         []string
}

func (i *dbInvoice) hasTrx(trx string) bool {
	if i == nil {
		return false
	}
	for _, x := range i.trxs {
		if x == trx {
			return true
		}
	}
	return false
}

// loadInvoices reads every invoice with its payments from the database (the promoted standby, once
// it is the primary: the test's pool has the same multi-host URL).
func loadInvoices(t *testing.T, s *apitest.Stack) map[string]*dbInvoice {
	t.Helper()
	rows, err := s.DB.Pool.Query(context.Background(), `
		SELECT i.invoice_number, i.status, coalesce(i.payment_code, ''),
			coalesce(array_agg(p.source ORDER BY p.id) FILTER (WHERE p.id IS NOT NULL), '{}'),
			coalesce(array_agg(coalesce(p.identifiers->>'AGENT_TRX_ID', '')) FILTER (WHERE p.id IS NOT NULL), '{}')
		FROM invoices i LEFT JOIN payments p ON p.invoice_id = i.id
		GROUP BY i.id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]*dbInvoice{}
	for rows.Next() {
		var number string
		inv := &dbInvoice{}
		if err := rows.Scan(&number, &inv.status, &inv.code, &inv.sources, &inv.trxs); err != nil {
			t.Fatal(err)
		}
		out[number] = inv
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// openAttention counts the open attention items by reason: what the failover left for a person.
// Each is logged with its invoice's status now.
func openAttention(t *testing.T, s *apitest.Stack) map[string]int {
	t.Helper()
	rows, err := s.DB.Pool.Query(context.Background(), `
		SELECT a.reason, a.invoice_number, coalesce(i.status, 'no invoice'), a.source
		FROM attention_items a LEFT JOIN invoices i ON i.invoice_number = a.invoice_number
		WHERE a.state = 'open' ORDER BY a.id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var reason, number, status, source string
		if err := rows.Scan(&reason, &number, &status, &source); err != nil {
			t.Fatal(err)
		}
		out[reason]++
		t.Logf("open attention item: %s for %s (raised by %s; the invoice is %s now)", reason, number, source, status)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// waitFor polls cond every 20 ms for up to d, and fails the test saying what it waited for.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// logTail logs the service's last log lines, for a failure.
func logTail(t *testing.T, logs string, n int) {
	lines := strings.Split(strings.TrimRight(logs, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	t.Logf("---- the service's last log lines ----\n%s", strings.Join(lines, "\n"))
}
