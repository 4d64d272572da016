package metrics

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/merchant/o2o/internal/invoice"
)

// eventMetrics are the outgoing side: webhook deliveries, the backlog, and the status streams.
type eventMetrics struct {
	purged          *prometheus.CounterVec
	deliveries      *prometheus.CounterVec
	deliverySeconds *prometheus.HistogramVec
	disagreements   *prometheus.GaugeVec
	streams         atomic.Int64
}

// DeliveryOutcomes are the outcomes each delivery attempt is counted by.
var DeliveryOutcomes = []string{"delivered", "failed", "gone", "dead"}

func (m *Metrics) registerEvents() {
	m.events.deliveries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "o2o_webhook_deliveries_total",
		Help: "Attempts to deliver an event to a webhook endpoint, by endpoint and outcome (delivered: 2xx; failed: retried later; gone: 410, the endpoint is disabled; dead: failed for the whole retry period).",
	}, []string{"endpoint", "outcome"})
	m.events.deliverySeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "o2o_webhook_delivery_duration_seconds", Help: "Latency of webhook POSTs, by endpoint.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, []string{"endpoint"})
	m.events.disagreements = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "o2o_webhook_endpoint_config_disagreement",
		Help: "1 while this replica's configuration and the endpoint registry disagree about an endpoint (the series goes away once settled), by kind (not_configured_here: registered, but this replica cannot deliver to it; removed: configured here, removed through the API; url_differs; not_registered).",
	}, []string{"endpoint", "kind"})
	m.events.purged = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "o2o_purged_rows_total",
		Help: "Rows the purge removed (or, for notifications, whose raw body it thinned to its digest), by table.",
	}, []string{"table"})
	for _, t := range []string{"webhook_deliveries", "webhook_attempts", "events", "notifications"} {
		m.events.purged.WithLabelValues(t)
	}
	m.Registry.MustRegister(m.events.purged, m.events.deliveries, m.events.deliverySeconds, m.events.disagreements,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "o2o_streams_open", Help: "Status streams open on this replica."},
			func() float64 { return float64(m.events.streams.Load()) }))
}

// EndpointSeries makes an endpoint's series exist at zero, so that a rate over them is 0 rather than
// "no data" before the first failure.
func (m *Metrics) EndpointSeries(endpoint string) {
	if m == nil {
		return
	}
	for _, o := range DeliveryOutcomes {
		m.events.deliveries.WithLabelValues(endpoint, o)
	}
}

// Delivery counts one delivery attempt.
func (m *Metrics) Delivery(endpoint, outcome string, d time.Duration) {
	if m == nil {
		return
	}
	m.events.deliveries.WithLabelValues(endpoint, outcome).Inc()
	m.events.deliverySeconds.WithLabelValues(endpoint).Observe(d.Seconds())
}

// StreamOpened and StreamClosed track the open status streams.
func (m *Metrics) StreamOpened() {
	if m != nil {
		m.events.streams.Add(1)
	}
}

func (m *Metrics) StreamClosed() {
	if m != nil {
		m.events.streams.Add(-1)
	}
}

var (
	eventsPendingDesc = prometheus.NewDesc("o2o_events_pending",
		"Webhook deliveries not yet acknowledged, by registered endpoint, disabled ones included (the same on every replica).", []string{"endpoint"}, nil)
	eventsOldestDesc = prometheus.NewDesc("o2o_events_oldest_undelivered_seconds",
		"Age of the oldest webhook delivery not yet acknowledged, by registered endpoint (0 when none).", []string{"endpoint"}, nil)
	endpointDisabledDesc = prometheus.NewDesc("o2o_webhook_endpoint_disabled",
		"1 when a registered endpoint is disabled (it answered 410 Gone): its events wait until it is enabled again.", []string{"endpoint"}, nil)
	feedLagDesc = prometheus.NewDesc("o2o_events_feed_lag_seconds",
		"Age of the oldest event committed but not yet shown by the feed (GET /v1/events), held back by an older transaction of this database still running; 0 when the feed shows everything.", nil, nil)
)

// WatchDeliveries reports the delivery backlog of every registered endpoint and the feed's lag, read
// from the database at each scrape; a scrape that cannot read them reports nothing rather than a
// stale figure.
func (m *Metrics) WatchDeliveries(backlog func(ctx context.Context) ([]invoice.Endpoint, error), lag func(ctx context.Context) (time.Duration, error)) {
	if m == nil {
		return
	}
	m.Registry.MustRegister(&backlogCollector{backlog: backlog, lag: lag})
}

type backlogCollector struct {
	backlog func(ctx context.Context) ([]invoice.Endpoint, error)
	lag     func(ctx context.Context) (time.Duration, error)
}

func (c *backlogCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{eventsPendingDesc, eventsOldestDesc, endpointDisabledDesc, feedLagDesc} {
		ch <- d
	}
}

func (c *backlogCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if eps, err := c.backlog(ctx); err == nil {
		for _, e := range eps {
			disabled := 0.0
			if e.DisabledAt != nil {
				disabled = 1
			}
			ch <- prometheus.MustNewConstMetric(eventsPendingDesc, prometheus.GaugeValue, float64(e.Pending), e.Name)
			ch <- prometheus.MustNewConstMetric(eventsOldestDesc, prometheus.GaugeValue, e.Oldest.Seconds(), e.Name)
			ch <- prometheus.MustNewConstMetric(endpointDisabledDesc, prometheus.GaugeValue, disabled, e.Name)
		}
	}
	if lag, err := c.lag(ctx); err == nil {
		ch <- prometheus.MustNewConstMetric(feedLagDesc, prometheus.GaugeValue, lag.Seconds())
	}
}

// EndpointDisagreements sets, for this replica, the ways its configuration and the endpoint registry
// disagree: one series per endpoint and kind, 1 while it lasts; a settled one goes away.
func (m *Metrics) EndpointDisagreements(ds []invoice.EndpointDisagreement) {
	if m == nil {
		return
	}
	m.events.disagreements.Reset()
	for _, d := range ds {
		m.events.disagreements.WithLabelValues(d.Endpoint, string(d.Kind)).Set(1)
	}
}

// Purged counts rows the purge removed or thinned in table.
func (m *Metrics) Purged(table string, n int) {
	if m == nil || n == 0 {
		return
	}
	m.events.purged.WithLabelValues(table).Add(float64(n))
}

var (
	tableBytesDesc = prometheus.NewDesc("o2o_table_size_bytes", "Size on disk of each table that grows with traffic, indexes and TOAST included.", []string{"table"}, nil)
	tableRowsDesc  = prometheus.NewDesc("o2o_table_rows_estimate", "Rows of each table that grows with traffic, as the planner estimates them (after ANALYZE).", []string{"table"}, nil)
)

// WatchTables reports the size of the tables that grow with traffic, read at each scrape.
func (m *Metrics) WatchTables(sizes func(ctx context.Context) ([]invoice.TableSize, error)) {
	if m == nil {
		return
	}
	m.Registry.MustRegister(tableCollector(sizes))
}

type tableCollector func(ctx context.Context) ([]invoice.TableSize, error)

func (c tableCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- tableBytesDesc
	ch <- tableRowsDesc
}

func (c tableCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	sizes, err := c(ctx)
	if err != nil {
		return
	}
	for _, t := range sizes {
		ch <- prometheus.MustNewConstMetric(tableBytesDesc, prometheus.GaugeValue, float64(t.Bytes), t.Table)
		ch <- prometheus.MustNewConstMetric(tableRowsDesc, prometheus.GaugeValue, float64(t.Rows), t.Table)
	}
}
