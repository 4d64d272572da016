package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/merchant/o2o/internal/doku"
	"github.com/merchant/o2o/internal/postgres"
)

// The claims and the feed page at three volumes: what the reconciler and the deliverer do every few
// seconds on every replica, and what a merchant polling the feed asks for, must cost the same on a
// database a year old as on an empty one (their indexes hold only what is due or pending, or are
// walked from a position).
//
// Each claim runs through the service's own store (postgres.Store) on a session of its own, whose
// backend's CPU is read from /proc before and after: that is the claim's PostgreSQL CPU, nothing
// else's. "Due" work is a fixture of ten invoices and ten deliveries made due again, on another
// session, before each call: ten invoices of a DOKU environment no replica serves (so that the
// service's own reconciler never takes them) and ten pending deliveries to the merchant's endpoint,
// which is enabled only while the delivery claims run (no deliverer of the service sends to it). The
// feed page is GET /v1/events through the service, from a cursor 150 events before the end of the
// feed, the same page at every volume (the loaded year sorts before it); its PostgreSQL CPU is the
// whole server's.

const (
	claimFixtureEnv    = "env_o2obench_claims"
	claimFixturePrefix = "CLAIMFIX-"
	claimFixtures      = 10
	feedLimit          = 100
	claimLease         = 30 * time.Second
)

// Calls of each kind, the same at every volume (the due claims' own updates leave dead row versions
// behind them, so a different count would be a different condition); enough for the backend's CPU,
// which /proc counts in clock ticks of 10 ms, to be read within a few per cent.
const (
	idleClaimCalls = 3000
	dueClaimCalls  = 500
	feedCalls      = 200
)

// claimCost is one claim (or the feed page) timed at one volume.
type claimCost struct {
	What     string  `json:"what"`
	Invoices int     `json:"invoices_loaded"`
	Calls    int     `json:"calls"`
	Got      float64 `json:"rows_per_call"`
	P50      float64 `json:"p50_ms"`
	P99      float64 `json:"p99_ms"`
	PgCPU    float64 `json:"postgres_cpu_us_per_call"`
	AppCPU   float64 `json:"service_cpu_us_per_call,omitempty"` // the feed page only
	PgWhat   string  `json:"postgres_cpu_of"`
}

// claims times the claims and the feed page with loaded invoices of the year in the database.
func (b *bench) claims(loaded int) ([]claimCost, error) {
	ctx := b.ctx
	if err := b.claimFixture(); err != nil {
		return nil, err
	}
	// Each volume is measured as autovacuum would leave it: the loads end with VACUUM (ANALYZE), and
	// the empty database, just after the first pass's rows, gets the same.
	if _, err := b.st.pool.Exec(ctx, "VACUUM (ANALYZE) invoices, events, webhook_deliveries, webhook_attempts, webhook_endpoints"); err != nil {
		return nil, err
	}
	cfg, err := pgxpool.ParseConfig(b.st.dbURL)
	if err != nil {
		return nil, err
	}
	cfg.MaxConns, cfg.MinConns = 1, 1
	cfg.ConnConfig.RuntimeParams["application_name"] = "o2obench-claims"
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	var backend int
	if err := pool.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&backend); err != nil {
		return nil, err
	}
	store := postgres.NewStore(pool)
	env := doku.EnvironmentID(b.st.simURL, benchClientID)
	exec := func(sql string) func() error {
		return func() error { _, err := b.st.pool.Exec(ctx, sql, claimFixtureEnv); return err }
	}
	dueChecks := exec(`UPDATE invoices SET next_check_at = now() - interval '1 second' WHERE doku_env = $1`)
	parkChecks := exec(`UPDATE invoices SET next_check_at = now() + interval '30 days' WHERE doku_env = $1`)
	dueDeliveries := exec(`UPDATE webhook_deliveries SET next_attempt_at = now() - interval '1 second'
		WHERE endpoint = '` + loadedEndpoint + `' AND invoice_number LIKE '` + claimFixturePrefix + `%' AND $1 <> ''`)
	parkDeliveries := exec(`UPDATE webhook_deliveries SET next_attempt_at = now() + interval '30 days'
		WHERE endpoint = '` + loadedEndpoint + `' AND invoice_number LIKE '` + claimFixturePrefix + `%' AND $1 <> ''`)

	var out []claimCost
	add := func(what string, before func() error, call func() (int, error)) error {
		calls := idleClaimCalls
		if before != nil {
			calls = dueClaimCalls
		}
		c, err := b.timeBackend(what, backend, calls, before, call)
		c.Invoices = loaded
		out = append(out, c)
		return err
	}
	if err := parkChecks(); err != nil {
		return nil, err
	}
	if err := add("reconciler's claim, nothing due", nil, func() (int, error) {
		invs, err := store.ClaimDueChecks(ctx, claimFixtures, claimLease, env)
		return len(invs), err
	}); err != nil {
		return out, err
	}
	if err := add("reconciler's claim, 10 due", dueChecks, func() (int, error) {
		invs, err := store.ClaimDueChecks(ctx, claimFixtures, claimLease, claimFixtureEnv)
		return len(invs), err
	}); err != nil {
		return out, err
	}
	if err := parkChecks(); err != nil {
		return out, err
	}

	if _, err := b.store().EnableEndpoint(ctx, loadedEndpoint); err != nil {
		return out, err
	}
	err = func() error {
		if err := parkDeliveries(); err != nil {
			return err
		}
		if err := add("delivery claim, nothing due", nil, func() (int, error) {
			jobs, err := store.ClaimDeliveries(ctx, loadedEndpoint, claimFixtures, claimLease)
			return len(jobs), err
		}); err != nil {
			return err
		}
		if err := add("delivery claim, 10 due", dueDeliveries, func() (int, error) {
			jobs, err := store.ClaimDeliveries(ctx, loadedEndpoint, claimFixtures, claimLease)
			return len(jobs), err
		}); err != nil {
			return err
		}
		return parkDeliveries()
	}()
	if _, rerr := b.store().RemoveEndpoint(ctx, loadedEndpoint); err == nil {
		err = rerr
	}
	if err != nil {
		return out, err
	}
	feed, err := b.feedPage(loaded)
	out = append(out, feed)
	b.m.busy()
	return out, err
}

// timeBackend calls call calls times, before each (untimed, on another session) running before, and
// measures the latency of each call and the CPU of the session's backend.
func (b *bench) timeBackend(what string, backend, calls int, before func() error, call func() (int, error)) (claimCost, error) {
	c := claimCost{What: what, PgWhat: "its backend"}
	lat := make([]time.Duration, 0, calls)
	got := 0
	var cpu int64
	for i := 0; i < calls; i++ {
		if before != nil {
			if err := before(); err != nil {
				return c, err
			}
		}
		c0 := readStat(backend).own()
		t0 := time.Now()
		n, err := call()
		lat = append(lat, time.Since(t0))
		cpu += readStat(backend).own() - c0
		if err != nil {
			return c, fmt.Errorf("%s: %w", what, err)
		}
		got += n
	}
	c.Calls, c.Got = len(lat), round(float64(got)/float64(len(lat)), 2)
	slices.Sort(lat)
	c.P50, c.P99 = percentile(lat, 0.5), percentile(lat, 0.99)
	if b.m.postmaster > 0 {
		c.PgCPU = round(float64(cpu)/b.m.method.ClockTicks*1e6/float64(len(lat)), 0)
	}
	return c, nil
}

// claimFixture makes, once, the ten invoices and ten pending deliveries the "due" claims take.
func (b *bench) claimFixture() error {
	_, err := b.st.pool.Exec(b.ctx, `
		WITH inv AS (
			INSERT INTO invoices (invoice_number, channel, amount, status, customer_name, expires_in_minutes,
				doku_request_id, doku_request_body, payment_code, expires_at, doku_env, next_check_at)
			SELECT $1 || g, 'alfa', 150000, 'pending', 'Bench Customer', 43200, $1 || 'req-' || g, '\x7b7d',
				'6666' || lpad(g::text, 12, '0'), now() + interval '30 days', $2, now() + interval '30 days'
			FROM generate_series(1, $3::int) g
			ON CONFLICT (invoice_number) DO NOTHING
			RETURNING id, invoice_number),
		ev AS (
			INSERT INTO events (id, type, invoice_id, invoice_number, data)
			SELECT 'evt_o2obench_claims_' || inv.id, 'invoice.pending', inv.id, inv.invoice_number,
				json_build_object('invoice', json_build_object('invoice_number', inv.invoice_number))
			FROM inv
			RETURNING seq, invoice_number)
		INSERT INTO webhook_deliveries (event_seq, endpoint, invoice_number, next_attempt_at)
		SELECT seq, $4, invoice_number, now() + interval '30 days' FROM ev`,
		claimFixturePrefix, claimFixtureEnv, claimFixtures, loadedEndpoint)
	if err != nil {
		return fmt.Errorf("the claims' fixture: %w", err)
	}
	return nil
}

// feedCursor is the cursor of the page the feed measurement reads, found once: 150 events before the
// end of the feed, through the API (the next_cursor after the first event of an invoice there).
func (b *bench) feedCursor(client *http.Client) (string, error) {
	if b.feedAfter != "" {
		return b.feedAfter, nil
	}
	var number string
	err := b.st.pool.QueryRow(b.ctx, `SELECT invoice_number FROM events WHERE invoice_number <> ''
		ORDER BY xid DESC, seq DESC OFFSET 150 LIMIT 1`).Scan(&number)
	if err != nil {
		err = b.st.pool.QueryRow(b.ctx, `SELECT invoice_number FROM events WHERE invoice_number <> '' ORDER BY xid, seq LIMIT 1`).Scan(&number)
	}
	if err != nil {
		return "", fmt.Errorf("no event to start the feed page from: %w", err)
	}
	var page struct {
		NextCursor *string `json:"next_cursor"`
	}
	if err := b.getJSON(client, "/v1/events?limit=1&invoice_number="+url.QueryEscape(number), &page); err != nil {
		return "", err
	}
	if page.NextCursor == nil {
		return "", fmt.Errorf("the feed gave no cursor after invoice %s's first event", number)
	}
	b.feedAfter = *page.NextCursor
	return b.feedAfter, nil
}

// feedPage times GET /v1/events?after=…&limit=100 through the service.
func (b *bench) feedPage(loaded int) (claimCost, error) {
	c := claimCost{What: "feed page (GET /v1/events, 100)", Invoices: loaded, PgWhat: "the whole server"}
	client := newClient(1)
	after, err := b.feedCursor(client)
	if err != nil {
		return c, err
	}
	path := fmt.Sprintf("/v1/events?limit=%d&after=%s", feedLimit, url.QueryEscape(after))
	lat := make([]time.Duration, 0, feedCalls)
	items := 0
	svc0, pg0 := readStat(b.m.svcPID).cpu(), int64(0)
	if b.m.postmaster > 0 {
		pg0 = serverCPU(b.m.postmaster)
	}
	for i := 0; i < feedCalls; i++ {
		var page struct {
			Items []json.RawMessage `json:"items"`
		}
		t0 := time.Now()
		if err := b.getJSON(client, path, &page); err != nil {
			return c, err
		}
		lat = append(lat, time.Since(t0))
		items += len(page.Items)
	}
	n := float64(len(lat))
	us := func(ticks int64) float64 { return round(float64(ticks)/b.m.method.ClockTicks*1e6/n, 0) }
	c.AppCPU = us(readStat(b.m.svcPID).cpu() - svc0)
	if b.m.postmaster > 0 {
		c.PgCPU = us(serverCPU(b.m.postmaster) - pg0)
	}
	c.Calls, c.Got = len(lat), round(float64(items)/n, 1)
	slices.Sort(lat)
	c.P50, c.P99 = percentile(lat, 0.5), percentile(lat, 0.99)
	return c, nil
}

// getJSON GETs path from the service with the bench's key and decodes the answer into v.
func (b *bench) getJSON(client *http.Client, path string, v any) error {
	req, _ := http.NewRequestWithContext(b.ctx, http.MethodGet, b.st.svcURL+path, nil)
	req.Header.Set("Authorization", "Bearer "+benchAPIKey)
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: HTTP %d: %.300s", path, resp.StatusCode, raw)
	}
	return json.Unmarshal(raw, v)
}

// claimKinds are the claims measured, in the order they were.
func claimKinds(cs []claimCost) []string {
	var out []string
	for _, c := range cs {
		if !slices.Contains(out, c.What) {
			out = append(out, c.What)
		}
	}
	return out
}

func findClaim(cs []claimCost, what string, invoices int) *claimCost {
	for i := range cs {
		if cs[i].What == what && cs[i].Invoices == invoices {
			return &cs[i]
		}
	}
	return nil
}

// printClaims prints the claims and the feed page side by side at each volume.
func printClaims(w io.Writer, v *volumeReport) {
	if len(v.Claims) == 0 {
		return
	}
	var volumes []int
	for _, c := range v.Claims {
		if !slices.Contains(volumes, c.Invoices) {
			volumes = append(volumes, c.Invoices)
		}
	}
	fmt.Fprintf(w, "\nClaims and the feed page by invoices loaded: p50 ms / PostgreSQL CPU µs per call (%d calls of a claim with nothing due,\n%d with 10 due, %d of the feed page; ", idleClaimCalls, dueClaimCalls, feedCalls)
	fmt.Fprintln(w, "a claim's CPU is its own backend's, the feed page's the whole server's, with the service's beside it):")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "call\trows/call\t")
	for _, n := range volumes {
		fmt.Fprintf(tw, "at %d\t", n)
	}
	fmt.Fprintln(tw, "pg µs last ÷ first\t")
	for _, what := range claimKinds(v.Claims) {
		first, last := findClaim(v.Claims, what, volumes[0]), findClaim(v.Claims, what, volumes[len(volumes)-1])
		fmt.Fprintf(tw, "%s\t%.1f\t", what, first.Got)
		for _, n := range volumes {
			c := findClaim(v.Claims, what, n)
			switch {
			case c == nil:
				fmt.Fprint(tw, "-\t")
			case c.AppCPU > 0:
				fmt.Fprintf(tw, "%.2f / %.0f (svc %.0f)\t", c.P50, c.PgCPU, c.AppCPU)
			default:
				fmt.Fprintf(tw, "%.2f / %.0f\t", c.P50, c.PgCPU)
			}
		}
		fmt.Fprintf(tw, "%s\t\n", opt(ratio(last.PgCPU, first.PgCPU), "%.2f"))
	}
	tw.Flush()
}
