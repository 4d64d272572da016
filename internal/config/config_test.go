package config

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
)

// required sets a minimal valid environment.
func required(t *testing.T) {
	t.Setenv("DATABASE_URL", "postgres://u:dbpass-xyz@127.0.0.1/db")
	t.Setenv("API_KEYS", "key-one-0123456789,key-two-0123456789")
	t.Setenv("DOKU_CLIENT_ID", "MCH-1")
	t.Setenv("DOKU_SECRET_KEY", "SK-secret-value-123")
}

func TestLoadDefaults(t *testing.T) {
	required(t)
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTPAddr != ":8080" || c.DokuBaseURL != "https://api-sandbox.doku.com" || c.DokuNotificationPath != "/v1/notifications/doku" ||
		len(c.APIKeys) != 2 || c.AmountMin != 10000 || c.AmountMax != 5000000 || c.LogFormat != "json" {
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
	if c.DokuSecretKey.Value() != "SK-secret-value-123" || c.KeyDigests()[1] != sha256.Sum256([]byte("key-two-0123456789")) {
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
	if d := c.KeyDigests(); len(d) != 1 || d[0] != sum {
		t.Fatalf("digests %x", d)
	}
	if n := c.AllowedNetworks(); len(n) != 2 || n[0].String() != "203.0.113.0/24" {
		t.Fatalf("networks %v", n)
	}
}
