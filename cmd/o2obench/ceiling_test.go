package main

import (
	"testing"
	"time"
)

func TestParsePgbench(t *testing.T) {
	for name, out := range map[string]string{
		"15": `transaction type: <builtin: TPC-B (sort of)>
scaling factor: 32
number of transactions actually processed: 13203
number of failed transactions: 2 (0.015%)
latency average = 24.375 ms
initial connection time = 95.027 ms
tps = 1312.842921 (without initial connection time)
`,
		"13": `number of transactions actually processed: 13203
latency average = 24.375 ms
tps = 1300.000000 (including connections establishing)
tps = 1312.842921 (excluding connections establishing)
`,
	} {
		var c ceiling
		if err := parsePgbench([]byte(out), &c); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if c.TPS != 1312.842921 || c.Transactions != 13203 || c.LatencyAvgMs != 24.375 {
			t.Errorf("%s: got %+v", name, c)
		}
	}
	var c ceiling
	if err := parsePgbench([]byte("pgbench: error: connection refused\n"), &c); err == nil {
		t.Error("no tps line: want an error")
	}
}

func TestPercentileIsNearestRank(t *testing.T) {
	var lat []time.Duration
	for i := 1; i <= 1000; i++ {
		lat = append(lat, time.Duration(i)*time.Millisecond)
	}
	for p, want := range map[float64]float64{0.5: 500, 0.99: 990, 0.999: 999, 1: 1000} {
		if got := percentile(lat, p); got != want {
			t.Errorf("p%v = %v ms, want %v", p*100, got, want)
		}
	}
	if got := percentile(lat[:1], 0.999); got != 1 {
		t.Errorf("one sample: %v", got)
	}
}

func TestOnlySelectsByWords(t *testing.T) {
	want := wanted("ceiling, open")
	for scenario, selected := range map[string]bool{"ceiling": true, "open": true, "create": false, "raw": false} {
		if want(scenario) != selected {
			t.Errorf("-only 'ceiling, open' selects %s: %v", scenario, !selected)
		}
	}
	if !wanted("")("storm") {
		t.Error("no -only selects everything")
	}
}
