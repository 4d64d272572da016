package main

import (
	"context"
	"errors"
	"math"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"
)

// result is one scenario's measurement. Latencies are in milliseconds.
type result struct {
	Name        string  `json:"name"`
	Concurrency int     `json:"concurrency"`
	Ops         int     `json:"ops"`
	Errors      int     `json:"errors"`
	Seconds     float64 `json:"seconds"`
	OpsPerSec   float64 `json:"ops_per_sec"`
	P50         float64 `json:"p50_ms"`
	P90         float64 `json:"p90_ms"`
	P99         float64 `json:"p99_ms"`
	Max         float64 `json:"max_ms"`
	// Filled in by the scenarios where they apply.
	RawOpsPerSec     float64 `json:"raw_ops_per_sec,omitempty"`
	ServiceOverRaw   float64 `json:"service_over_raw,omitempty"`
	LittleBound      float64 `json:"littles_law_bound_per_sec,omitempty"`
	LittleEfficiency float64 `json:"littles_law_efficiency,omitempty"`
	RSSAfterMB       float64 `json:"service_rss_after_mb,omitempty"`
	// The ceiling's ratios (report.setCeiling): OverCeiling is ops/s ÷ pgbench's tps, TxOverCeiling
	// counts the TxPerOp database transactions each operation commits, (ops/s × TxPerOp) ÷ tps.
	TxPerOp       int     `json:"db_transactions_per_op,omitempty"`
	OverCeiling   float64 `json:"ops_over_ceiling_tps,omitempty"`
	TxOverCeiling float64 `json:"transactions_over_ceiling_tps,omitempty"`
	Cost          *cost   `json:"cost_per_request,omitempty"`
	Note          string  `json:"note,omitempty"`
	FirstError    string  `json:"first_error,omitempty"`
}

// load runs op from concurrency workers until duration has passed (or op reports errExhausted) and
// measures every call. A call that errs counts as an error and its latency is kept too.
func load(ctx context.Context, name string, concurrency int, duration time.Duration, op func(ctx context.Context, worker int) error) result {
	ctx, cancel := context.WithTimeout(ctx, duration)
	defer cancel()
	lat := make([][]time.Duration, concurrency)
	errs := make([]int, concurrency)
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < concurrency; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for ctx.Err() == nil {
				t0 := time.Now()
				err := op(ctx, w)
				if errors.Is(err, errExhausted) {
					return
				}
				if ctx.Err() != nil && err != nil {
					return // cut off by the deadline: neither a success nor a fault
				}
				lat[w] = append(lat[w], time.Since(t0))
				if err != nil {
					errs[w]++
					once.Do(func() { firstErr = err })
				}
			}
		}(w)
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()

	var all []time.Duration
	r := result{Name: name, Concurrency: concurrency, Seconds: round(elapsed, 2)}
	for w := range lat {
		all = append(all, lat[w]...)
		r.Errors += errs[w]
	}
	if firstErr != nil {
		r.FirstError = firstErr.Error()
	}
	r.Ops = len(all)
	if r.Ops == 0 {
		return r
	}
	slices.Sort(all)
	r.OpsPerSec = round(float64(r.Ops-r.Errors)/elapsed, 0)
	r.P50, r.P90, r.P99 = percentile(all, 0.50), percentile(all, 0.90), percentile(all, 0.99)
	r.Max = percentile(all, 1)
	return r
}

// percentile is the exact p-quantile (nearest rank) of sorted latencies, in milliseconds: every
// sample is kept and sorted, so there is no histogram error at p99.9.
func percentile(sorted []time.Duration, p float64) float64 {
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return round(float64(sorted[min(max(i, 0), len(sorted)-1)].Microseconds())/1000, 2)
}

func round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}

// newClient is a keep-alive HTTP client sized for concurrency connections to one host.
func newClient(concurrency int) *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        concurrency,
			MaxIdleConnsPerHost: concurrency,
			IdleConnTimeout:     90 * time.Second,
		},
	}
}
