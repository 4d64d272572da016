// Package config loads the service's configuration from the environment (envconfig) and validates it
// once at start. Every setting that is missing or invalid is reported at once, one line each, naming
// the variable and never echoing a value (a value may be a secret). Defaults live in the struct tags
// and nowhere else.
package config

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/mail"
	"net/netip"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kelseyhightower/envconfig"
	"github.com/rs/zerolog"

	"github.com/merchant/o2o/internal/invoice"
)

// Secret is a string that never prints itself, so an accidental log of the config leaks nothing. A
// secret setting NAME may also be given as a file, NAME_FILE (Docker and Kubernetes secrets).
type Secret string

// String implements fmt.Stringer with a fixed placeholder.
func (Secret) String() string { return "[redacted]" }

// MarshalJSON keeps secrets out of JSON logs and dumps too.
func (Secret) MarshalJSON() ([]byte, error) { return []byte(`"[redacted]"`), nil }

// Value is the secret itself, for the one place that needs it.
func (s Secret) Value() string { return string(s) }

// Database is the part of the configuration that `o2o migrate` needs.
type Database struct {
	DatabaseURL Secret `envconfig:"DATABASE_URL" required:"true" desc:"PostgreSQL connection string"`
	// DatabaseDirectURL reaches PostgreSQL itself when DATABASE_URL goes through a connection pooler in
	// transaction mode (PgBouncer, CloudNativePG's Pooler): the event listener (LISTEN) and the
	// migrations (a session-level advisory lock) need a session of their own, which such a pooler
	// does not keep. Empty: DATABASE_URL serves for both.
	DatabaseDirectURL Secret `envconfig:"DATABASE_DIRECT_URL" desc:"PostgreSQL itself, when DATABASE_URL goes through a transaction-mode pooler: for LISTEN and migrations"`
	// DBMaxConns bounds the pool shared by requests and workers.
	DBMaxConns int32 `envconfig:"DB_MAX_CONNS" default:"20" desc:"pool size shared by requests and workers"`
	// DBStartupTimeout is how long start-up waits for the database to answer before giving up.
	DBStartupTimeout time.Duration `envconfig:"DB_STARTUP_TIMEOUT" default:"30s" desc:"how long start-up waits for the database"`
	// The server-side bounds of every session of the pool: no statement, lock wait or idle
	// transaction can hold a request, a worker or shutdown forever, however the database behaves.
	DBStatementTimeout time.Duration `envconfig:"DB_STATEMENT_TIMEOUT" default:"10s" desc:"longest a statement may run"`
	DBLockTimeout      time.Duration `envconfig:"DB_LOCK_TIMEOUT" default:"5s" desc:"longest a statement waits for a row lock"`
	DBIdleInTxTimeout  time.Duration `envconfig:"DB_IDLE_IN_TRANSACTION_TIMEOUT" default:"30s" desc:"a session idle inside a transaction this long is ended"`
	// DBConnectTimeout bounds each connection attempt (per host of a multi-host URL), unless the URL
	// sets connect_timeout: a database host that drops packets, as one does while it fails over,
	// would otherwise hold every attempt for the kernel's two minutes.
	DBConnectTimeout time.Duration `envconfig:"DB_CONNECT_TIMEOUT" default:"5s" desc:"bound on each connection attempt (unless DATABASE_URL sets connect_timeout)"`
}

// Config is every setting of the service.
type Config struct {
	Database

	HTTPAddr string `envconfig:"HTTP_ADDR" default:":8080" desc:"listen address"`
	// MetricsAddr, when set, serves /metrics on this separate (admin) address instead of HTTP_ADDR.
	MetricsAddr string `envconfig:"METRICS_ADDR" desc:"serve /metrics on this admin address instead"`
	// Pprof serves Go's profiler at /debug/pprof/ on METRICS_ADDR (never on HTTP_ADDR).
	Pprof bool `envconfig:"PPROF" default:"false" desc:"also serve /debug/pprof/ on METRICS_ADDR"`
	// APIKeys are bearer keys, each "name:key" (or a bare key, named key1, key2, … by position); the
	// name is what an attention item's resolution records.
	APIKeys []Secret `envconfig:"API_KEYS" desc:"(required unless API_KEY_HASHES is set) bearer keys, name:key, comma-separated"`
	// APIKeyHashes are keys given as "name:hex SHA-256", so the config holds no usable key.
	APIKeyHashes []string `envconfig:"API_KEY_HASHES" desc:"keys as name:hex SHA-256"`
	// APIKeyScopes limits what each key may do: "name=scope+scope", comma-separated (Scopes). A key
	// not listed may do everything, as every key could before scopes existed.
	APIKeyScopes    []string      `envconfig:"API_KEY_SCOPES" desc:"what each key may do, name=scope+scope (checkout, events, operator, metrics); once set, every key must be listed (unset: every key may do everything)"`
	MaxBodyBytes    int64         `envconfig:"MAX_BODY_BYTES" default:"65536" desc:"request body limit"`
	ShutdownTimeout time.Duration `envconfig:"SHUTDOWN_TIMEOUT" default:"20s" desc:"graceful-shutdown deadline"`
	// MigrateOnStart applies pending migrations before serving. Off where migrations run as a step of
	// their own before a rollout (a Kubernetes Job running o2o migrate up): the service then waits,
	// unready, until the schema is current.
	MigrateOnStart bool `envconfig:"MIGRATE_ON_START" default:"true" desc:"apply pending migrations before serving (off: run o2o migrate up first)"`
	// PublicBaseURL is where browsers reach this service (the payment page, status streams); the
	// URLs the API hands out are absolute when it is set.
	PublicBaseURL string `envconfig:"PUBLIC_BASE_URL" desc:"https://… where customers' browsers reach this service; makes the URLs the API hands out absolute"`

	// DokuBaseURL has no default: a deployment names the DOKU it talks to, so that production never
	// silently talks to the sandbox (or the reverse).
	DokuBaseURL          string        `envconfig:"DOKU_BASE_URL" required:"true" desc:"DOKU's base URL"`
	DokuAllowPlainHTTP   bool          `envconfig:"DOKU_ALLOW_PLAIN_HTTP" default:"false" desc:"allow http:// to a non-loopback DOKU (the simulator in docker compose)"`
	DokuClientID         string        `envconfig:"DOKU_CLIENT_ID" required:"true" desc:"DOKU Client-Id"`
	DokuSecretKey        Secret        `envconfig:"DOKU_SECRET_KEY" required:"true" desc:"DOKU secret key"`
	DokuNotificationPath string        `envconfig:"DOKU_NOTIFICATION_PATH" default:"/v1/notifications/doku" desc:"path of the Notification URL set at DOKU"`
	DokuTimeout          time.Duration `envconfig:"DOKU_TIMEOUT" default:"15s" desc:"bound on every DOKU call"`
	// DokuAdoptEnvironments are DOKU environments (env_… as /readyz and the start-up log name them)
	// whose open invoices this service takes over: a deliberate move of the same DOKU account to new
	// credentials or a new address. Without it, another environment's invoices are left alone.
	DokuAdoptEnvironments []string `envconfig:"DOKU_ADOPT_ENVIRONMENTS" desc:"env_... of another DOKU environment whose open invoices this service takes over (a deliberate move)"`
	// DOKU requires these fields of every generate request; a create request may leave them out.
	DokuDefaultInfo          string `envconfig:"DOKU_DEFAULT_INFO" default:"Online purchase" desc:"text shown at the store counter when a request has no info"`
	DokuDefaultCustomerEmail string `envconfig:"DOKU_DEFAULT_CUSTOMER_EMAIL" required:"true" desc:"email sent to DOKU when a request has no customer email"`
	DokuDefaultReceiptFooter string `envconfig:"DOKU_DEFAULT_RECEIPT_FOOTER" default:"Thank you" desc:"receipt footer when a request has none"`

	// WebhookAllowedCIDRs, when set, is the only networks notifications are accepted from.
	WebhookAllowedCIDRs []string `envconfig:"WEBHOOK_ALLOWED_CIDRS" desc:"accept notifications only from these networks"`
	// WebhookMaxAge, when positive, refuses notifications with an older Request-Timestamp.
	WebhookMaxAge time.Duration `envconfig:"WEBHOOK_MAX_AGE" default:"0s" desc:"refuse older Request-Timestamps (0: off)"`

	AmountMin            int64 `envconfig:"AMOUNT_MIN" default:"10000" desc:"smallest amount, rupiah"`
	AmountMax            int64 `envconfig:"AMOUNT_MAX" default:"5000000" desc:"largest amount, rupiah"`
	ExpiryMinMinutes     int   `envconfig:"EXPIRY_MIN_MINUTES" default:"5" desc:"shortest code lifetime"`
	ExpiryMaxMinutes     int   `envconfig:"EXPIRY_MAX_MINUTES" default:"43200" desc:"longest code lifetime"`
	ExpiryDefaultMinutes int   `envconfig:"EXPIRY_DEFAULT_MINUTES" default:"60" desc:"code lifetime when a request gives none"`

	// The resumer finishes invoices left creating by DOKU faults or crashes.
	ResumerInterval    time.Duration `envconfig:"RESUMER_INTERVAL" default:"5s" desc:"how often the resumer looks for unfinished invoices"`
	ResumerBatch       int           `envconfig:"RESUMER_BATCH" default:"50" desc:"invoices handled per round at most"`
	ResumerConcurrency int           `envconfig:"RESUMER_CONCURRENCY" default:"8" desc:"resumer DOKU calls in flight at once"`
	ResumerBaseBackoff time.Duration `envconfig:"RESUMER_BASE_BACKOFF" default:"10s" desc:"wait after a failed attempt; doubles"`
	ResumerMaxBackoff  time.Duration `envconfig:"RESUMER_MAX_BACKOFF" default:"10m" desc:"longest wait between attempts"`
	ResumerMaxAttempts int           `envconfig:"RESUMER_MAX_ATTEMPTS" default:"20" desc:"then the invoice is flagged for a person"`

	// The reconciler polls DOKU's check status for invoices that are not final.
	ReconcileInterval    time.Duration   `envconfig:"RECONCILE_INTERVAL" default:"10s" desc:"how often the reconciler looks for due checks"`
	ReconcileBatch       int             `envconfig:"RECONCILE_BATCH" default:"100" desc:"invoices checked per round at most"`
	ReconcileConcurrency int             `envconfig:"RECONCILE_CONCURRENCY" default:"8" desc:"check-status calls in flight at once"`
	ReconcileSchedule    []time.Duration `envconfig:"RECONCILE_SCHEDULE" default:"1m,2m,5m,15m,30m,1h,3h,6h" desc:"wait before each check; the last repeats"`
	ExpiryGrace          time.Duration   `envconfig:"EXPIRY_GRACE" default:"1h" desc:"a pending invoice this far past expiry is expired whatever DOKU says"`
	ReconcileWindow      time.Duration   `envconfig:"RECONCILE_WINDOW" default:"168h" desc:"how long after expiry a paid reusable code, or an invoice expired by the grace period, is still checked"`
	SyncMinInterval      time.Duration   `envconfig:"SYNC_MIN_INTERVAL" default:"10s" desc:"least time between two manual syncs of one invoice"`

	Events

	LogLevel  string `envconfig:"LOG_LEVEL" default:"info" desc:"trace, debug, info, warn or error"`
	LogFormat string `envconfig:"LOG_FORMAT" default:"json" desc:"json or console"`
}

// maxDokuAmount is DOKU's 12-digit limit on order.amount.
const maxDokuAmount = 999_999_999_999

// minAPIKeyLength keeps guessable keys out: a key is a bearer secret on an internal network.
const minAPIKeyLength = 16

// problems collects what is wrong with a configuration, one line per setting.
type problems []string

func (p *problems) add(name, format string, args ...any) {
	for _, have := range *p {
		if strings.HasPrefix(have, name+": ") {
			return // the first problem of a setting is the one to fix first
		}
	}
	*p = append(*p, name+": "+fmt.Sprintf(format, args...))
}

func (p problems) err() error {
	switch len(p) {
	case 0:
		return nil
	case 1:
		return errors.New("config: " + p[0])
	}
	return fmt.Errorf("config: %d settings are invalid:\n  %s", len(p), strings.Join(p, "\n  "))
}

// LoadDatabase reads only the database settings.
func LoadDatabase() (Database, error) {
	var d Database
	var p problems
	load(&d, &p)
	d.check(&p)
	return d, p.err()
}

// Load reads and validates the whole configuration.
func Load() (Config, error) {
	var c Config
	var p problems
	load(&c, &p)
	c.check(&p)
	return c, p.err()
}

// Validate checks a configuration made in code (from Defaults) as Load checks the environment's.
func (c *Config) Validate() error {
	var p problems
	c.check(&p)
	return p.err()
}

// Defaults is the configuration with every setting at its default and nothing read from the
// environment: required settings are empty. Tests and tools start from it and set what they need, so
// the only defaults there are stay in the tags above.
func Defaults() Config {
	var c Config
	var p problems
	loadDefaults(&c, &p)
	if len(p) > 0 {
		panic("config: a default does not parse: " + strings.Join(p, "; ")) // a programming error in a tag
	}
	return c
}

// loadDefaults is load with every setting unset: envconfig applies each default itself, parsed as a
// real value would be, by processing a one-field struct whose variable name nobody sets.
func loadDefaults(dst any, p *problems) {
	v := reflect.ValueOf(dst).Elem()
	for i := 0; i < v.NumField(); i++ {
		f := v.Type().Field(i)
		if f.Anonymous {
			loadDefaults(v.Field(i).Addr().Interface(), p)
			continue
		}
		def, ok := f.Tag.Lookup("default")
		if !ok {
			continue
		}
		tag := reflect.StructTag(`envconfig:"O2O_DEFAULT_NEVER_SET_` + f.Tag.Get("envconfig") + `" default:"` + def + `"`)
		one := reflect.New(reflect.StructOf([]reflect.StructField{{Name: f.Name, Type: f.Type, Tag: tag}}))
		if err := envconfig.Process("", one.Interface()); err != nil {
			p.add(f.Tag.Get("envconfig"), "%v", err)
			continue
		}
		v.Field(i).Set(one.Elem().Field(0))
	}
}

// load fills the struct dst points to from the environment one setting at a time, so that every
// setting that cannot be parsed is reported rather than only the first: envconfig stops at the first
// error of a struct, so each field is processed as a struct of its own.
func load(dst any, p *problems) {
	v := reflect.ValueOf(dst).Elem()
	for i := 0; i < v.NumField(); i++ {
		f := v.Type().Field(i)
		if f.Anonymous {
			load(v.Field(i).Addr().Interface(), p)
			continue
		}
		name := f.Tag.Get("envconfig")
		if name == "" {
			continue
		}
		if file, ok := os.LookupEnv(name + "_FILE"); ok && isSecret(f.Type) {
			loadFile(name, file, v.Field(i), p)
			continue
		}
		one := reflect.New(reflect.StructOf([]reflect.StructField{{Name: f.Name, Type: f.Type, Tag: f.Tag}}))
		if err := envconfig.Process("", one.Interface()); err != nil {
			var pe *envconfig.ParseError
			if errors.As(err, &pe) {
				p.add(name, "cannot parse the value as %s", pe.TypeName)
			} else {
				p.add(name, "is required")
			}
			continue
		}
		if f.Tag.Get("required") == "true" && one.Elem().Field(0).IsZero() {
			p.add(name, "is required")
			continue
		}
		v.Field(i).Set(one.Elem().Field(0))
	}
}

func isSecret(t reflect.Type) bool {
	return t == reflect.TypeOf(Secret("")) || t == reflect.TypeOf([]Secret(nil))
}

// loadFile reads secret NAME from the file NAME_FILE names; a list takes one entry per line or comma.
func loadFile(name, file string, dst reflect.Value, p *problems) {
	if _, both := os.LookupEnv(name); both {
		p.add(name, "is set both directly and as %s_FILE; set one", name)
		return
	}
	raw, err := os.ReadFile(file)
	if err != nil {
		p.add(name+"_FILE", "cannot read the file it names")
		return
	}
	text := strings.TrimSpace(string(raw))
	if dst.Kind() == reflect.String {
		dst.SetString(text)
		return
	}
	var list []Secret
	for _, s := range strings.FieldsFunc(text, func(r rune) bool { return r == ',' || r == '\n' }) {
		if s = strings.TrimSpace(s); s != "" {
			list = append(list, Secret(s))
		}
	}
	dst.Set(reflect.ValueOf(list))
}

func (d *Database) check(p *problems) {
	if strings.TrimSpace(d.DatabaseURL.Value()) == "" {
		p.add("DATABASE_URL", "must not be empty")
	}
	if d.DBMaxConns < 1 {
		p.add("DB_MAX_CONNS", "must be at least 1")
	}
	positive(p, "DB_STARTUP_TIMEOUT", d.DBStartupTimeout)
	positive(p, "DB_CONNECT_TIMEOUT", d.DBConnectTimeout)
	for name, t := range map[string]time.Duration{"DB_STATEMENT_TIMEOUT": d.DBStatementTimeout, "DB_LOCK_TIMEOUT": d.DBLockTimeout,
		"DB_IDLE_IN_TRANSACTION_TIMEOUT": d.DBIdleInTxTimeout} {
		if t < time.Millisecond {
			p.add(name, "must be at least 1ms")
		}
	}
}

func (c *Config) check(p *problems) {
	c.Database.check(p)
	c.checkHTTP(p)
	c.checkDoku(p)
	c.checkLimits(p)
	c.checkWorkers(p)
	c.Events.check(p)
	if _, err := zerolog.ParseLevel(c.LogLevel); err != nil || c.LogLevel == "" {
		p.add("LOG_LEVEL", "must be one of trace, debug, info, warn, error")
	}
	if c.LogFormat != "json" && c.LogFormat != "console" {
		p.add("LOG_FORMAT", `must be "json" or "console"`)
	}
}

func positive(p *problems, name string, d time.Duration) {
	if d <= 0 {
		p.add(name, "must be positive")
	}
}

func atLeast(p *problems, name string, v, min int) {
	if v < min {
		p.add(name, "must be at least %d", min)
	}
}

func (c *Config) checkHTTP(p *problems) {
	if c.Pprof && c.MetricsAddr == "" {
		p.add("PPROF", "needs METRICS_ADDR: the profiler is only served on the admin address")
	}
	if len(c.APIKeys) == 0 && len(c.APIKeyHashes) == 0 {
		p.add("API_KEYS", "at least one key is required (or give their SHA-256 in API_KEY_HASHES)")
	}
	if _, err := c.Keys(); err != nil {
		*p = append(*p, err.Error())
	}
	if c.MaxBodyBytes < 1024 {
		p.add("MAX_BODY_BYTES", "must be at least 1024")
	}
	positive(p, "SHUTDOWN_TIMEOUT", c.ShutdownTimeout)
	if c.PublicBaseURL != "" {
		u, err := url.Parse(c.PublicBaseURL)
		switch {
		case err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" ||
			strings.HasSuffix(u.Path, "/"):
			p.add("PUBLIC_BASE_URL", "must be an absolute URL without a query or a trailing slash, such as https://pay.merchant.example")
		case u.Scheme == "http" && !loopback(u.Hostname()):
			p.add("PUBLIC_BASE_URL", "must be https:// (plain http only on a loopback address)")
		}
	}
	for i, cidr := range c.WebhookAllowedCIDRs {
		if _, err := netip.ParsePrefix(strings.TrimSpace(cidr)); err != nil {
			p.add("WEBHOOK_ALLOWED_CIDRS", "entry %d is not a CIDR such as 203.0.113.0/24", i+1)
		}
	}
	if c.WebhookMaxAge < 0 {
		p.add("WEBHOOK_MAX_AGE", "must not be negative (0 turns the check off)")
	}
}

func (c *Config) checkDoku(p *problems) {
	c.checkDokuURL(p)
	if strings.TrimSpace(c.DokuClientID) == "" {
		p.add("DOKU_CLIENT_ID", "must not be empty")
	}
	if c.DokuSecretKey == "" {
		p.add("DOKU_SECRET_KEY", "must not be empty")
	}
	if !ownPath(c.DokuNotificationPath) {
		p.add("DOKU_NOTIFICATION_PATH", "must be a plain path starting with / that no other route uses")
	}
	positive(p, "DOKU_TIMEOUT", c.DokuTimeout)
	for i, e := range c.DokuAdoptEnvironments {
		if !regexp.MustCompile(`^env_[0-9a-f]{16}$`).MatchString(strings.TrimSpace(e)) {
			p.add("DOKU_ADOPT_ENVIRONMENTS", "entry %d is not an environment as the start-up log and /readyz name it (env_ and 16 hex digits)", i+1)
		}
	}
	if msg := plainText(c.DokuDefaultInfo, 255); msg != "" {
		p.add("DOKU_DEFAULT_INFO", "%s", msg)
	}
	if msg := plainText(c.DokuDefaultReceiptFooter, 128); msg != "" {
		p.add("DOKU_DEFAULT_RECEIPT_FOOTER", "%s", msg)
	}
	if a, err := mail.ParseAddress(c.DokuDefaultCustomerEmail); c.DokuDefaultCustomerEmail != "" && (err != nil || a.Address != c.DokuDefaultCustomerEmail) {
		p.add("DOKU_DEFAULT_CUSTOMER_EMAIL", "must be a plain email address such as payments@merchant.example")
	}
}

func (c *Config) checkDokuURL(p *problems) {
	if c.DokuBaseURL == "" {
		return // reported as missing by envconfig
	}
	u, err := url.Parse(c.DokuBaseURL)
	switch {
	case err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "":
		p.add("DOKU_BASE_URL", "must be an absolute https URL without a query, such as https://api.doku.com")
	case u.Scheme == "http" && !loopback(u.Hostname()) && !c.DokuAllowPlainHTTP:
		// The secret never crosses the wire, but the payment codes and the customer's details do.
		p.add("DOKU_BASE_URL", "must be https:// (plain http is allowed to a loopback address, or with DOKU_ALLOW_PLAIN_HTTP=true for a simulator on a private network)")
	}
}

// ownPath reports whether the webhook path is a plain path no other route of the API claims.
func ownPath(path string) bool {
	if !strings.HasPrefix(path, "/") || strings.ContainsAny(path, "?#{}* \t") {
		return false
	}
	for _, prefix := range []string{"/v1/invoices", "/v1/attention", "/v1/events"} {
		if strings.HasPrefix(path, prefix) {
			return false
		}
	}
	return !slices.Contains([]string{"/v1/notifications", "/healthz", "/readyz", "/metrics", "/openapi.yaml"}, path)
}

// loopback reports whether host is this machine: plain http to it never crosses a network.
func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// plainText says why s is not a non-empty text of at most max characters without control characters.
func plainText(s string, max int) string {
	switch {
	case strings.TrimSpace(s) == "":
		return "must not be empty"
	case len([]rune(s)) > max:
		return fmt.Sprintf("must be at most %d characters", max)
	case strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return "must not contain control characters"
	}
	return ""
}

func (c *Config) checkLimits(p *problems) {
	if c.AmountMin < 1 {
		p.add("AMOUNT_MIN", "must be at least 1")
	}
	if c.AmountMax < c.AmountMin || c.AmountMax > maxDokuAmount {
		p.add("AMOUNT_MAX", "must be between AMOUNT_MIN and %d", int64(maxDokuAmount))
	}
	atLeast(p, "EXPIRY_MIN_MINUTES", c.ExpiryMinMinutes, 1)
	if c.ExpiryMaxMinutes < c.ExpiryMinMinutes || c.ExpiryMaxMinutes > 99_999_999 {
		p.add("EXPIRY_MAX_MINUTES", "must be between EXPIRY_MIN_MINUTES and 99999999")
	}
	if c.ExpiryDefaultMinutes < c.ExpiryMinMinutes || c.ExpiryDefaultMinutes > c.ExpiryMaxMinutes {
		p.add("EXPIRY_DEFAULT_MINUTES", "must be between EXPIRY_MIN_MINUTES and EXPIRY_MAX_MINUTES")
	}
}

func (c *Config) checkWorkers(p *problems) {
	positive(p, "RESUMER_INTERVAL", c.ResumerInterval)
	atLeast(p, "RESUMER_BATCH", c.ResumerBatch, 1)
	atLeast(p, "RESUMER_CONCURRENCY", c.ResumerConcurrency, 1)
	positive(p, "RESUMER_BASE_BACKOFF", c.ResumerBaseBackoff)
	if c.ResumerMaxBackoff < c.ResumerBaseBackoff {
		p.add("RESUMER_MAX_BACKOFF", "must be at least RESUMER_BASE_BACKOFF")
	}
	atLeast(p, "RESUMER_MAX_ATTEMPTS", c.ResumerMaxAttempts, 1)
	positive(p, "RECONCILE_INTERVAL", c.ReconcileInterval)
	atLeast(p, "RECONCILE_BATCH", c.ReconcileBatch, 1)
	atLeast(p, "RECONCILE_CONCURRENCY", c.ReconcileConcurrency, 1)
	if len(c.ReconcileSchedule) == 0 {
		p.add("RECONCILE_SCHEDULE", "needs at least one duration")
	}
	for _, d := range c.ReconcileSchedule {
		if d < time.Second {
			p.add("RECONCILE_SCHEDULE", "every wait must be at least 1s")
			break
		}
	}
	if c.ExpiryGrace < 0 {
		p.add("EXPIRY_GRACE", "must not be negative")
	}
	if c.ReconcileWindow < 0 {
		p.add("RECONCILE_WINDOW", "must not be negative")
	}
	if c.SyncMinInterval < 0 {
		p.add("SYNC_MIN_INTERVAL", "must not be negative")
	}
}

// Key is an accepted API key: its name (recorded when it resolves an attention item), the SHA-256 of
// the key, which is all the service keeps of it, and what it may do.
type Key struct {
	Name   string
	Digest [32]byte
	Scopes []string
}

// The scopes an API key can be given. The HTTP API's route table names one for every route it guards.
const (
	// ScopeCheckout: what a checkout frontend does — create, read, list and cancel invoices, issue and
	// revoke stream tokens, open status streams.
	ScopeCheckout = "checkout"
	// ScopeEvents: what the merchant's order system reads — the event feed and single events.
	ScopeEvents = "events"
	// ScopeOperator: what a person on call does — the attention queue, the notification inbox, an
	// invoice's history, manual sync, webhook endpoints and redelivery.
	ScopeOperator = "operator"
	// ScopeMetrics: Prometheus' scrape of /metrics.
	ScopeMetrics = "metrics"
)

// Scopes lists every scope.
var Scopes = []string{ScopeCheckout, ScopeEvents, ScopeOperator, ScopeMetrics}

// Keys returns every accepted API key, from API_KEYS and API_KEY_HASHES alike. A key is "name:key" or
// a bare key, named key1, key2, … by its position in API_KEYS (hash1, … in API_KEY_HASHES).
func (c *Config) Keys() ([]Key, error) {
	k := keyring{seen: map[string]bool{}}
	for i, v := range c.APIKeys {
		k.addKey(i, v.Value())
	}
	for i, h := range c.APIKeyHashes {
		k.addHash(i, h)
	}
	k.scope(c.APIKeyScopes)
	if len(k.problems) > 0 {
		return nil, errors.New(strings.Join(k.problems, "\n"))
	}
	return k.keys, nil
}

// scope gives each key the scopes API_KEY_SCOPES lists for it. Without API_KEY_SCOPES every key has
// every scope (a deployment from before scopes keeps working); with it, every key must be listed: a
// key added later and forgotten there would otherwise get every scope, operator's included.
func (k *keyring) scope(entries []string) {
	given := map[string][]string{}
	for i, entry := range entries {
		name, list, ok := strings.Cut(strings.TrimSpace(entry), "=")
		var scopes []string
		for _, sc := range strings.Split(list, "+") {
			if sc = strings.TrimSpace(sc); !slices.Contains(Scopes, sc) {
				k.problems.add("API_KEY_SCOPES", "entry %d: scopes are %s, joined by +", i+1, strings.Join(Scopes, ", "))
				return
			}
			scopes = append(scopes, sc)
		}
		switch {
		case !ok || !k.seen[name]:
			k.problems.add("API_KEY_SCOPES", "entry %d must be name=scope+scope, with the name of a key of API_KEYS or API_KEY_HASHES", i+1)
			return
		case given[name] != nil:
			k.problems.add("API_KEY_SCOPES", "key %q is listed twice", name)
			return
		}
		given[name] = scopes
	}
	for i := range k.keys {
		s, ok := given[k.keys[i].Name]
		switch {
		case ok:
			k.keys[i].Scopes = s
		case len(entries) == 0:
			k.keys[i].Scopes = slices.Clone(Scopes)
		default:
			k.problems.add("API_KEY_SCOPES", "key %q is not listed: with API_KEY_SCOPES set, every key says what it may do", k.keys[i].Name)
		}
	}
}

// keyring collects the keys of Keys and what is wrong with them.
type keyring struct {
	keys     []Key
	seen     map[string]bool
	problems problems
}

// splitNamed cuts an optional "name:" off an entry.
func splitNamed(entry string) (name, value string, named bool) {
	name, value, named = strings.Cut(strings.TrimSpace(entry), ":")
	if !named {
		return "", name, false
	}
	return name, value, true
}

func (k *keyring) addKey(i int, entry string) {
	n, key, named := splitNamed(entry)
	if len(key) < minAPIKeyLength {
		k.problems.add("API_KEYS", "key %d is shorter than %d characters", i+1, minAPIKeyLength)
	}
	if named && !validKeyName(n) {
		k.problems.add("API_KEYS", "key %d has a name that is not 1-64 of A-Z a-z 0-9 . _ -", i+1)
	}
	k.keys = append(k.keys, Key{Name: k.name("API_KEYS", n, fmt.Sprintf("key%d", i+1)), Digest: sha256.Sum256([]byte(key))})
}

func (k *keyring) addHash(i int, entry string) {
	n, digest, named := splitNamed(entry)
	b, err := hex.DecodeString(digest)
	if err != nil || len(b) != sha256.Size {
		k.problems.add("API_KEY_HASHES", "entry %d is not a hex SHA-256 digest (64 hex characters)", i+1)
		return
	}
	if named && !validKeyName(n) {
		k.problems.add("API_KEY_HASHES", "entry %d has a name that is not 1-64 of A-Z a-z 0-9 . _ -", i+1)
	}
	key := Key{Name: k.name("API_KEY_HASHES", n, fmt.Sprintf("hash%d", i+1))}
	copy(key.Digest[:], b)
	k.keys = append(k.keys, key)
}

// name is the key's given name, or its positional one; a name used twice is a problem, since the
// name is what an attention item's resolution records.
func (k *keyring) name(setting, given, positional string) string {
	n := given
	if n == "" {
		n = positional
	}
	if k.seen[n] {
		k.problems.add(setting, "key name %q is used twice", n)
	}
	k.seen[n] = true
	return n
}

func validKeyName(n string) bool {
	if n == "" || len(n) > 64 {
		return false
	}
	return !strings.ContainsFunc(n, func(r rune) bool {
		return !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-')
	})
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

// Limits are the create-request bounds.
func (c Config) Limits() invoice.Limits {
	return invoice.Limits{
		AmountMin:        c.AmountMin,
		AmountMax:        c.AmountMax,
		ExpiryMinMinutes: c.ExpiryMinMinutes,
		ExpiryMaxMinutes: c.ExpiryMaxMinutes,
		ExpiryDefault:    c.ExpiryDefaultMinutes,
	}
}

// usageFormat is one line per setting: name, default (or "required"), what it is; a secret setting
// NAME may also be given as a file, NAME_FILE (see Secret).
const usageFormat = `{{range .}}  {{usage_key .}}	{{if usage_required .}}(required){{else}}{{usage_default .}}{{end}}	{{usage_description .}}
{{end}}`

// Usage writes every setting with its default and meaning.
func Usage(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if err := envconfig.Usagef("", &Config{}, tw, usageFormat); err != nil {
		return err
	}
	return tw.Flush()
}
