package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/merchant/o2o/internal/doku"
)

// The -volume run: after the rows on the empty database, the year is loaded into the same database
// in two steps (a tenth of it, then the rest), the claims and the feed page are timed at each volume,
// the rows run again, and the purge of the year runs under a webhook load.

// volumeReport is what the -volume run measured.
type volumeReport struct {
	Invoices int         `json:"invoices"`
	Load     []loadPhase `json:"load"`
	// Sizes are the loaded tables' sizes on disk at the full volume, indexes included.
	Sizes         map[string]int64 `json:"table_bytes"`
	DatabaseBytes int64            `json:"database_bytes"`
	Method        string           `json:"method"`
	// AtVolume is the rows run again on the loaded database; Compare each row's cost per request
	// beside the empty run's.
	AtVolume *report      `json:"at_volume,omitempty"`
	Compare  []volumeCost `json:"compare,omitempty"`
	Claims   []claimCost  `json:"claims,omitempty"`
	Purge    *purgeResult `json:"purge,omitempty"`
}

// volumeCost is one row's cost per request on the empty database and at volume.
type volumeCost struct {
	Row             string  `json:"row"`
	EmptyOpsPerSec  float64 `json:"empty_ops_per_sec"`
	VolumeOpsPerSec float64 `json:"volume_ops_per_sec"`
	EmptyAppUs      float64 `json:"empty_app_cpu_us"`
	VolumeAppUs     float64 `json:"volume_app_cpu_us"`
	AppRatio        float64 `json:"app_ratio"`
	EmptyPgUs       float64 `json:"empty_postgres_cpu_us"`
	VolumePgUs      float64 `json:"volume_postgres_cpu_us"`
	PgRatio         float64 `json:"postgres_ratio"`
	EmptyWALB       float64 `json:"empty_wal_bytes"`
	VolumeWALB      float64 `json:"volume_wal_bytes"`
	Met             bool    `json:"met"`
}

const volumeMethod = "The year is lived invoice by invoice through the service's own code (domain transitions, event " +
	"payloads, the simulator's notifications read by the service's parser) and copied in with COPY, two sessions at once, the " +
	"non-unique indexes of the loaded tables dropped for the copy and built again after it, then VACUUM (ANALYZE). Ids and " +
	"xids of the year sit below the rows' (the sequences were moved past it before the first row), as in a database a year old."

// volumeRun is the -volume run, after the first pass.
func (b *bench) volumeRun() (*volumeReport, error) {
	v := &volumeReport{Invoices: b.o.volume, Method: volumeMethod}
	ctx := b.ctx
	// Back to the state the first pass started from: the service as it was started, the delivery
	// rows' endpoint removed (it would otherwise be sent every event the second pass writes).
	if err := b.st.restartService(); err != nil {
		return v, err
	}
	b.m.svcPID = b.st.svc.Process.Pid
	if b.delivered {
		if _, err := b.store().RemoveEndpoint(ctx, b.endpoint); err != nil {
			return v, err
		}
	}
	if err := b.ensureLoadedEndpoint(); err != nil {
		return v, err
	}
	env := doku.EnvironmentID(b.st.simURL, benchClientID)
	y := newYearPlan(b.o.volume, b.st.started, env, b.st.simURL, benchClientID, benchSecret, 3, b.st.xidHi)

	claims := b.want("claims")
	if claims {
		c, err := b.claims(0)
		if err != nil {
			return v, fmt.Errorf("claims on the empty database: %w", err)
		}
		v.Claims = append(v.Claims, c...)
	}
	for _, step := range []struct {
		keep  func(int) bool
		total int
	}{{everyTenth, b.o.volume / 10}, {notTenth, b.o.volume}} {
		fmt.Fprintf(os.Stderr, "o2obench: loading the year up to %d invoices…\n", step.total)
		ph, err := loadYear(ctx, b.st, y, step.keep, step.total)
		v.Load = append(v.Load, ph)
		if err != nil {
			return v, fmt.Errorf("load the year: %w", err)
		}
		fmt.Fprintf(os.Stderr, "o2obench: %d invoices loaded in %.0f s (copy %.0f s, indexes %.0f s, vacuum %.0f s)\n",
			ph.Total, ph.Seconds, ph.CopySeconds, ph.IndexSeconds, ph.Vacuum)
		// The load wrote gigabytes of WAL: take the checkpoint that calls for now, not during the next
		// measurement (best effort: it needs superuser or pg_checkpoint).
		_, _ = b.st.pool.Exec(ctx, "CHECKPOINT")
		b.m.busy()
		// At the full volume the claims come after the rows: their fixture's updates leave dead row
		// versions behind, which the rows must not meet.
		if claims && step.total < b.o.volume {
			c, err := b.claims(step.total)
			if err != nil {
				return v, fmt.Errorf("claims at %d invoices: %w", step.total, err)
			}
			v.Claims = append(v.Claims, c...)
		}
	}
	var err error
	if v.Sizes, v.DatabaseBytes, err = tableSizes(ctx, b.st); err != nil {
		return v, err
	}

	// The rows again, on the loaded database: the ceiling is not (pgbench's database is its own).
	b2 := newBench(ctx, b.st, b.o, b.m, "V", "bench-volume", func(s string) bool { return s != "ceiling" && b.want(s) })
	defer func() { b2.closeRaw() }()
	b2.rep.Ceiling, b2.openFrom = b.rep.Ceiling, b
	if err := b2.pass(); err != nil {
		return v, fmt.Errorf("the rows at volume: %w", err)
	}
	v.AtVolume = b2.rep
	v.Compare = compareCosts(b.rep, b2.rep)

	// The delivery rows' receiver is gone: their endpoint would be retried under what follows.
	if b2.delivered {
		if err := b.st.restartService(); err != nil {
			return v, err
		}
		b.m.svcPID = b.st.svc.Process.Pid
		if _, err := b.store().RemoveEndpoint(ctx, b2.endpoint); err != nil {
			return v, err
		}
	}
	if claims {
		c, err := b.claims(b.o.volume)
		if err != nil {
			return v, fmt.Errorf("claims at %d invoices: %w", b.o.volume, err)
		}
		v.Claims = append(v.Claims, c...)
	}
	if b.want("purge") {
		if v.Purge, err = b2.purgeRow(b.webhook); err != nil {
			return v, fmt.Errorf("the purge row: %w", err)
		}
	}
	return v, nil
}

// compareCosts pairs each row of the empty run with the same row at volume.
func compareCosts(empty, volume *report) []volumeCost {
	var out []volumeCost
	add := func(name string, e, v *cost, eOps, vOps float64) {
		if e == nil || v == nil || e.PostgresCPU == nil || v.PostgresCPU == nil || e.Requests == 0 || v.Requests == 0 {
			return
		}
		c := volumeCost{Row: name, EmptyOpsPerSec: eOps, VolumeOpsPerSec: vOps, EmptyAppUs: e.AppCPU, VolumeAppUs: v.AppCPU,
			EmptyPgUs: *e.PostgresCPU, VolumePgUs: *v.PostgresCPU, EmptyWALB: e.WALBytes, VolumeWALB: v.WALBytes}
		c.AppRatio, c.PgRatio = ratio(c.VolumeAppUs, c.EmptyAppUs), ratio(c.VolumePgUs, c.EmptyPgUs)
		c.Met = c.AppRatio <= maxVolumeRatio && c.PgRatio <= maxVolumeRatio
		out = append(out, c)
	}
	for _, s := range empty.Scenarios {
		if s.Name == rowCeiling {
			continue
		}
		if v := volume.find(s.Name); v != nil {
			add(s.Name, s.Cost, v.Cost, s.OpsPerSec, v.OpsPerSec)
		}
	}
	for _, o := range empty.OpenLoop {
		if v := volume.findOpen(o.Name); v != nil {
			add("open "+o.Name, o.Cost, v.Cost, o.Achieved, v.Achieved)
		}
	}
	return out
}

func ratio(a, b float64) float64 {
	if b <= 0 {
		return 0
	}
	return round(a/b, 2)
}

// judgeVolume adds the -volume run's targets: every row's CPU per request at volume within 1.2 × the
// empty database's, the claims' and the feed page's cost at the full volume within 1.2 × the empty
// database's, and the webhook p99 under the purge within 1.2 × without.
func (r *report) judgeVolume() {
	v := r.Volume
	for _, c := range v.Compare {
		r.Targets = append(r.Targets, target{"at volume: " + shortRow(c.Row), fmt.Sprintf("<= %.1f × empty", maxVolumeRatio),
			fmt.Sprintf("app %.2f (%.0f → %.0f µs), pg %.2f (%.0f → %.0f µs)", c.AppRatio, c.EmptyAppUs, c.VolumeAppUs,
				c.PgRatio, c.EmptyPgUs, c.VolumePgUs), c.Met})
	}
	for _, what := range claimKinds(v.Claims) {
		empty, full := findClaim(v.Claims, what, 0), findClaim(v.Claims, what, v.Invoices)
		if empty == nil || full == nil || empty.PgCPU <= 0 {
			continue
		}
		q := ratio(full.PgCPU, empty.PgCPU)
		r.Targets = append(r.Targets, target{what, fmt.Sprintf("<= %.1f × empty", maxVolumeRatio),
			fmt.Sprintf("pg %.2f (%.0f → %.0f µs per call at %d invoices), p50 %.2f → %.2f ms", q, empty.PgCPU, full.PgCPU,
				v.Invoices, empty.P50, full.P50), q <= maxVolumeRatio})
	}
	if p := v.Purge; p != nil && p.Without.P99 > 0 {
		r.Targets = append(r.Targets, target{"webhook p99 under the purge", fmt.Sprintf("<= %.1f × without", maxVolumeRatio),
			fmt.Sprintf("%.2f (%.1f, %.1f without → %.1f ms with, at %.0f/s; %d failed)", p.P99Ratio, p.Without.P99, p.WithoutAfter.P99,
				p.With.P99, p.Rate, p.Without.Failed+p.With.Failed+p.WithoutAfter.Failed),
			p.P99Ratio <= maxVolumeRatio && p.Without.Failed+p.With.Failed+p.WithoutAfter.Failed == 0})
	}
}

// shortRow is a row's number and first word ("3 webhook", "4b raw"), an open-loop row's whole name:
// the targets' column is narrow.
func shortRow(name string) string {
	f := strings.Fields(name)
	if len(f) < 2 || strings.HasPrefix(name, "open") {
		return name
	}
	return f[0] + " " + strings.TrimRight(f[1], ":,")
}

func (v *volumeReport) print(w io.Writer) {
	fmt.Fprintf(w, "\n==== Volume: a year of %d invoices in the same database ====\n", v.Invoices)
	var total float64
	for _, ph := range v.Load {
		total += ph.Seconds
		fmt.Fprintf(w, "loaded up to %d invoices in %.0f s (COPY %.0f s, indexes rebuilt %.0f s, VACUUM ANALYZE %.0f s); FK checks %s\n",
			ph.Total, ph.Seconds, ph.CopySeconds, ph.IndexSeconds, ph.Vacuum, strings.SplitN(ph.FKChecks, " ", 2)[0])
	}
	if len(v.Load) > 0 {
		last := v.Load[len(v.Load)-1]
		fmt.Fprintf(w, "load time %.0f s in all (%s). Rows at %d invoices:", total, time.Duration(total*float64(time.Second)).Round(time.Second), last.Total)
		rows := map[string]int64{}
		for _, ph := range v.Load {
			for t, n := range ph.Rows {
				rows[t] += n
			}
		}
		for _, t := range yearTables {
			fmt.Fprintf(w, " %s %d (%s);", t.name, rows[t.name], humanBytes(v.Sizes[t.name]))
		}
		fmt.Fprintf(w, " database %s\n", humanBytes(v.DatabaseBytes))
	}
	if v.AtVolume != nil {
		fmt.Fprintln(w, "\n-- The rows again at volume --")
		v.AtVolume.printClosed(w)
		v.AtVolume.printOpen(w)
		v.AtVolume.printCosts(w)
		v.AtVolume.printStatements(w)
	}
	if len(v.Compare) > 0 {
		fmt.Fprintf(w, "\nCost per request at %d invoices beside the empty database, same run (target: each ratio <= %.1f):\n", v.Invoices, maxVolumeRatio)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "row\tops/s empty\tat volume\tapp µs empty\tat volume\tratio\tpg µs empty\tat volume\tratio\tWAL B empty\tat volume\t\t")
		for _, c := range v.Compare {
			fmt.Fprintf(tw, "%s\t%.0f\t%.0f\t%.0f\t%.0f\t%.2f\t%.0f\t%.0f\t%.2f\t%.0f\t%.0f\t%s\t\n", c.Row, c.EmptyOpsPerSec, c.VolumeOpsPerSec,
				c.EmptyAppUs, c.VolumeAppUs, c.AppRatio, c.EmptyPgUs, c.VolumePgUs, c.PgRatio, c.EmptyWALB, c.VolumeWALB, metOrMiss(c.Met))
		}
		tw.Flush()
	}
	printClaims(w, v)
	if v.Purge != nil {
		v.Purge.print(w)
	}
}

func metOrMiss(met bool) string {
	if met {
		return "MET"
	}
	return "MISS"
}
