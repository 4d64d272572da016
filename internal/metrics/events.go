package metrics

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// eventMetrics are the outgoing side: webhook deliveries, the backlog, and the status streams.
type eventMetrics struct {
	deliveries      *prometheus.CounterVec
	deliverySeconds *prometheus.HistogramVec
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
	m.Registry.MustRegister(m.events.deliveries, m.events.deliverySeconds,
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
		"Webhook deliveries not yet acknowledged, to enabled endpoints (the same on every replica).", nil, nil)
	eventsOldestDesc = prometheus.NewDesc("o2o_events_oldest_undelivered_seconds",
		"Age of the oldest webhook delivery not yet acknowledged, to an enabled endpoint (0 when none).", nil, nil)
)

// WatchDeliveries reports the delivery backlog, read from the database at each scrape with backlog; a
// scrape that cannot read it reports nothing rather than a stale figure.
func (m *Metrics) WatchDeliveries(backlog func(ctx context.Context) (int, time.Duration, error)) {
	if m == nil {
		return
	}
	m.Registry.MustRegister(backlogCollector(backlog))
}

type backlogCollector func(ctx context.Context) (int, time.Duration, error)

func (c backlogCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- eventsPendingDesc
	ch <- eventsOldestDesc
}

func (c backlogCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	n, oldest, err := c(ctx)
	if err != nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(eventsPendingDesc, prometheus.GaugeValue, float64(n))
	ch <- prometheus.MustNewConstMetric(eventsOldestDesc, prometheus.GaugeValue, oldest.Seconds())
}
