package postgres_test

import (
	"context"
	"regexp"
	"slices"
	"testing"

	"github.com/merchant/o2o/internal/invoice"
	"github.com/merchant/o2o/internal/pgtest"
)

// Each list of values is defined once, in the domain; the schema's CHECK constraints must allow
// exactly its values, or a value the code writes would be refused (or a stale one accepted).
func TestCheckConstraintsFollowTheDomainLists(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	for constraint, want := range map[string][]string{
		"invoices_status_valid":          strings(invoice.Statuses),
		"notifications_outcome_valid":    strings(invoice.NotificationOutcomes),
		"attention_items_reason_valid":   strings(invoice.Reasons),
		"attention_items_state_valid":    strings(invoice.AttentionStates),
		"invoices_channel_valid":         strings(invoice.Channels),
		"events_entry_valid":             append(strings(invoice.ChangeTypes), invoice.LogHistory),
		"webhook_deliveries_state_valid": strings(invoice.DeliveryStates),
	} {
		var def string
		if err := db.Pool.QueryRow(context.Background(),
			`SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = $1`, constraint).Scan(&def); err != nil {
			t.Fatalf("%s: %v", constraint, err)
		}
		var got []string
		for _, m := range regexp.MustCompile(`'([^']*)'`).FindAllStringSubmatch(def, -1) {
			got = append(got, m[1])
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s allows %v, the domain lists %v", constraint, got, want)
		}
	}
	// The flagged notifications' partial index covers exactly the mismatches.
	var idx string
	if err := db.Pool.QueryRow(context.Background(), `SELECT pg_get_indexdef('notifications_flagged_idx'::regclass)`).Scan(&idx); err != nil {
		t.Fatal(err)
	}
	var covered, mismatches []string
	for _, m := range regexp.MustCompile(`'([^']*)'`).FindAllStringSubmatch(idx, -1) {
		covered = append(covered, m[1])
	}
	for _, o := range invoice.NotificationOutcomes {
		if o.Mismatch() {
			mismatches = append(mismatches, string(o))
		}
	}
	slices.Sort(covered)
	slices.Sort(mismatches)
	if !slices.Equal(covered, mismatches) {
		t.Errorf("notifications_flagged_idx covers %v, the mismatches are %v", covered, mismatches)
	}
	// A payment's source is one of the sources (the resumer records none).
	var def string
	if err := db.Pool.QueryRow(context.Background(),
		`SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'payments_source_valid'`).Scan(&def); err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`'([^']*)'`).FindAllStringSubmatch(def, -1) {
		if _, ok := invoice.ParseSource(m[1]); !ok {
			t.Errorf("payments_source_valid allows %q, which is not a source", m[1])
		}
	}
}

func strings[T ~string](list []T) []string {
	out := make([]string, len(list))
	for i, v := range list {
		out[i] = string(v)
	}
	return out
}
