package httpapi

import (
	"slices"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/merchant/o2o/api"
	"github.com/merchant/o2o/internal/invoice"
)

// The contract's enums are the domain's lists, each defined once: a value the service can answer
// with is documented, and the document promises nothing the service does not have.
func TestContractEnumsFollowTheDomainLists(t *testing.T) {
	t.Parallel()
	doc, err := openapi3.NewLoader().LoadFromData(api.OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	enum := func(path ...string) []string {
		s := doc.Components.Schemas[path[0]].Value
		for _, p := range path[1:] {
			s = s.Properties[p].Value
		}
		var out []string
		for _, v := range s.Enum {
			out = append(out, v.(string))
		}
		slices.Sort(out)
		return out
	}
	for name, c := range map[string]struct {
		got  []string
		want []string
	}{
		"Status":               {enum("Status"), names(invoice.Statuses)},
		"Channel":              {enum("Channel"), names(invoice.Channels)},
		"Notification.outcome": {enum("Notification", "outcome"), names(invoice.NotificationOutcomes)},
		"AttentionReason":      {enum("AttentionReason"), names(invoice.Reasons)},
		"HistoryEntry.source":  {enum("HistoryEntry", "source"), names(invoice.Sources)},
		"HistoryEntry.kind":    {enum("HistoryEntry", "kind"), names(invoice.EventKinds)},
		"EventType":            {enum("EventType"), names(invoice.ChangeTypes)},
		"Delivery.state":       {enum("Delivery", "state"), names(invoice.DeliveryStates)},
		"Problem.code":         {enum("Problem", "code"), names(codes)},
		"Attention.state":      {enum("Attention", "state"), names(invoice.AttentionStates)},
	} {
		slices.Sort(c.want)
		if !slices.Equal(c.got, c.want) {
			t.Errorf("%s: the contract lists %v, the domain %v", name, c.got, c.want)
		}
	}
	// An item's source and a payment's are sources; a notification's answer is one of the inbox outcomes.
	for _, src := range append(enum("Attention", "source"), enum("Payment", "source")...) {
		if _, ok := invoice.ParseSource(src); !ok {
			t.Errorf("source %q is not a source", src)
		}
	}
	for _, o := range enum("NotificationAck", "outcome") {
		if !slices.Contains(invoice.NotificationOutcomes, invoice.Outcome(o)) {
			t.Errorf("NotificationAck.outcome %q is not an outcome", o)
		}
	}
}

func names[T ~string](list []T) []string {
	out := make([]string, len(list))
	for i, v := range list {
		out[i] = string(v)
	}
	return out
}
