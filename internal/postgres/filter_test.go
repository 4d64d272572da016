package postgres

import (
	"regexp"
	"slices"
	"testing"

	"github.com/merchant/o2o/internal/invoice"
)

// ?outcome=flagged is on its partial index only while the statement's condition names exactly the
// domain's mismatches (TestCheckConstraintsFollowTheDomainLists holds the index to them, and
// internal/plans the statement to the index).
func TestFlaggedConditionFollowsTheOutcomes(t *testing.T) {
	var want []invoice.Outcome
	var names []string
	for _, o := range invoice.NotificationOutcomes {
		if o.Mismatch() {
			want, names = append(want, o), append(names, string(o))
		}
	}
	var got []string
	for _, m := range regexp.MustCompile(`'([^']*)'`).FindAllStringSubmatch(flaggedOutcomes, -1) {
		got = append(got, m[1])
	}
	slices.Sort(got)
	slices.Sort(names)
	if !slices.Equal(got, names) {
		t.Errorf("the statement's condition names %v, the mismatches are %v", got, names)
	}
	slices.Reverse(want)
	if !flagged(want) || flagged(want[1:]) || flagged(append(want, invoice.OutcomeApplied)) {
		t.Error("flagged() does not recognise exactly the set of mismatches")
	}
}
