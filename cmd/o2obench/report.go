package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"
)

type machine struct {
	Cores    int    `json:"cores"`
	GOOS     string `json:"goos"`
	GOARCH   string `json:"goarch"`
	Go       string `json:"go"`
	Postgres string `json:"postgres"`
}

type report struct {
	When      time.Time `json:"when"`
	Machine   machine   `json:"machine"`
	Duration  string    `json:"duration_per_scenario"`
	Scenarios []result  `json:"scenarios"`
	Memory    struct {
		IdleRSSMB  float64 `json:"service_idle_rss_mb"`
		PeakRSSMB  float64 `json:"service_peak_rss_mb"`
		FinalRSSMB float64 `json:"service_final_rss_mb"`
	} `json:"memory"`
	Targets []target `json:"targets"`
}

type target struct {
	What   string `json:"what"`
	Target string `json:"target"`
	Got    string `json:"got"`
	Met    bool   `json:"met"`
}

func (r *report) add(res result) { r.Scenarios = append(r.Scenarios, res) }

// setRaw records the raw baseline beside the scenario whose name starts with prefix.
func (r *report) setRaw(prefix string, raw float64) {
	for i := range r.Scenarios {
		if strings.HasPrefix(r.Scenarios[i].Name, prefix) && raw > 0 {
			r.Scenarios[i].RawOpsPerSec = raw
			r.Scenarios[i].ServiceOverRaw = round(r.Scenarios[i].OpsPerSec/raw, 2)
		}
	}
}

func (r *report) find(prefix string) *result {
	for i := range r.Scenarios {
		if strings.HasPrefix(r.Scenarios[i].Name, prefix) {
			return &r.Scenarios[i]
		}
	}
	return nil
}

// judge compares the run with the performance targets (README.md, "Performance").
func (r *report) judge() {
	if c := r.find("1 create"); c != nil {
		r.Targets = append(r.Targets,
			target{"create, 32 clients", ">= 2000/s", fmt.Sprintf("%.0f/s", c.OpsPerSec), c.OpsPerSec >= 2000 && c.Errors == 0},
			target{"create p99", "< 20 ms", fmt.Sprintf("%.1f ms", c.P99), c.P99 < 20})
	}
	if w := r.find("3 webhook"); w != nil {
		r.Targets = append(r.Targets,
			target{"webhook, 32 clients", ">= 4000/s", fmt.Sprintf("%.0f/s", w.OpsPerSec), w.OpsPerSec >= 4000 && w.Errors == 0},
			target{"webhook p99", "< 15 ms", fmt.Sprintf("%.1f ms", w.P99), w.P99 < 15})
	}
	if l := r.find("2 create"); l != nil {
		r.Targets = append(r.Targets, target{"create at 200 ms, 512 in flight", ">= 90% of 2560/s",
			fmt.Sprintf("%.0f/s (%.0f%%)", l.OpsPerSec, l.LittleEfficiency*100), l.LittleEfficiency >= 0.9 && l.Errors == 0})
	}
	if s := r.find("4 duplicate"); s != nil {
		r.Targets = append(r.Targets, target{"duplicate storm", "exactly once", s.Note, !strings.HasPrefix(s.Note, "NOT")})
	}
	r.Targets = append(r.Targets,
		target{"service RSS idle", "< 50 MB", fmt.Sprintf("%.1f MB", r.Memory.IdleRSSMB), r.Memory.IdleRSSMB < 50},
		target{"service RSS peak under load", "< 150 MB", fmt.Sprintf("%.1f MB", r.Memory.PeakRSSMB), r.Memory.PeakRSSMB < 150})
}

func (r *report) print(w io.Writer) {
	fmt.Fprintf(w, "\no2obench — %d cores, %s/%s, %s, PostgreSQL %s, %s per scenario\n\n",
		r.Machine.Cores, r.Machine.GOOS, r.Machine.GOARCH, r.Machine.Go, r.Machine.Postgres, r.Duration)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tconc\tops\tops/s\tp50 ms\tp90 ms\tp99 ms\tmax ms\terrors\tsvc/raw\tLittle eff\tRSS MB\t")
	for _, s := range r.Scenarios {
		ratio, eff := "", ""
		if s.ServiceOverRaw > 0 {
			ratio = fmt.Sprintf("%.2f", s.ServiceOverRaw)
		}
		if s.LittleEfficiency > 0 {
			eff = fmt.Sprintf("%.0f%%", s.LittleEfficiency*100)
		}
		rss := ""
		if s.RSSAfterMB > 0 {
			rss = fmt.Sprintf("%.1f", s.RSSAfterMB)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.0f\t%.2f\t%.2f\t%.2f\t%.2f\t%d\t%s\t%s\t%s\t\n", s.Name, s.Concurrency, s.Ops,
			s.OpsPerSec, s.P50, s.P90, s.P99, s.Max, s.Errors, ratio, eff, rss)
	}
	tw.Flush()
	for _, s := range r.Scenarios {
		if s.Note != "" {
			fmt.Fprintf(w, "  %s: %s\n", s.Name, s.Note)
		}
		if s.FirstError != "" {
			fmt.Fprintf(w, "  %s: first error: %s\n", s.Name, s.FirstError)
		}
	}
	fmt.Fprintf(w, "\nservice RSS: idle %.1f MB, peak %.1f MB\n\ntargets (README.md, Performance):\n", r.Memory.IdleRSSMB, r.Memory.PeakRSSMB)
	for _, t := range r.Targets {
		mark := "MET "
		if !t.Met {
			mark = "MISS"
		}
		fmt.Fprintf(w, "  [%s] %-32s %-18s got %s\n", mark, t.What, t.Target, t.Got)
	}
}

func (r *report) write(path string) error {
	r.When = time.Now().UTC()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	raw, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(raw, '\n'), 0o644)
}
