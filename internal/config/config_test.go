package config

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// required sets a minimal valid environment.
func required(t *testing.T) {
	t.Setenv("DATABASE_URL", "postgres://u:dbpass-xyz@127.0.0.1/db")
	t.Setenv("API_KEYS", "key-one-0123456789,key-two-0123456789")
	t.Setenv("DOKU_CLIENT_ID", "MCH-1")
	t.Setenv("DOKU_SECRET_KEY", "SK-secret-value-123")
	t.Setenv("DOKU_BASE_URL", "https://api-sandbox.doku.com")
	t.Setenv("DOKU_DEFAULT_CUSTOMER_EMAIL", "payments@merchant.example")
}

func TestLoadDefaults(t *testing.T) {
	required(t)
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTPAddr != ":8080" || c.DokuNotificationPath != "/v1/notifications/doku" || c.DokuDefaultInfo == "" ||
		len(c.APIKeys) != 2 || c.AmountMin != 10000 || c.AmountMax != 5000000 || c.LogFormat != "json" ||
		c.DBStatementTimeout != 10*time.Second || c.DBLockTimeout != 5*time.Second {
		t.Fatalf("unexpected defaults %+v", c)
	}
	if l := c.Limits(); l.ExpiryDefault != 60 || l.AmountMax != 5000000 {
		t.Fatalf("limits %+v", l)
	}
}

func TestInvalidSettingsNameTheVariable(t *testing.T) {
	cases := map[string]struct{ key, value string }{
		"missing DATABASE_URL":    {"DATABASE_URL", ""},
		"missing API_KEYS":        {"API_KEYS", ""},
		"short API key":           {"API_KEYS", "short"},
		"missing secret":          {"DOKU_SECRET_KEY", ""},
		"missing base URL":        {"DOKU_BASE_URL", ""},
		"plain http to a host":    {"DOKU_BASE_URL", "http://api.doku.com"},
		"missing fallback email":  {"DOKU_DEFAULT_CUSTOMER_EMAIL", ""},
		"fallback email invalid":  {"DOKU_DEFAULT_CUSTOMER_EMAIL", "Payments <p@x.co>"},
		"blank default info":      {"DOKU_DEFAULT_INFO", " "},
		"footer too long":         {"DOKU_DEFAULT_RECEIPT_FOOTER", strings.Repeat("f", 129)},
		"lock timeout":            {"DB_LOCK_TIMEOUT", "0s"},
		"key name":                {"API_KEYS", "bad name:key-one-0123456789"},
		"bad base URL":            {"DOKU_BASE_URL", "ftp://doku"},
		"relative base URL":       {"DOKU_BASE_URL", "api.doku.com"},
		"notification path query": {"DOKU_NOTIFICATION_PATH", "/hook?x=1"},
		"notification path API":   {"DOKU_NOTIFICATION_PATH", "/v1/invoices"},
		"notification path host":  {"DOKU_NOTIFICATION_PATH", "https://x/hook"},
		"bad timeout":             {"DOKU_TIMEOUT", "soon"},
		"zero timeout":            {"DOKU_TIMEOUT", "0s"},
		"amount range":            {"AMOUNT_MAX", "5"},
		"amount over 12 digits":   {"AMOUNT_MAX", "1000000000000"},
		"amount not a number":     {"AMOUNT_MIN", "ten"},
		"expiry default":          {"EXPIRY_DEFAULT_MINUTES", "1"},
		"log level":               {"LOG_LEVEL", "loud"},
		"log format":              {"LOG_FORMAT", "xml"},
		"pool size":               {"DB_MAX_CONNS", "0"},
		"body limit":              {"MAX_BODY_BYTES", "10"},
		"key hash not hex":        {"API_KEY_HASHES", "zz"},
		"key hash short":          {"API_KEY_HASHES", "abcd"},
		"bad CIDR":                {"WEBHOOK_ALLOWED_CIDRS", "10.0.0.0/33"},
		"negative max age":        {"WEBHOOK_MAX_AGE", "-1s"},
		"schedule too short":      {"RECONCILE_SCHEDULE", "1ms"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			required(t)
			t.Setenv(tc.key, tc.value)
			_, err := Load()
			if err == nil {
				t.Fatal("accepted")
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.key) || strings.Contains(msg, "\n") {
				t.Fatalf("error %q does not name %s on one line", msg, tc.key)
			}
			for _, secret := range []string{"dbpass-xyz", "SK-secret-value-123", "key-one-0123456789"} {
				if strings.Contains(msg, secret) {
					t.Fatalf("error %q leaks a secret", msg)
				}
			}
		})
	}
}

func TestSecretsDoNotPrint(t *testing.T) {
	required(t)
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{fmtAll(c), jsonAll(t, c)} {
		for _, secret := range []string{"dbpass-xyz", "SK-secret-value-123", "key-one-0123456789", "key-two-0123456789"} {
			if strings.Contains(s, secret) {
				t.Fatalf("printed config contains %q: %s", secret, s)
			}
		}
	}
	keys, err := c.Keys()
	if c.DokuSecretKey.Value() != "SK-secret-value-123" || err != nil || keys[1].Digest != sha256.Sum256([]byte("key-two-0123456789")) {
		t.Fatal("Value() must return the secret itself")
	}
}

func TestKeysMayBeGivenAsHashesOnly(t *testing.T) {
	required(t)
	t.Setenv("API_KEYS", "")
	sum := sha256.Sum256([]byte("rotated-key-0123456789"))
	t.Setenv("API_KEY_HASHES", hex.EncodeToString(sum[:]))
	t.Setenv("WEBHOOK_ALLOWED_CIDRS", "203.0.113.0/24, 2001:db8::/32")
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	if k, err := c.Keys(); err != nil || len(k) != 1 || k[0].Digest != sum || k[0].Name != "hash1" {
		t.Fatalf("keys %+v %v", k, err)
	}
	if n := c.AllowedNetworks(); len(n) != 2 || n[0].String() != "203.0.113.0/24" {
		t.Fatalf("networks %v", n)
	}
}

// Without API_KEY_SCOPES every key may do everything; with it, a key it does not list is refused at
// start, naming the key, instead of quietly getting every scope (operator's too).
func TestScopesListEveryKeyOnceSet(t *testing.T) {
	required(t)
	t.Setenv("API_KEYS", "checkout:key-one-0123456789,prometheus:key-two-0123456789")
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	if k, err := c.Keys(); err != nil || len(k) != 2 || len(k[1].Scopes) != len(Scopes) {
		t.Fatalf("without API_KEY_SCOPES: %+v %v", k, err)
	}
	t.Setenv("API_KEY_SCOPES", "checkout=checkout")
	if c, err = Load(); err == nil {
		_, err = c.Keys()
	}
	if err == nil || !strings.Contains(err.Error(), "API_KEY_SCOPES") || !strings.Contains(err.Error(), `"prometheus" is not listed`) {
		t.Fatalf("a key API_KEY_SCOPES does not list: %v", err)
	}
	t.Setenv("API_KEY_SCOPES", "checkout=checkout,prometheus=metrics")
	if c, err = Load(); err != nil {
		t.Fatal(err)
	}
	if k, err := c.Keys(); err != nil || len(k[1].Scopes) != 1 || k[1].Scopes[0] != ScopeMetrics {
		t.Fatalf("with every key listed: %+v %v", k, err)
	}
}

// Every bad setting is reported at once, each on its own line naming its variable.
func TestAllProblemsAtOnce(t *testing.T) {
	required(t)
	t.Setenv("DOKU_TIMEOUT", "soon")
	t.Setenv("AMOUNT_MIN", "ten")
	t.Setenv("DOKU_CLIENT_ID", "")
	t.Setenv("LOG_FORMAT", "xml")
	_, err := Load()
	if err == nil {
		t.Fatal("accepted")
	}
	lines := strings.Split(err.Error(), "\n")
	for _, name := range []string{"DOKU_TIMEOUT", "AMOUNT_MIN", "DOKU_CLIENT_ID", "LOG_FORMAT"} {
		n := 0
		for _, l := range lines {
			if strings.Contains(l, name+":") {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%s is named on %d lines of:\n%s", name, n, err)
		}
	}
}

// A secret setting can come from a file (Docker and Kubernetes secrets), and not from both places.
func TestSecretsFromFiles(t *testing.T) {
	required(t)
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	os.Unsetenv("DOKU_SECRET_KEY")
	os.Unsetenv("API_KEYS")
	t.Setenv("DOKU_SECRET_KEY_FILE", write("secret", "SK-from-a-file-0001\n"))
	t.Setenv("API_KEYS_FILE", write("keys", "checkout:key-one-0123456789\nops:key-two-0123456789\n"))
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	keys, _ := c.Keys()
	if c.DokuSecretKey.Value() != "SK-from-a-file-0001" || len(keys) != 2 || keys[1].Name != "ops" {
		t.Fatalf("secret %q, keys %+v", c.DokuSecretKey.Value(), keys)
	}
	t.Setenv("DOKU_SECRET_KEY", "SK-also-set")
	if _, err := Load(); err == nil || !strings.Contains(err.Error(), "DOKU_SECRET_KEY") || strings.Contains(err.Error(), "SK-") {
		t.Fatalf("both set: %v", err)
	}
	t.Setenv("DATABASE_URL_FILE", filepath.Join(dir, "missing"))
	os.Unsetenv("DATABASE_URL")
	if _, err := Load(); err == nil || !strings.Contains(err.Error(), "DATABASE_URL_FILE") {
		t.Fatalf("unreadable file: %v", err)
	}
}

// Defaults come from the tags alone, parsed as the environment's values would be.
func TestDefaultsAreTheTags(t *testing.T) {
	t.Setenv("HTTP_ADDR", "127.0.0.1:9999") // the environment is not read
	d := Defaults()
	if d.HTTPAddr != ":8080" || d.DokuTimeout != 15*time.Second || len(d.ReconcileSchedule) != 8 ||
		d.ReconcileWindow != 7*24*time.Hour || d.DokuBaseURL != "" || d.AmountMax != 5000000 {
		t.Fatalf("defaults %+v", d)
	}
}
