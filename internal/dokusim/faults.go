package dokusim

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"time"
)

// Faults are injected into DOKU's API endpoints (generate and check status) so tests and demos can
// drive every failure path over real HTTP.
type Faults struct {
	// LatencyMS delays every API answer.
	LatencyMS int `json:"latency_ms"`
	// FailNext makes the next N API calls answer FailStatus with FailMessage in DOKU's error body.
	FailNext    int    `json:"fail_next"`
	FailStatus  int    `json:"fail_status"`
	FailMessage string `json:"fail_message"`
	// FailWith200 sends those error bodies with HTTP 200, as DOKU does at times.
	FailWith200 bool `json:"fail_with_200"`
	// FailRetryAfter, in seconds, is sent as Retry-After with those failures (none when 0).
	FailRetryAfter int `json:"fail_retry_after"`
	// HangNext makes the next N API calls hang until the caller gives up (a timeout).
	HangNext int `json:"hang_next"`
	// LoseResponseNext makes the next N generate calls issue their code as usual and then hang
	// instead of answering: DOKU did the work, the merchant never heard.
	LoseResponseNext int `json:"lose_response_next"`
	// StatusAnswer, when set, is the transaction.status every check status answers with (FAILED, or a
	// status DOKU never documented), whatever the order's state.
	StatusAnswer string `json:"status_answer"`
	// HowToPayUnavailable makes how_to_pay_api answer 503: DOKU's instructions cannot be had.
	HowToPayUnavailable bool `json:"how_to_pay_unavailable"`
	// DropNotifications records payments but never sends their notifications.
	DropNotifications bool `json:"drop_notifications"`
	// NotifyDelayMS sends each notification this long after the payment instead of at once.
	NotifyDelayMS int `json:"notify_delay_ms"`
}

// SetFaults replaces the injected faults.
func (s *Simulator) SetFaults(f Faults) {
	s.mu.Lock()
	s.faults = f
	s.mu.Unlock()
}

// takeFault applies latency and, if a failure is due, returns the answer to send instead.
func (s *Simulator) takeFault(ctx context.Context) (func(http.ResponseWriter), bool) {
	s.mu.Lock()
	f := &s.faults
	latency := time.Duration(f.LatencyMS) * time.Millisecond
	var answer func(http.ResponseWriter)
	switch {
	case f.HangNext > 0:
		f.HangNext--
		answer = func(http.ResponseWriter) { s.hang(ctx) }
	case f.FailNext > 0:
		f.FailNext--
		status, msg, retry := f.FailStatus, f.FailMessage, f.FailRetryAfter
		if status == 0 {
			status = http.StatusServiceUnavailable
		}
		if msg == "" {
			msg = http.StatusText(status)
		}
		if f.FailWith200 {
			status = http.StatusOK
		}
		answer = func(w http.ResponseWriter) {
			if retry > 0 {
				w.Header().Set("Retry-After", strconv.Itoa(retry))
			}
			dokuError(w, status, "simulated_fault", msg)
		}
	}
	s.mu.Unlock()

	if latency > 0 {
		t := time.NewTimer(latency)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
	return answer, answer != nil
}

func (s *Simulator) getFaults(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	f := s.faults
	s.mu.Unlock()
	writeControl(w, http.StatusOK, f)
}

func (s *Simulator) putFaults(w http.ResponseWriter, r *http.Request) {
	var f Faults
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<16))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil || f.LatencyMS < 0 || f.FailNext < 0 || f.HangNext < 0 || f.LoseResponseNext < 0 || f.NotifyDelayMS < 0 ||
		f.FailRetryAfter < 0 {
		dokuError(w, http.StatusBadRequest, "invalid_request", "body must be a faults object with non-negative counts: "+errString(err))
		return
	}
	s.SetFaults(f)
	writeControl(w, http.StatusOK, f)
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// takeLostResponse reports whether this processed generate call's answer is to be lost.
func (s *Simulator) takeLostResponse() bool {
	if s.faults.LoseResponseNext > 0 { // s.mu is held by the caller
		s.faults.LoseResponseNext--
		return true
	}
	return false
}

// hang blocks until the caller gives up or the simulator closes.
func (s *Simulator) hang(ctx context.Context) {
	select {
	case <-ctx.Done():
	case <-s.stop:
	}
}
