// Package metrics is the service's Prometheus instrumentation. One *Metrics per process (per test
// stack in tests), passed to the pieces that count; every method is safe on a nil *Metrics, so a piece
// built without metrics simply does not count. Labels are bounded: routes are patterns, never paths,
// and no label carries an invoice number.
package metrics

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics holds the collectors.
type Metrics struct {
	Registry *prometheus.Registry

	httpRequests  *prometheus.CounterVec
	httpDuration  *prometheus.HistogramVec
	dokuRequests  *prometheus.CounterVec
	dokuDuration  *prometheus.HistogramVec
	transitions   *prometheus.CounterVec
	notifications *prometheus.CounterVec
	workerRounds  *prometheus.CounterVec
	workerItems   *prometheus.CounterVec
	workerErrors  *prometheus.CounterVec
	events        eventMetrics
}

// New registers the service's collectors, the Go runtime's and the process's, and — when pool is not
// nil — the database pool's statistics.
func New(pool *pgxpool.Pool) *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		Registry: reg,
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "o2o_http_requests_total", Help: "HTTP requests served, by route pattern, method and status.",
		}, []string{"route", "method", "status"}),
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "o2o_http_request_duration_seconds", Help: "HTTP request latency, by route pattern and method.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"route", "method"}),
		dokuRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "o2o_doku_requests_total", Help: "Calls to DOKU, by endpoint (generate_alfa, generate_indomaret, check_status) and outcome (ok, replayed, rejected, unavailable).",
		}, []string{"endpoint", "outcome"}),
		dokuDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "o2o_doku_request_duration_seconds", Help: "Latency of calls to DOKU, by endpoint.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 20},
		}, []string{"endpoint"}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "o2o_invoice_transitions_total", Help: "Invoice status changes, by channel, from and to status (from is \"none\" for a new invoice).",
		}, []string{"channel", "from", "to"}),
		notifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "o2o_webhook_notifications_total", Help: "DOKU notifications received, by outcome (applied, duplicate, redelivered, the mismatches, unknown_invoice, not_issued, malformed, and refused ones: bad_signature, forbidden, stale, too_large).",
		}, []string{"outcome"}),
		workerRounds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "o2o_worker_rounds_total", Help: "Rounds run by the background workers (resumer, reconciler).",
		}, []string{"worker"}),
		workerItems: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "o2o_worker_items_total", Help: "Invoices handled by the workers, by worker and result (resumer: finished, failed, gave_up; reconciler: paid, expired, unchanged, mismatch, doku_rejected, doku_unavailable, doku_other_status, store_failed).",
		}, []string{"worker", "result"}),
		workerErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "o2o_worker_errors_total", Help: "Worker rounds that failed before handling any invoice (usually the database).",
		}, []string{"worker"}),
	}
	reg.MustRegister(m.httpRequests, m.httpDuration, m.dokuRequests, m.dokuDuration, m.transitions,
		m.notifications, m.workerRounds, m.workerItems, m.workerErrors,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Every series an alert divides by exists from the start at zero: a ratio over a series that
	// appears only at its first increment is "no data", not 0, and the alert never fires.
	for worker, results := range WorkerResults {
		m.workerRounds.WithLabelValues(worker)
		m.workerErrors.WithLabelValues(worker)
		for _, r := range results {
			m.workerItems.WithLabelValues(worker, r)
		}
	}
	m.registerEvents()
	if pool != nil {
		reg.MustRegister(&poolCollector{pool: pool})
	}
	return m
}

// WorkerResults are the results each worker counts its invoices by.
var WorkerResults = map[string][]string{
	"resumer":    {"finished", "failed", "gave_up"},
	"reconciler": {"paid", "expired", "unchanged", "mismatch", "doku_rejected", "doku_unavailable", "doku_other_status", "store_failed"},
	"purge":      {},
}

// WatchAttention reports the open attention items by reason, read from the database at each scrape
// with count (so the figure is the same whichever replica is scraped); a scrape that cannot read it
// reports nothing rather than a stale or zero figure.
func (m *Metrics) WatchAttention(count func(ctx context.Context) (map[string]int, error)) {
	if m == nil {
		return
	}
	m.Registry.MustRegister(&attentionCollector{count: count})
}

var attentionOpenDesc = prometheus.NewDesc("o2o_attention_open", "Open attention items (cases waiting for a person), by reason.", []string{"reason"}, nil)

type attentionCollector struct {
	count func(ctx context.Context) (map[string]int, error)
}

func (c *attentionCollector) Describe(ch chan<- *prometheus.Desc) { ch <- attentionOpenDesc }

func (c *attentionCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	open, err := c.count(ctx)
	if err != nil {
		return
	}
	for reason, n := range open {
		ch <- prometheus.MustNewConstMetric(attentionOpenDesc, prometheus.GaugeValue, float64(n), reason)
	}
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{})
}

// HTTPRequest counts one served request.
func (m *Metrics) HTTPRequest(route, method string, status int, d time.Duration) {
	if m == nil {
		return
	}
	method = knownMethod(method)
	m.httpRequests.WithLabelValues(route, method, statusText(status)).Inc()
	m.httpDuration.WithLabelValues(route, method).Observe(d.Seconds())
}

// DokuCall counts one call to DOKU.
func (m *Metrics) DokuCall(endpoint, outcome string, d time.Duration) {
	if m == nil {
		return
	}
	m.dokuRequests.WithLabelValues(endpoint, outcome).Inc()
	m.dokuDuration.WithLabelValues(endpoint).Observe(d.Seconds())
}

// Transition counts one invoice status change.
func (m *Metrics) Transition(channel, from, to string) {
	if m == nil {
		return
	}
	if from == "" {
		from = "none"
	}
	m.transitions.WithLabelValues(channel, from, to).Inc()
}

// Notification counts one notification by outcome.
func (m *Metrics) Notification(outcome string) {
	if m == nil {
		return
	}
	m.notifications.WithLabelValues(outcome).Inc()
}

// WorkerRound counts one worker round; err is whether it failed outright.
func (m *Metrics) WorkerRound(worker string, failed bool) {
	if m == nil {
		return
	}
	m.workerRounds.WithLabelValues(worker).Inc()
	if failed {
		m.workerErrors.WithLabelValues(worker).Inc()
	}
}

// WorkerItem counts one invoice handled by a worker.
func (m *Metrics) WorkerItem(worker, result string) {
	if m == nil {
		return
	}
	m.workerItems.WithLabelValues(worker, result).Inc()
}

// knownMethod keeps the method label bounded: anyone can send any method name.
func knownMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions:
		return m
	}
	return "other"
}

func statusText(code int) string {
	if code < 100 || code > 599 {
		return "other" // keeps the label bounded whatever a handler writes
	}
	return strconv.Itoa(code)
}

// poolCollector reports the pgx pool's statistics at scrape time.
type poolCollector struct{ pool *pgxpool.Pool }

var (
	poolMaxDesc      = prometheus.NewDesc("o2o_db_pool_max_connections", "Maximum connections of the database pool.", nil, nil)
	poolTotalDesc    = prometheus.NewDesc("o2o_db_pool_connections", "Open connections of the database pool, by state.", []string{"state"}, nil)
	poolAcquireDesc  = prometheus.NewDesc("o2o_db_pool_acquires_total", "Connections acquired from the pool.", nil, nil)
	poolEmptyDesc    = prometheus.NewDesc("o2o_db_pool_empty_acquires_total", "Acquires that had to wait because no connection was idle.", nil, nil)
	poolWaitDesc     = prometheus.NewDesc("o2o_db_pool_acquire_wait_seconds_total", "Time spent waiting for a connection.", nil, nil)
	poolCanceledDesc = prometheus.NewDesc("o2o_db_pool_canceled_acquires_total", "Acquires cancelled before a connection was free.", nil, nil)
)

func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{poolMaxDesc, poolTotalDesc, poolAcquireDesc, poolEmptyDesc, poolWaitDesc, poolCanceledDesc} {
		ch <- d
	}
}

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.pool.Stat()
	ch <- prometheus.MustNewConstMetric(poolMaxDesc, prometheus.GaugeValue, float64(s.MaxConns()))
	ch <- prometheus.MustNewConstMetric(poolTotalDesc, prometheus.GaugeValue, float64(s.AcquiredConns()), "acquired")
	ch <- prometheus.MustNewConstMetric(poolTotalDesc, prometheus.GaugeValue, float64(s.IdleConns()), "idle")
	ch <- prometheus.MustNewConstMetric(poolTotalDesc, prometheus.GaugeValue, float64(s.ConstructingConns()), "constructing")
	ch <- prometheus.MustNewConstMetric(poolAcquireDesc, prometheus.CounterValue, float64(s.AcquireCount()))
	ch <- prometheus.MustNewConstMetric(poolEmptyDesc, prometheus.CounterValue, float64(s.EmptyAcquireCount()))
	ch <- prometheus.MustNewConstMetric(poolWaitDesc, prometheus.CounterValue, s.AcquireDuration().Seconds())
	ch <- prometheus.MustNewConstMetric(poolCanceledDesc, prometheus.CounterValue, float64(s.CanceledAcquireCount()))
}
