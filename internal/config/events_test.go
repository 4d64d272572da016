package config

import (
	"strings"
	"testing"
)

const goodSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

func TestEventEndpoints(t *testing.T) {
	required(t)
	t.Setenv("EVENTS_ENDPOINTS", "orders=https://orders.example/hook,local=http://127.0.0.1:9000/hook")
	t.Setenv("EVENTS_SECRETS", "orders="+goodSecret+",local="+goodSecret)
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	eps := c.Endpoints()
	if len(eps) != 2 || eps[0].Name != "orders" || eps[0].URL != "https://orders.example/hook" || len(eps[0].Secrets) != 1 || len(eps[0].Secrets[0]) != 24 || !eps[1].Active {
		t.Fatalf("endpoints %+v", eps)
	}
	if p := c.DeliveryPolicy(); p.RetryPeriod.Hours() != 72 || p.BaseBackoff.Seconds() != 5 {
		t.Errorf("delivery policy %+v", p)
	}
}

// While a secret is rotated an endpoint has two: both are kept, in order, whichever way they are given.
func TestEndpointSecretsForRotation(t *testing.T) {
	const newSecret = "whsec_C2hvcnRlcnNlY3JldGZvcnJvdGF0aW9uMTIz"
	for _, secrets := range []string{"orders=" + goodSecret + " " + newSecret, "orders=" + goodSecret + ",orders=" + newSecret} {
		required(t)
		t.Setenv("EVENTS_ENDPOINTS", "orders=https://orders.example/hook")
		t.Setenv("EVENTS_SECRETS", secrets)
		c, err := Load()
		if err != nil {
			t.Fatal(err)
		}
		if s := c.Endpoints()[0].Secrets; len(s) != 2 || len(s[0]) != 24 || len(s[1]) == 0 {
			t.Errorf("%q: secrets %v", secrets, s)
		}
	}
}

// Every mistake in the endpoints names the setting, and a secret's value is never repeated.
func TestEventEndpointMistakes(t *testing.T) {
	for name, c := range map[string]struct{ endpoints, secrets, want string }{
		"plain http off this machine": {"orders=http://orders.example/hook", "orders=" + goodSecret, "EVENTS_ENDPOINTS"},
		"not a URL":                   {"orders=orders.example", "orders=" + goodSecret, "EVENTS_ENDPOINTS"},
		"no name":                     {"https://orders.example/hook", "", "EVENTS_ENDPOINTS"},
		"a name twice":                {"a=https://x.example,a=https://y.example", "a=" + goodSecret, "used twice"},
		"no secret":                   {"orders=https://orders.example/hook", "", "EVENTS_SECRETS"},
		"a secret for no endpoint":    {"", "crm=" + goodSecret, "EVENTS_SECRETS"},
		"not whsec_":                  {"orders=https://orders.example/hook", "orders=plainsecretvalue-9876543210", "EVENTS_SECRETS"},
		"too short":                   {"orders=https://orders.example/hook", "orders=whsec_c2hvcnQ=", "EVENTS_SECRETS"},
	} {
		t.Run(name, func(t *testing.T) {
			required(t)
			t.Setenv("EVENTS_ENDPOINTS", c.endpoints)
			t.Setenv("EVENTS_SECRETS", c.secrets)
			_, err := Load()
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want it to say %s", err, c.want)
			}
			for _, secret := range []string{goodSecret, "plainsecretvalue-9876543210", "c2hvcnQ"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("the error repeats a secret: %v", err)
				}
			}
		})
	}
}
