package worker

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/merchant/o2o/internal/invoice"
	"github.com/merchant/o2o/internal/metrics"
	"github.com/merchant/o2o/internal/view"
)

// Delivering is what the delivery worker needs of the service (service.Service).
type Delivering interface {
	RegisterEndpoints(ctx context.Context, eps []invoice.Endpoint) error
	EndpointDisagreements(ctx context.Context, configured []invoice.Endpoint) ([]invoice.EndpointDisagreement, error)
	ClaimDeliveries(ctx context.Context, endpoint string, limit int) ([]invoice.Job, error)
	FinishDelivery(ctx context.Context, job invoice.Job, a invoice.Attempt, result invoice.AttemptResult) (invoice.DeliveryState, error)
}

// Deliverer sends every event to every registered endpoint it is configured for, as a signed webhook
// (Standard Webhooks: webhook-id, webhook-timestamp, webhook-signature). It runs in every replica; the
// claims keep them from sending one delivery twice, and no transaction is open while a POST is. Each
// endpoint has its own loop, its own bound on POSTs in flight and the POST's timeout, so a slow or dead
// receiver never delays another. It registers the endpoints it is configured with and watches how its
// configuration and the registry differ (a metric and a log line), never deactivating any endpoint.
type Deliverer struct {
	Service Delivering
	// Endpoints are this replica's configured endpoints, with their URLs and secrets.
	Endpoints []invoice.Endpoint
	Log       zerolog.Logger
	Metrics   *metrics.Metrics
	// Client sends the POSTs; nil for one with Timeout that follows no redirect.
	Client *http.Client
	// Wake, when set, says that events may be due (the hub's SubscribeAll); without it, or when it is
	// quiet, each endpoint looks every Interval.
	Wake        <-chan struct{}
	Interval    time.Duration
	Timeout     time.Duration
	Concurrency int // POSTs in flight per endpoint
	// CheckEvery is how often the configuration is compared with the registry (30 s when zero).
	CheckEvery time.Duration

	clientOnce sync.Once
	// reported is the last disagreement logged, so a lasting one is logged when it starts and ends.
	reported string
}

// Run delivers until ctx is cancelled.
func (d *Deliverer) Run(ctx context.Context) error {
	for d.register(ctx) != nil {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(d.Interval):
		}
	}
	wakes := d.fanOut(ctx)
	var wg sync.WaitGroup
	for i, ep := range d.Endpoints {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.loop(ctx, ep, wakes[i])
		}()
	}
	wg.Add(1)
	go func() { defer wg.Done(); d.watchRegistry(ctx) }()
	wg.Wait()
	return nil
}

// register records this replica's endpoints in the registry, so that every event from now on is
// queued for them, whichever replica makes it.
func (d *Deliverer) register(ctx context.Context) error {
	err := d.Service.RegisterEndpoints(ctx, d.Endpoints)
	if err != nil && ctx.Err() == nil {
		d.Log.Warn().Err(err).Msg("cannot register the configured webhook endpoints; will retry")
	}
	for _, ep := range d.Endpoints {
		d.Metrics.EndpointSeries(ep.Name)
	}
	return err
}

// watchRegistry compares this replica's configuration with the registry now and every CheckEvery:
// replicas that disagree (a rollout half done, a pod with an old or broken configuration) keep
// delivering what they can, and the disagreement is a metric and a log line for a person.
func (d *Deliverer) watchRegistry(ctx context.Context) {
	every := d.CheckEvery
	if every <= 0 {
		every = 30 * time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if err := d.CheckRegistry(ctx); err != nil && ctx.Err() == nil {
			d.Log.Warn().Err(err).Msg("cannot compare the webhook endpoints with the registry; will retry")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// CheckRegistry compares this replica's endpoints with the registry once, sets the metric and logs a
// change.
func (d *Deliverer) CheckRegistry(ctx context.Context) error {
	ds, err := d.Service.EndpointDisagreements(ctx, d.Endpoints)
	if err != nil {
		return err
	}
	d.Metrics.EndpointDisagreements(ds)
	var text []string
	for _, x := range ds {
		text = append(text, x.Endpoint+": "+string(x.Kind))
	}
	now := strings.Join(text, ", ")
	switch {
	case now == d.reported:
	case now == "":
		d.Log.Info().Msg("this replica's webhook endpoints agree with the registry again")
	default:
		d.Log.Warn().Strs("disagreements", text).Msg("this replica's webhook endpoint configuration disagrees with the registry: " +
			"events are still queued for every registered endpoint, and delivered by the replicas configured for it (GET /v1/webhook-endpoints)")
	}
	d.reported = now
	return nil
}

// fanOut passes each wake-up on to every endpoint's loop.
func (d *Deliverer) fanOut(ctx context.Context) []chan struct{} {
	out := make([]chan struct{}, len(d.Endpoints))
	for i := range out {
		out[i] = make(chan struct{}, 1)
	}
	if d.Wake != nil {
		go func() {
			for {
				select {
				case <-ctx.Done():
					return
				case <-d.Wake:
					for _, ch := range out {
						select {
						case ch <- struct{}{}:
						default:
						}
					}
				}
			}
		}()
	}
	return out
}

// loop delivers to one endpoint: rounds back to back while there is work, else waits for a wake-up
// or the interval.
func (d *Deliverer) loop(ctx context.Context, ep invoice.Endpoint, wake <-chan struct{}) {
	t := time.NewTicker(d.Interval)
	defer t.Stop()
	for ctx.Err() == nil {
		n, err := d.RunOnce(ctx, ep)
		if err != nil && ctx.Err() == nil {
			d.Log.Warn().Err(err).Str("endpoint", ep.Name).Msg("delivery round failed; will retry")
		}
		if n > 0 && err == nil {
			continue
		}
		select {
		case <-ctx.Done():
		case <-t.C:
		case <-wake:
		}
	}
}

// RunOnce claims the due deliveries to ep, up to Concurrency, and sends them at once. It returns how
// many it sent.
func (d *Deliverer) RunOnce(ctx context.Context, ep invoice.Endpoint) (int, error) {
	jobs, err := d.Service.ClaimDeliveries(ctx, ep.Name, max(d.Concurrency, 1))
	if err != nil {
		return 0, err
	}
	var wg sync.WaitGroup
	for _, job := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.deliver(ctx, ep, job)
		}()
	}
	wg.Wait()
	return len(jobs), nil
}

// deliver makes one attempt and records it. Recording runs detached from ctx: an attempt made is
// recorded even during shutdown, or the event would be sent again.
func (d *Deliverer) deliver(ctx context.Context, ep invoice.Endpoint, job invoice.Job) {
	a, result := d.post(ctx, ep, job)
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	state, err := d.Service.FinishDelivery(rctx, job, a, result)
	log := d.Log.With().Str("endpoint", ep.Name).Str("event_id", job.Event.ID).Str("type", string(job.Event.Type)).
		Int("attempt", job.Attempts+1).Int("status", a.Status).Dur("latency", a.Latency).Logger()
	if err != nil {
		// The lease runs out and the delivery is tried again: at least once, perhaps twice.
		log.Error().Err(err).Msg("cannot record a webhook attempt; the event will be sent again")
		return
	}
	outcome := outcomeOf(result, state)
	d.Metrics.Delivery(ep.Name, outcome, a.Latency)
	switch outcome {
	case "delivered":
		log.Debug().Msg("webhook delivered")
	case "gone":
		log.Error().Msg("webhook endpoint answered 410 Gone: disabled until enabled again (POST /v1/webhook-endpoints/{name}/enable)")
	case "dead":
		if result == invoice.AttemptUndeliverable {
			log.Error().Str("error", a.Error).Msg("webhook not sent: its event was purged before it could be; dead")
			break
		}
		log.Error().Str("error", a.Error).Msg("webhook not acknowledged within the retry period: dead (POST /v1/events/{id}/redeliver to try again)")
	default:
		log.Warn().Str("error", a.Error).Msg("webhook not acknowledged; will retry")
	}
}

func outcomeOf(result invoice.AttemptResult, state invoice.DeliveryState) string {
	switch {
	case result == invoice.AttemptGone:
		return "gone"
	case state == invoice.DeliveryDelivered:
		return "delivered"
	case state == invoice.DeliveryDead:
		return "dead"
	}
	return "failed"
}

// post sends job's event to ep, signed, and says what came of it.
func (d *Deliverer) post(ctx context.Context, ep invoice.Endpoint, job invoice.Job) (invoice.Attempt, invoice.AttemptResult) {
	start := time.Now()
	a := invoice.Attempt{At: start.UTC()}
	if len(job.Event.Data) == 0 {
		a.Error = "the event was purged (EVENTS_RETENTION) before it could be sent; nothing was sent"
		return a, invoice.AttemptUndeliverable
	}
	body, err := Body(job.Event)
	if err != nil {
		a.Error = err.Error()
		return a, invoice.AttemptFailed
	}
	// Detached from the worker's cancellation, bounded by EVENTS_TIMEOUT: a POST under way when the
	// process is asked to stop finishes and is recorded as what it was — cut short, the receiver may
	// have the event while we record a failure (a duplicate later, or a dead delivery on the retry
	// period's last attempt). App.Run waits for the workers until SHUTDOWN_TIMEOUT.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep.URL, bytes.NewReader(body))
	if err != nil {
		a.Error = err.Error()
		return a, invoice.AttemptFailed
	}
	for k, v := range SignedHeaders(ep.Secrets, job.Event.ID, start, body) {
		req.Header[k] = v
	}
	resp, err := d.client().Do(req)
	a.Latency = time.Since(start)
	if err != nil {
		a.Error = truncate(err.Error(), 500)
		if errors.Is(err, context.DeadlineExceeded) {
			a.Error = fmt.Sprintf("no answer within %s", d.Timeout)
		}
		return a, invoice.AttemptFailed
	}
	// A little of the body keeps the connection reusable; the rest is not our business.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	resp.Body.Close()
	a.Status = resp.StatusCode
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return a, invoice.AttemptAcknowledged
	case resp.StatusCode == http.StatusGone:
		a.Error = "410 Gone"
		return a, invoice.AttemptGone
	}
	a.Error = "HTTP " + strconv.Itoa(resp.StatusCode)
	return a, invoice.AttemptFailed
}

func (d *Deliverer) client() *http.Client {
	d.clientOnce.Do(func() {
		if d.Client == nil {
			d.Client = &http.Client{Timeout: d.Timeout,
				// A redirect is a misconfigured endpoint, not an acknowledgement: never follow one with a
				// signed body.
				CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		}
	})
	return d.Client
}

// Body is a webhook's body: the event as the API shows it.
func Body(e invoice.Published) ([]byte, error) {
	var number *string
	if e.InvoiceNumber != "" {
		number = &e.InvoiceNumber
	}
	return json.Marshal(view.Event{ID: e.ID, Type: e.Type, CreatedAt: view.Time(e.CreatedAt), InvoiceNumber: number, Data: e.Data})
}

// SignedHeaders are the Standard Webhooks headers of one attempt: the event id (stable across
// attempts, for the receiver's dedupe), the attempt's time in Unix seconds (receivers refuse old ones
// against replay), and for each key "v1," + base64 HMAC-SHA256 of "id.timestamp.body", space-separated:
// a receiver accepts the delivery if any one verifies, so while a secret is rotated both work.
func SignedHeaders(keys [][]byte, id string, at time.Time, body []byte) http.Header {
	ts := strconv.FormatInt(at.Unix(), 10)
	sigs := make([]string, len(keys))
	for i, key := range keys {
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte(id + "." + ts + "."))
		mac.Write(body)
		sigs[i] = "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	}
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", "o2o-webhooks/1")
	h.Set("Webhook-Id", id)
	h.Set("Webhook-Timestamp", ts)
	h.Set("Webhook-Signature", strings.Join(sigs, " "))
	return h
}

// truncate keeps the first n bytes of s, as valid UTF-8 (the database refuses anything else).
func truncate(s string, n int) string {
	if len(s) > n {
		s = s[:n]
	}
	return strings.ToValidUTF8(s, "")
}
