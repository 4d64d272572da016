package main

import (
	"context"
	"slices"
	"sync"
	"time"
)

// openFractions are the loads of the open-loop scenarios, as fractions of the operation's closed-loop
// throughput in the same run: latency at a steady load, not at saturation.
var openFractions = []float64{0.25, 0.50, 0.75}

// openResult is one open-loop run. Requests start on a fixed schedule, each in its own goroutine,
// whatever the service does: a slow answer cannot hold back the requests behind it, as it does in a
// closed loop (coordinated omission). Each latency runs from the instant its request was due, so a
// request the generator itself started late counts its lateness too. Latencies in milliseconds.
type openResult struct {
	Name       string  `json:"name"`
	Fraction   float64 `json:"fraction_of_max"`
	MaxPerSec  float64 `json:"closed_loop_ops_per_sec"`
	Rate       float64 `json:"target_per_sec"`
	Seconds    float64 `json:"seconds"` // until the last answer
	Scheduled  int     `json:"scheduled"`
	Completed  int     `json:"completed"` // without error
	Failed     int     `json:"failed"`
	Achieved   float64 `json:"achieved_per_sec"` // completed ÷ seconds
	P50        float64 `json:"p50_ms"`
	P99        float64 `json:"p99_ms"`
	P999       float64 `json:"p99_9_ms"`
	Max        float64 `json:"max_ms"`
	MaxLate    float64 `json:"generator_max_late_ms"` // the generator's own lag: large values void the row
	Cost       *cost   `json:"cost_per_request,omitempty"`
	FirstError string  `json:"first_error,omitempty"`
}

// openLoop starts rate requests a second for d and waits for every answer. A failed request keeps its
// latency among the others (a timeout is a 30 s latency, not a missing sample).
func openLoop(ctx context.Context, name string, rate float64, d time.Duration, op func(context.Context) error) openResult {
	r := openResult{Name: name, Rate: round(rate, 0)}
	n := int(rate * d.Seconds())
	if n == 0 {
		return r
	}
	interval := time.Duration(float64(time.Second) / rate)
	lat := make([]time.Duration, n)
	failed := make([]bool, n)
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	var late time.Duration
	start := time.Now()
	for i := 0; i < n && ctx.Err() == nil; i++ {
		due := start.Add(time.Duration(i) * interval)
		if err := sleep(ctx, time.Until(due)); err != nil {
			break
		}
		late = max(late, time.Since(due))
		r.Scheduled++
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := op(ctx)
			lat[i] = time.Since(due)
			if err != nil {
				failed[i] = true
				once.Do(func() { firstErr = err })
			}
		}()
	}
	wg.Wait()
	if r.Scheduled == 0 {
		return r
	}

	lat = lat[:r.Scheduled]
	var last time.Duration // the last answer, from start
	for i, l := range lat {
		last = max(last, time.Duration(i)*interval+l)
		if failed[i] {
			r.Failed++
		}
	}
	r.Completed = r.Scheduled - r.Failed
	if firstErr != nil {
		r.FirstError = firstErr.Error()
	}
	r.Seconds = round(last.Seconds(), 2)
	r.Achieved = round(float64(r.Completed)/last.Seconds(), 1)
	r.MaxLate = round(float64(late.Microseconds())/1000, 2)
	slices.Sort(lat)
	r.P50, r.P99, r.P999, r.Max = percentile(lat, 0.50), percentile(lat, 0.99), percentile(lat, 0.999), percentile(lat, 1)
	return r
}
