package config

import (
	"encoding/base64"
	"net/url"
	"strings"
	"time"

	"github.com/merchant/o2o/internal/invoice"
)

// Events is the part of the configuration about telling the merchant's systems of changes: signed
// webhooks (Standard Webhooks) to each endpoint, and the status stream for checkout pages.
type Events struct {
	// EventsEndpoints are the webhook receivers this replica registers and delivers to, each
	// "name=url"; EventsSecrets their signing secrets, each "name=whsec_…" (base64 of 24 to 64 random
	// bytes, as Standard Webhooks defines them). An endpoint may have several secrets ("name=whsec_a
	// whsec_b", or the name given twice): every delivery is signed with each, so a secret can be
	// rotated without a moment in which the receiver refuses deliveries.
	EventsEndpoints []string `envconfig:"EVENTS_ENDPOINTS" desc:"webhook receivers, name=https://url, comma-separated"`
	EventsSecrets   []Secret `envconfig:"EVENTS_SECRETS" desc:"each receiver's signing secrets, name=whsec_... (several space-separated while rotating), comma-separated"`
	// EventsAllowPlainHTTP allows http:// receivers off this machine (a private network).
	EventsAllowPlainHTTP bool          `envconfig:"EVENTS_ALLOW_PLAIN_HTTP" default:"false" desc:"allow http:// receivers that are not on loopback"`
	EventsTimeout        time.Duration `envconfig:"EVENTS_TIMEOUT" default:"10s" desc:"bound on each webhook POST"`
	EventsConcurrency    int           `envconfig:"EVENTS_CONCURRENCY" default:"4" desc:"webhook POSTs in flight per receiver, per replica"`
	EventsInterval       time.Duration `envconfig:"EVENTS_INTERVAL" default:"1s" desc:"how often an idle delivery worker looks for due deliveries"`
	EventsBaseBackoff    time.Duration `envconfig:"EVENTS_BASE_BACKOFF" default:"5s" desc:"wait after a failed delivery; doubles, with jitter"`
	EventsMaxBackoff     time.Duration `envconfig:"EVENTS_MAX_BACKOFF" default:"1h" desc:"longest wait between two attempts"`
	EventsRetryPeriod    time.Duration `envconfig:"EVENTS_RETRY_PERIOD" default:"72h" desc:"how long an unacknowledged event is retried before it is dead"`

	StreamMaxConnections int           `envconfig:"STREAM_MAX_CONNECTIONS" default:"1000" desc:"open status streams per replica at most"`
	StreamHeartbeat      time.Duration `envconfig:"STREAM_HEARTBEAT" default:"15s" desc:"comment sent on an idle status stream"`
	StreamMaxDuration    time.Duration `envconfig:"STREAM_MAX_DURATION" default:"30m" desc:"a status stream ends after this; the client reconnects with Last-Event-ID"`
	StreamTokenTTL       time.Duration `envconfig:"STREAM_TOKEN_TTL" default:"1h" desc:"longest life of a stream token"`
	// StreamMaxPerToken bounds the streams one token opens on a replica: a token lives in a browser,
	// and one page must not take every slot from the next customer.
	StreamMaxPerToken int `envconfig:"STREAM_MAX_PER_TOKEN" default:"3" desc:"open status streams per stream token, per replica"`
	// StreamAllowedOrigins are the web origins whose pages may open a status stream (CORS).
	StreamAllowedOrigins []string `envconfig:"STREAM_ALLOWED_ORIGINS" desc:"web origins allowed to open status streams from a browser (CORS), e.g. https://shop.example"`
	// CustomerAccessGrace is how long after its invoice became final (paid, expired, failed,
	// cancelled) a stream token still opens its stream, so a page open at that moment sees the end.
	CustomerAccessGrace time.Duration `envconfig:"CUSTOMER_ACCESS_GRACE" default:"24h" desc:"how long after an invoice became final its stream tokens still work"`

	// Retention: what the purge removes, and when (deploy/RUNBOOK.md, "Data lifecycle").
	EventsRetention     time.Duration `envconfig:"EVENTS_RETENTION" default:"720h" desc:"delivered webhooks (with their attempts) are purged after this, and events nothing waits for leave the feed (thinned to their history, or deleted)"`
	EventsDeadRetention time.Duration `envconfig:"EVENTS_DEAD_RETENTION" default:"2160h" desc:"dead deliveries (and their events) are kept this long for a redelivery"`
	// NotificationBodyRetention is the dispute window: a notification's raw body is kept this long,
	// then thinned to its digest (the payment it recorded, its outcome and headers stay).
	NotificationBodyRetention time.Duration `envconfig:"NOTIFICATION_BODY_RETENTION" default:"2160h" desc:"a notification's raw body is thinned to its digest after this (the parsed payment stays)"`
	PurgeInterval             time.Duration `envconfig:"PURGE_INTERVAL" default:"10m" desc:"how often the purge runs (on one replica at a time)"`
	PurgeBatch                int           `envconfig:"PURGE_BATCH" default:"1000" desc:"rows one purge statement removes at most"`
}

const secretPrefix = "whsec_"

func (e *Events) check(p *problems) {
	names := map[string]bool{}
	for i, entry := range e.EventsEndpoints {
		name, raw, _ := strings.Cut(strings.TrimSpace(entry), "=")
		if names[name] {
			p.add("EVENTS_ENDPOINTS", "the name %q is used twice", name)
		} else if msg := e.checkEndpoint(name, raw); msg != "" {
			p.add("EVENTS_ENDPOINTS", "entry %d: %s", i+1, msg)
		}
		names[name] = true
	}
	secrets := e.secrets(p)
	for name := range names {
		if _, ok := secrets[name]; !ok {
			p.add("EVENTS_SECRETS", "endpoint %s has no secret (name=whsec_...)", name)
		}
	}
	for name := range secrets {
		if !names[name] {
			p.add("EVENTS_SECRETS", "%s is not an endpoint of EVENTS_ENDPOINTS", name)
		}
	}
	positive(p, "EVENTS_TIMEOUT", e.EventsTimeout)
	atLeast(p, "EVENTS_CONCURRENCY", e.EventsConcurrency, 1)
	positive(p, "EVENTS_INTERVAL", e.EventsInterval)
	positive(p, "EVENTS_BASE_BACKOFF", e.EventsBaseBackoff)
	if e.EventsMaxBackoff < e.EventsBaseBackoff {
		p.add("EVENTS_MAX_BACKOFF", "must be at least EVENTS_BASE_BACKOFF")
	}
	if e.EventsRetryPeriod < e.EventsMaxBackoff {
		p.add("EVENTS_RETRY_PERIOD", "must be at least EVENTS_MAX_BACKOFF")
	}
	atLeast(p, "STREAM_MAX_CONNECTIONS", e.StreamMaxConnections, 1)
	positive(p, "STREAM_HEARTBEAT", e.StreamHeartbeat)
	positive(p, "STREAM_MAX_DURATION", e.StreamMaxDuration)
	positive(p, "STREAM_TOKEN_TTL", e.StreamTokenTTL)
	atLeast(p, "STREAM_MAX_PER_TOKEN", e.StreamMaxPerToken, 1)
	for i, o := range e.StreamAllowedOrigins {
		if !validOrigin(strings.TrimSpace(o)) {
			p.add("STREAM_ALLOWED_ORIGINS", "entry %d is not a web origin such as https://shop.example (scheme and host, no path)", i+1)
		}
	}
	if e.CustomerAccessGrace < 0 {
		p.add("CUSTOMER_ACCESS_GRACE", "must not be negative")
	}
	if e.EventsRetention < e.EventsRetryPeriod {
		p.add("EVENTS_RETENTION", "must be at least EVENTS_RETRY_PERIOD (an event is kept while it is being delivered)")
	}
	if e.EventsDeadRetention < e.EventsRetention {
		p.add("EVENTS_DEAD_RETENTION", "must be at least EVENTS_RETENTION")
	}
	if e.NotificationBodyRetention < 24*time.Hour {
		p.add("NOTIFICATION_BODY_RETENTION", "must be at least 24h (DOKU redelivers a notification for 12 hours)")
	}
	positive(p, "PURGE_INTERVAL", e.PurgeInterval)
	if e.PurgeBatch < 1 || e.PurgeBatch > 100_000 {
		p.add("PURGE_BATCH", "must be between 1 and 100000")
	}
}

// validOrigin reports whether o is a web origin: http(s)://host[:port], nothing more.
func validOrigin(o string) bool {
	u, err := url.Parse(o)
	return err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" && u.Path == "" && u.RawQuery == "" &&
		u.Fragment == "" && u.User == nil && u.String() == o
}

// AllowedOrigins is STREAM_ALLOWED_ORIGINS as given (validated).
func (e *Events) AllowedOrigins() []string {
	out := make([]string, 0, len(e.StreamAllowedOrigins))
	for _, o := range e.StreamAllowedOrigins {
		out = append(out, strings.TrimSpace(o))
	}
	return out
}

// checkEndpoint says what is wrong with one name=url entry, or "".
func (e *Events) checkEndpoint(name, raw string) string {
	u, err := url.Parse(raw)
	switch {
	case !validKeyName(name):
		return "must be name=url, the name 1-64 of A-Z a-z 0-9 . _ -"
	case err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "":
		return name + " must be an absolute http(s) URL"
	case u.Scheme == "http" && !loopback(u.Hostname()) && !e.EventsAllowPlainHTTP:
		return name + " must be https:// (plain http is allowed to a loopback address, or with EVENTS_ALLOW_PLAIN_HTTP=true)"
	}
	return ""
}

// secrets reads EVENTS_SECRETS into the signing keys of each endpoint name, in the order given.
func (e *Events) secrets(p *problems) map[string][][]byte {
	out := map[string][][]byte{}
	for i, entry := range e.EventsSecrets {
		name, list, _ := strings.Cut(strings.TrimSpace(entry.Value()), "=")
		for _, secret := range strings.Fields(list) {
			key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, secretPrefix))
			if !strings.HasPrefix(secret, secretPrefix) || err != nil || len(key) < 24 || len(key) > 64 {
				// Never echo the entry: it is a secret.
				p.add("EVENTS_SECRETS", "entry %d must be name=whsec_ followed by the base64 of 24 to 64 random bytes (several separated by spaces)", i+1)
				continue
			}
			out[name] = append(out[name], key)
		}
		if len(strings.Fields(list)) == 0 {
			p.add("EVENTS_SECRETS", "entry %d must be name=whsec_ followed by the base64 of 24 to 64 random bytes", i+1)
		}
	}
	return out
}

// Endpoints are the configured webhook receivers with their signing keys (the configuration is
// validated).
func (e *Events) Endpoints() []invoice.Endpoint {
	var p problems
	secrets := e.secrets(&p)
	out := make([]invoice.Endpoint, 0, len(e.EventsEndpoints))
	for _, entry := range e.EventsEndpoints {
		name, u, _ := strings.Cut(strings.TrimSpace(entry), "=")
		out = append(out, invoice.Endpoint{Name: name, URL: u, Secrets: secrets[name], Active: true})
	}
	return out
}

// Retention is what the purge removes, and when.
func (e *Events) Retention() invoice.RetentionPolicy {
	return invoice.RetentionPolicy{Delivered: e.EventsRetention, Dead: e.EventsDeadRetention, NotificationBodies: e.NotificationBodyRetention}
}

// DeliveryPolicy is how webhooks are retried.
func (e *Events) DeliveryPolicy() invoice.DeliveryPolicy {
	return invoice.DeliveryPolicy{BaseBackoff: e.EventsBaseBackoff, MaxBackoff: e.EventsMaxBackoff, RetryPeriod: e.EventsRetryPeriod}
}
