// Package config loads the service's configuration from the environment (envconfig) and validates it
// once at start, so a bad setting stops the process with one line naming the variable.
package config

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/kelseyhightower/envconfig"
	"github.com/rs/zerolog"

	"github.com/merchant/o2o/internal/invoice"
)

// Secret is a string that never prints itself, so an accidental log of the config leaks nothing.
type Secret string

// String implements fmt.Stringer with a fixed placeholder.
func (Secret) String() string { return "[redacted]" }

// MarshalJSON keeps secrets out of JSON logs and dumps too.
func (Secret) MarshalJSON() ([]byte, error) { return []byte(`"[redacted]"`), nil }

// Value is the secret itself, for the one place that needs it.
func (s Secret) Value() string { return string(s) }

// Database is the part of the configuration that `o2o migrate` needs.
type Database struct {
	DatabaseURL Secret `envconfig:"DATABASE_URL" required:"true"`
	// DBMaxConns bounds the pool shared by requests and workers.
	DBMaxConns int32 `envconfig:"DB_MAX_CONNS" default:"20"`
	// DBStartupTimeout is how long start-up waits for the database to answer before giving up.
	DBStartupTimeout time.Duration `envconfig:"DB_STARTUP_TIMEOUT" default:"30s"`
}

// Config is every setting of the service. Names are the contract of DESIGN.md §4.
type Config struct {
	Database

	HTTPAddr string `envconfig:"HTTP_ADDR" default:":8080"`
	// MetricsAddr, when set, serves /metrics on this separate (admin) address instead of HTTP_ADDR.
	MetricsAddr string `envconfig:"METRICS_ADDR"`
	// Pprof serves Go\'s profiler at /debug/pprof/ on METRICS_ADDR (never on HTTP_ADDR).
	Pprof   bool     `envconfig:"PPROF" default:"false"`
	APIKeys []Secret `envconfig:"API_KEYS"`
	// APIKeyHashes are keys given as hex SHA-256 digests, so the config holds no usable key.
	APIKeyHashes    []string      `envconfig:"API_KEY_HASHES"`
	MaxBodyBytes    int64         `envconfig:"MAX_BODY_BYTES" default:"65536"`
	ShutdownTimeout time.Duration `envconfig:"SHUTDOWN_TIMEOUT" default:"20s"`

	DokuBaseURL          string        `envconfig:"DOKU_BASE_URL" default:"https://api-sandbox.doku.com"`
	DokuClientID         string        `envconfig:"DOKU_CLIENT_ID" required:"true"`
	DokuSecretKey        Secret        `envconfig:"DOKU_SECRET_KEY" required:"true"`
	DokuNotificationPath string        `envconfig:"DOKU_NOTIFICATION_PATH" default:"/v1/notifications/doku"`
	DokuTimeout          time.Duration `envconfig:"DOKU_TIMEOUT" default:"15s"`

	// WebhookAllowedCIDRs, when set, is the only networks notifications are accepted from.
	WebhookAllowedCIDRs []string `envconfig:"WEBHOOK_ALLOWED_CIDRS"`
	// WebhookMaxAge, when positive, refuses notifications with an older Request-Timestamp.
	WebhookMaxAge time.Duration `envconfig:"WEBHOOK_MAX_AGE" default:"0s"`

	AmountMin            int64 `envconfig:"AMOUNT_MIN" default:"10000"`
	AmountMax            int64 `envconfig:"AMOUNT_MAX" default:"5000000"`
	ExpiryMinMinutes     int   `envconfig:"EXPIRY_MIN_MINUTES" default:"5"`
	ExpiryMaxMinutes     int   `envconfig:"EXPIRY_MAX_MINUTES" default:"43200"`
	ExpiryDefaultMinutes int   `envconfig:"EXPIRY_DEFAULT_MINUTES" default:"60"`

	// The resumer finishes invoices left creating by DOKU faults or crashes.
	ResumerInterval    time.Duration `envconfig:"RESUMER_INTERVAL" default:"5s"`
	ResumerBatch       int           `envconfig:"RESUMER_BATCH" default:"50"`
	ResumerConcurrency int           `envconfig:"RESUMER_CONCURRENCY" default:"8"`
	ResumerBaseBackoff time.Duration `envconfig:"RESUMER_BASE_BACKOFF" default:"10s"`
	ResumerMaxBackoff  time.Duration `envconfig:"RESUMER_MAX_BACKOFF" default:"10m"`
	ResumerMaxAttempts int           `envconfig:"RESUMER_MAX_ATTEMPTS" default:"20"`

	// The reconciler polls DOKU's check status for invoices that are not final.
	ReconcileInterval    time.Duration   `envconfig:"RECONCILE_INTERVAL" default:"10s"`
	ReconcileBatch       int             `envconfig:"RECONCILE_BATCH" default:"100"`
	ReconcileConcurrency int             `envconfig:"RECONCILE_CONCURRENCY" default:"8"`
	ReconcileSchedule    []time.Duration `envconfig:"RECONCILE_SCHEDULE" default:"1m,2m,5m,15m,30m,1h,3h,6h"`
	ExpiryGrace          time.Duration   `envconfig:"EXPIRY_GRACE" default:"1h"`
	SyncMinInterval      time.Duration   `envconfig:"SYNC_MIN_INTERVAL" default:"10s"`

	LogLevel  string `envconfig:"LOG_LEVEL" default:"info"`
	LogFormat string `envconfig:"LOG_FORMAT" default:"json"`
}

// maxDokuAmount is DOKU's 12-digit limit on order.amount.
const maxDokuAmount = 999_999_999_999

// minAPIKeyLength keeps guessable keys out: a key is a bearer secret on an internal network.
const minAPIKeyLength = 16

// LoadDatabase reads only the database settings.
func LoadDatabase() (Database, error) {
	var d Database
	if err := envconfig.Process("", &d); err != nil {
		return d, tidy(err)
	}
	return d, d.validate()
}

func (d *Database) validate() error {
	if strings.TrimSpace(d.DatabaseURL.Value()) == "" {
		return errors.New("config: DATABASE_URL: must not be empty")
	}
	if d.DBMaxConns < 1 {
		return errors.New("config: DB_MAX_CONNS: must be at least 1")
	}
	if d.DBStartupTimeout < 0 {
		return errors.New("config: DB_STARTUP_TIMEOUT: must not be negative")
	}
	return nil
}

// Load reads and validates the whole configuration.
func Load() (Config, error) {
	var c Config
	if err := envconfig.Process("", &c); err != nil {
		return c, tidy(err)
	}
	return c, c.validate()
}

// tidy turns envconfig's errors into one line that names the variable and never echoes its value
// (a value may be a secret).
func tidy(err error) error {
	var pe *envconfig.ParseError
	if errors.As(err, &pe) {
		return fmt.Errorf("config: %s: cannot parse the value as %s", pe.KeyName, pe.TypeName)
	}
	return fmt.Errorf("config: %s", strings.TrimPrefix(err.Error(), "envconfig.Process: "))
}

func (c *Config) validate() error {
	bad := func(name, format string, args ...any) error {
		return fmt.Errorf("config: %s: %s", name, fmt.Sprintf(format, args...))
	}
	if c.Pprof && c.MetricsAddr == "" {
		return bad("PPROF", "needs METRICS_ADDR: the profiler is only served on the admin address")
	}
	if err := c.Database.validate(); err != nil {
		return err
	}
	if len(c.APIKeys) == 0 && len(c.APIKeyHashes) == 0 {
		return bad("API_KEYS", "at least one key is required (or give their SHA-256 in API_KEY_HASHES)")
	}
	for i, h := range c.APIKeyHashes {
		if b, err := hex.DecodeString(strings.TrimSpace(h)); err != nil || len(b) != sha256.Size {
			return bad("API_KEY_HASHES", "entry %d is not a hex SHA-256 digest (64 hex characters)", i+1)
		}
	}
	for i, cidr := range c.WebhookAllowedCIDRs {
		if _, err := netip.ParsePrefix(strings.TrimSpace(cidr)); err != nil {
			return bad("WEBHOOK_ALLOWED_CIDRS", "entry %d is not a CIDR such as 203.0.113.0/24", i+1)
		}
	}
	if c.WebhookMaxAge < 0 {
		return bad("WEBHOOK_MAX_AGE", "must not be negative (0 turns the check off)")
	}
	for i, k := range c.APIKeys {
		k = Secret(strings.TrimSpace(k.Value()))
		if len(k) < minAPIKeyLength {
			return bad("API_KEYS", "key %d is shorter than %d characters", i+1, minAPIKeyLength)
		}
		c.APIKeys[i] = k
	}
	if c.MaxBodyBytes < 1024 {
		return bad("MAX_BODY_BYTES", "must be at least 1024")
	}
	u, err := url.Parse(c.DokuBaseURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" {
		return bad("DOKU_BASE_URL", "must be an absolute http(s) URL without a query")
	}
	if strings.TrimSpace(c.DokuClientID) == "" {
		return bad("DOKU_CLIENT_ID", "must not be empty")
	}
	if c.DokuSecretKey == "" {
		return bad("DOKU_SECRET_KEY", "must not be empty")
	}
	p := c.DokuNotificationPath
	if !strings.HasPrefix(p, "/") || strings.ContainsAny(p, "?#{}* \t") || strings.HasPrefix(p, "/v1/invoices") || p == "/v1/notifications" ||
		p == "/healthz" || p == "/readyz" {
		return bad("DOKU_NOTIFICATION_PATH", "must be a plain path starting with / that no other route uses")
	}
	if c.DokuTimeout <= 0 {
		return bad("DOKU_TIMEOUT", "must be positive")
	}
	if c.ShutdownTimeout <= 0 {
		return bad("SHUTDOWN_TIMEOUT", "must be positive")
	}
	if c.AmountMin < 1 {
		return bad("AMOUNT_MIN", "must be at least 1")
	}
	if c.AmountMax < c.AmountMin || c.AmountMax > maxDokuAmount {
		return bad("AMOUNT_MAX", "must be between AMOUNT_MIN and %d", int64(maxDokuAmount))
	}
	if c.ExpiryMinMinutes < 1 {
		return bad("EXPIRY_MIN_MINUTES", "must be at least 1")
	}
	if c.ExpiryMaxMinutes < c.ExpiryMinMinutes || c.ExpiryMaxMinutes > 99_999_999 {
		return bad("EXPIRY_MAX_MINUTES", "must be between EXPIRY_MIN_MINUTES and 99999999")
	}
	if c.ExpiryDefaultMinutes < c.ExpiryMinMinutes || c.ExpiryDefaultMinutes > c.ExpiryMaxMinutes {
		return bad("EXPIRY_DEFAULT_MINUTES", "must be between EXPIRY_MIN_MINUTES and EXPIRY_MAX_MINUTES")
	}
	if c.ResumerInterval <= 0 {
		return bad("RESUMER_INTERVAL", "must be positive")
	}
	if c.ResumerBatch < 1 {
		return bad("RESUMER_BATCH", "must be at least 1")
	}
	if c.ResumerConcurrency < 1 {
		return bad("RESUMER_CONCURRENCY", "must be at least 1")
	}
	if c.ResumerBaseBackoff <= 0 {
		return bad("RESUMER_BASE_BACKOFF", "must be positive")
	}
	if c.ResumerMaxBackoff < c.ResumerBaseBackoff {
		return bad("RESUMER_MAX_BACKOFF", "must be at least RESUMER_BASE_BACKOFF")
	}
	if c.ResumerMaxAttempts < 1 {
		return bad("RESUMER_MAX_ATTEMPTS", "must be at least 1")
	}
	if c.ReconcileInterval <= 0 {
		return bad("RECONCILE_INTERVAL", "must be positive")
	}
	if c.ReconcileBatch < 1 {
		return bad("RECONCILE_BATCH", "must be at least 1")
	}
	if c.ReconcileConcurrency < 1 {
		return bad("RECONCILE_CONCURRENCY", "must be at least 1")
	}
	if len(c.ReconcileSchedule) == 0 {
		return bad("RECONCILE_SCHEDULE", "needs at least one duration")
	}
	for _, d := range c.ReconcileSchedule {
		if d < time.Second {
			return bad("RECONCILE_SCHEDULE", "every wait must be at least 1s")
		}
	}
	if c.ExpiryGrace < 0 {
		return bad("EXPIRY_GRACE", "must not be negative")
	}
	if c.SyncMinInterval < 0 {
		return bad("SYNC_MIN_INTERVAL", "must not be negative")
	}
	if _, err := zerolog.ParseLevel(c.LogLevel); err != nil || c.LogLevel == "" {
		return bad("LOG_LEVEL", "must be one of trace, debug, info, warn, error")
	}
	if c.LogFormat != "json" && c.LogFormat != "console" {
		return bad("LOG_FORMAT", `must be "json" or "console"`)
	}
	return nil
}

// Limits are the create-request bounds.
func (c *Config) Limits() invoice.Limits {
	return invoice.Limits{
		AmountMin:        c.AmountMin,
		AmountMax:        c.AmountMax,
		ExpiryMinMinutes: c.ExpiryMinMinutes,
		ExpiryMaxMinutes: c.ExpiryMaxMinutes,
		ExpiryDefault:    c.ExpiryDefaultMinutes,
	}
}

// KeyDigests returns the SHA-256 of every accepted API key, from API_KEYS and API_KEY_HASHES alike:
// the auth middleware compares digests only.
func (c *Config) KeyDigests() [][32]byte {
	out := make([][32]byte, 0, len(c.APIKeys)+len(c.APIKeyHashes))
	for _, k := range c.APIKeys {
		out = append(out, sha256.Sum256([]byte(k.Value())))
	}
	for _, h := range c.APIKeyHashes {
		var d [32]byte
		b, _ := hex.DecodeString(strings.TrimSpace(h)) // validated
		copy(d[:], b)
		out = append(out, d)
	}
	return out
}

// AllowedNetworks is WEBHOOK_ALLOWED_CIDRS parsed.
func (c *Config) AllowedNetworks() []netip.Prefix {
	out := make([]netip.Prefix, 0, len(c.WebhookAllowedCIDRs))
	for _, cidr := range c.WebhookAllowedCIDRs {
		p, _ := netip.ParsePrefix(strings.TrimSpace(cidr)) // validated
		out = append(out, p.Masked())
	}
	return out
}
