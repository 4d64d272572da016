package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
)

// -compare: two builds, before and after a change, run back to back (compare.sh), read as pairs: the
// machine's speed swings from one hour to the next, so only runs made one after the other compare, and
// two pairs show how much of a difference is noise.

// metric is one figure of a report; ok is false when the report does not have it.
type metric struct {
	name   string
	format string
	get    func(r *report) (float64, bool)
}

func rowMetric(row, name, format string, f func(s *result) (float64, bool)) metric {
	return metric{name: shortRow(row) + " " + name, format: format, get: func(r *report) (float64, bool) {
		s := r.find(row)
		if s == nil {
			return 0, false
		}
		return f(s)
	}}
}

func costMetric(row, name, format string, f func(s *result, c *cost) (float64, bool)) metric {
	return rowMetric(row, name, format, func(s *result) (float64, bool) {
		if s.Cost == nil || s.Cost.Requests == 0 {
			return 0, false
		}
		return f(s, s.Cost)
	})
}

func some(v float64) (float64, bool) { return v, v != 0 }

func somePtr(v *float64) (float64, bool) {
	if v == nil {
		return 0, false
	}
	return *v, true
}

// comparedMetrics are the figures a pair shows: throughput and its ratio to the ceiling, then per
// request the rows, WAL, statements and CPU, and CPU against the ceiling's.
func comparedMetrics() []metric {
	out := []metric{rowMetric(rowCeiling, "tps", "%.0f", func(s *result) (float64, bool) { return some(s.OpsPerSec) })}
	for _, row := range []string{rowCreate, rowWebhook, rowRawCreate, rowRawWebhook, rowDeliveryOn, rowEvents} {
		out = append(out, rowMetric(row, "ops/s", "%.0f", func(s *result) (float64, bool) { return some(s.OpsPerSec) }))
		if row != rowEvents {
			out = append(out, rowMetric(row, "÷ ceiling", "%.2f", func(s *result) (float64, bool) { return some(s.OverCeiling) }))
		}
	}
	ceilingPg := func(r *report) (float64, bool) {
		if c := r.find(rowCeiling); c != nil && c.Cost != nil && c.Cost.PostgresCPU != nil && *c.Cost.PostgresCPU > 0 {
			return *c.Cost.PostgresCPU, true
		}
		return 0, false
	}
	for _, row := range []string{rowCreate, rowWebhook, rowRawWebhook, rowDeliveryOn} {
		out = append(out,
			costMetric(row, "rows/req", "%.2f", func(_ *result, c *cost) (float64, bool) { return somePtr(c.RowsWritten) }),
			costMetric(row, "WAL B/req", "%.0f", func(_ *result, c *cost) (float64, bool) { return some(c.WALBytes) }),
			costMetric(row, "stmts/req", "%.2f", func(_ *result, c *cost) (float64, bool) { return somePtr(c.Statements) }),
			costMetric(row, "app µs/req", "%.0f", func(_ *result, c *cost) (float64, bool) { return some(c.AppCPU) }),
			costMetric(row, "pg µs/req", "%.0f", func(_ *result, c *cost) (float64, bool) { return somePtr(c.PostgresCPU) }))
		r := row
		out = append(out, metric{name: shortRow(row) + " pg µs ÷ ceiling's", format: "%.2f", get: func(rep *report) (float64, bool) {
			s := rep.find(r)
			pg, ok := ceilingPg(rep)
			if s == nil || s.Cost == nil || s.Cost.PostgresCPU == nil || !ok {
				return 0, false
			}
			return *s.Cost.PostgresCPU / pg, true
		}})
	}
	out = append(out, metric{name: "open webhook 50% p99 ms", format: "%.1f", get: func(r *report) (float64, bool) {
		if o := r.findOpen("webhook 50%"); o != nil {
			return o.P99, true
		}
		return 0, false
	}}, metric{name: "targets met", format: "%.0f", get: func(r *report) (float64, bool) {
		met := 0
		for _, t := range r.Targets {
			if t.Met {
				met++
			}
		}
		return float64(met), len(r.Targets) > 0
	}})
	return out
}

// printComparison reads the reports in files — before, after, before, after, … — and prints each
// figure of each pair, before → after.
func printComparison(w io.Writer, files []string) error {
	if len(files) < 2 || len(files)%2 != 0 {
		return errors.New("-compare needs pairs of reports: before,after[,before,after…]")
	}
	reps := make([]*report, len(files))
	for i, f := range files {
		raw, err := os.ReadFile(strings.TrimSpace(f))
		if err != nil {
			return err
		}
		reps[i] = &report{}
		if err := json.Unmarshal(raw, reps[i]); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
	}
	fmt.Fprintln(w, "Before → after, runs made back to back (before, after, before, after):")
	for i := 0; i < len(files); i += 2 {
		fmt.Fprintf(w, "  pair %d: %s → %s\n", i/2+1, files[i], files[i+1])
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "\t")
	for i := 0; i < len(files); i += 2 {
		fmt.Fprintf(tw, "pair %d\t", i/2+1)
	}
	fmt.Fprintln(tw)
	for _, m := range comparedMetrics() {
		line, any := m.name+"\t", false
		for i := 0; i < len(reps); i += 2 {
			a, okA := m.get(reps[i])
			b, okB := m.get(reps[i+1])
			line += pairCell(m.format, a, okA, b, okB) + "\t"
			any = any || okA || okB
		}
		if any {
			fmt.Fprintln(tw, line)
		}
	}
	return tw.Flush()
}

func pairCell(format string, a float64, okA bool, b float64, okB bool) string {
	f := func(v float64, ok bool) string {
		if !ok {
			return "-"
		}
		return fmt.Sprintf(format, v)
	}
	return f(a, okA) + " → " + f(b, okB)
}
