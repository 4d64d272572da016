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
	// EventsEndpoints are the webhook receivers, each "name=url"; EventsSecrets their signing secrets,
	// each "name=whsec_…" (base64 of 24 to 64 random bytes, as Standard Webhooks defines them).
	EventsEndpoints []string `envconfig:"EVENTS_ENDPOINTS" desc:"webhook receivers, name=https://url, comma-separated"`
	EventsSecrets   []Secret `envconfig:"EVENTS_SECRETS" desc:"each receiver's signing secret, name=whsec_..., comma-separated"`
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

// secrets reads EVENTS_SECRETS into the signing key of each endpoint name.
func (e *Events) secrets(p *problems) map[string][]byte {
	out := map[string][]byte{}
	for i, entry := range e.EventsSecrets {
		name, secret, _ := strings.Cut(strings.TrimSpace(entry.Value()), "=")
		key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, secretPrefix))
		if !strings.HasPrefix(secret, secretPrefix) || err != nil || len(key) < 24 || len(key) > 64 {
			// Never echo the entry: it is a secret.
			p.add("EVENTS_SECRETS", "entry %d must be name=whsec_ followed by the base64 of 24 to 64 random bytes", i+1)
			continue
		}
		out[name] = key
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
		out = append(out, invoice.Endpoint{Name: name, URL: u, Secret: secrets[name], Active: true})
	}
	return out
}

// DeliveryPolicy is how webhooks are retried.
func (e *Events) DeliveryPolicy() invoice.DeliveryPolicy {
	return invoice.DeliveryPolicy{BaseBackoff: e.EventsBaseBackoff, MaxBackoff: e.EventsMaxBackoff, RetryPeriod: e.EventsRetryPeriod}
}
