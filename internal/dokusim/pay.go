package dokusim

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/google/uuid"

	"github.com/merchant/o2o/internal/doku"
	"github.com/merchant/o2o/internal/invoice"
)

type payRequest struct {
	// PaymentCode is what the customer tells the cashier; InvoiceNumber finds the code for them.
	PaymentCode   string `json:"payment_code"`
	InvoiceNumber string `json:"invoice_number"`
	// Amount, when given, must be the code's amount: a cashier takes exactly that.
	Amount *int64 `json:"amount"`
	// Late pays a code that has already expired: a payment DOKU settles after the code's expiry.
	Late bool `json:"late"`
}

// pay "pays at the counter": it records the payment and delivers a signed notification now, then
// retries in the background on the retry schedule while deliveries fail.
func (s *Simulator) pay(w http.ResponseWriter, r *http.Request) {
	var req payRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<16))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || (req.PaymentCode == "") == (req.InvoiceNumber == "") {
		dokuError(w, http.StatusBadRequest, "invalid_request", `body must be {"payment_code": "..."} or {"invoice_number": "..."}, with "amount": N optionally`)
		return
	}
	t, refused := s.takePayment(req)
	if refused != nil {
		writeRaw(w, refused.status, refused.body)
		return
	}
	d := s.send(r.Context(), t.notification)
	writeControl(w, http.StatusOK, map[string]any{
		"invoice_number": t.invoiceNumber,
		"payment_code":   t.code,
		"transaction_id": t.trxID,
		"notification":   d,
	})
}

// taken is a payment the counter took, with the notification DOKU sends for it.
type taken struct {
	notification               []byte
	invoiceNumber, code, trxID string
}

// takePayment records a payment at the counter as the cashier would take it — the exact amount, a
// code not expired (unless late) and not yet paid (unless reusable) — and returns the notification
// DOKU sends for it, or why the cashier refused.
func (s *Simulator) takePayment(req payRequest) (*taken, *answer) {
	no := func(status int, code, message string) (*taken, *answer) {
		a := refusal(status, code, message)
		return nil, &a
	}
	now := s.now().UTC().Truncate(time.Second)
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.state.byCode[req.PaymentCode]
	if req.InvoiceNumber != "" {
		o = s.state.Orders[req.InvoiceNumber]
	}
	switch {
	case o == nil:
		return no(http.StatusNotFound, "not_found", "unknown payment code or invoice number")
	case req.Amount != nil && *req.Amount != o.Amount:
		return no(http.StatusBadRequest, "amount_mismatch", fmt.Sprintf("the cashier asks for exactly %d (POST /simulator/notifications sends any notification)", o.Amount))
	case !req.Late && s.statusOf(o, now) == invoice.DokuExpired:
		return no(http.StatusConflict, "expired", "the payment code has expired")
	case len(o.Payments) > 0 && !o.Reusable:
		return no(http.StatusConflict, "already_paid", "the payment code has already been paid")
	}
	p := payment{TrxID: fmt.Sprintf("TRX%08d", s.state.next()), At: now}
	o.Payments = append(o.Payments, p)
	if err := s.save(); err != nil {
		o.Payments = o.Payments[:len(o.Payments)-1]
		return no(http.StatusInternalServerError, "internal_error", "state could not be saved")
	}
	body := NotificationBody(Payment{InvoiceNumber: o.InvoiceNumber, Channel: o.Channel, PaymentCode: o.PaymentCode,
		Amount: o.Amount, At: p.At, TransactionID: p.TrxID, OriginalRequestID: o.RequestID})
	return &taken{notification: body, invoiceNumber: o.InvoiceNumber, code: o.PaymentCode, trxID: p.TrxID}, nil
}

// notifyRequest describes a notification to send as DOKU would, whatever the simulator's orders say.
type notifyRequest struct {
	InvoiceNumber string          `json:"invoice_number"`
	Amount        json.RawMessage `json:"amount"`
	PaymentCode   string          `json:"payment_code"`
	Channel       invoice.Channel `json:"channel"`
	TransactionID string          `json:"transaction_id"`
	Status        string          `json:"status"`
}

// notify sends a correctly signed notification of any payment — another amount, another code, an
// invoice DOKU never issued — so that what the service does with one it must not simply accept can
// be tried by hand. The simulator's own orders are not touched.
func (s *Simulator) notify(w http.ResponseWriter, r *http.Request) {
	var req notifyRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<16))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || req.InvoiceNumber == "" || len(req.Amount) == 0 {
		dokuError(w, http.StatusBadRequest, "invalid_request",
			`body must be {"invoice_number": "...", "amount": N}, optionally with "payment_code", "channel", "transaction_id", "status"`)
		return
	}
	s.mu.Lock()
	o := s.state.Orders[req.InvoiceNumber]
	seq := s.state.next()
	_ = s.save()
	s.mu.Unlock()
	p := Payment{InvoiceNumber: req.InvoiceNumber, Channel: req.Channel, PaymentCode: req.PaymentCode, At: s.now(),
		TransactionID: req.TransactionID, Status: req.Status, RawAmount: req.Amount}
	if o != nil { // fill what was not given from the order, as DOKU would report it
		p.Channel, p.PaymentCode, p.OriginalRequestID = or(p.Channel, o.Channel), or(p.PaymentCode, o.PaymentCode), o.RequestID
	}
	p.Channel = or(p.Channel, invoice.ChannelAlfa)
	p.TransactionID = or(p.TransactionID, fmt.Sprintf("TRX%08d", seq))
	writeControl(w, http.StatusOK, map[string]any{"notification": s.send(r.Context(), NotificationBody(p))})
}

func or[T ~string](v, fallback T) T {
	if v != "" {
		return v
	}
	return fallback
}

// send delivers a notification now (or after the configured delay, or never when dropped) and
// schedules its retries while it is not acknowledged.
func (s *Simulator) send(ctx context.Context, body []byte) *delivery {
	s.mu.Lock()
	drop, delay := s.faults.DropNotifications, time.Duration(s.faults.NotifyDelayMS)*time.Millisecond
	s.mu.Unlock()
	d := &delivery{RequestID: uuid.NewString(), body: body}
	switch {
	case drop:
		d.Dropped = true
	case delay > 0:
		// Delivered later, in the background, with retries as usual.
		d.Delayed = true
		s.later(delay, &delivery{RequestID: d.RequestID, body: d.body})
	default:
		s.deliver(ctx, d)
		if !d.Delivered {
			s.scheduleRetries(d)
		}
	}
	return d
}

// delivery is one notification and what happened to it.
type delivery struct {
	body       []byte
	first      time.Time
	RequestID  string `json:"request_id"`
	Attempts   int    `json:"attempts"`
	LastStatus int    `json:"last_status"`
	// Answer is the body of the last answer, so a person sees what the service said.
	Answer    json.RawMessage `json:"answer,omitempty"`
	Delivered bool            `json:"delivered"`
	Dropped   bool            `json:"dropped"`
	Delayed   bool            `json:"delayed"`
}

// later delivers d after delay, then retries on the schedule if it was not acknowledged.
func (s *Simulator) later(delay time.Duration, d *delivery) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		select {
		case <-s.stop:
			return
		case <-time.After(delay):
		}
		s.deliver(context.Background(), d)
		if !d.Delivered {
			s.scheduleRetries(d)
		}
	}()
}

type clockRequest struct {
	Advance string `json:"advance"`
	Reset   bool   `json:"reset"`
}

// advanceClock moves DOKU's clock: {"advance": "2h"} forward, {"advance": "-1h"} back (never before
// the real time: the simulator's clock only ever runs ahead of it), {"reset": true} back to the real
// time.
func (s *Simulator) advanceClock(w http.ResponseWriter, r *http.Request) {
	var req clockRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || req.Reset == (req.Advance != "") {
		dokuError(w, http.StatusBadRequest, "invalid_request", `body must be {"advance": "<Go duration, e.g. 2h or -30m>"} or {"reset": true}`)
		return
	}
	if req.Reset {
		s.offsetMu.Lock()
		s.clockOffset = 0
		s.offsetMu.Unlock()
		writeControl(w, http.StatusOK, map[string]string{"now": s.now().UTC().Format(time.RFC3339)})
		return
	}
	d, err := time.ParseDuration(req.Advance)
	if err != nil {
		dokuError(w, http.StatusBadRequest, "invalid_request", fmt.Sprintf("advance %q is not a Go duration such as 2h, 90m or -30m", req.Advance))
		return
	}
	s.offsetMu.Lock()
	if s.clockOffset+d < 0 {
		ahead := s.clockOffset
		s.offsetMu.Unlock()
		dokuError(w, http.StatusBadRequest, "invalid_request", fmt.Sprintf(
			"the clock is %s ahead of the real time and cannot go back further than that (before the real time, codes issued now would already be old); {\"reset\": true} sets it to the real time", ahead))
		return
	}
	s.clockOffset += d
	s.offsetMu.Unlock()
	writeControl(w, http.StatusOK, map[string]string{"now": s.now().UTC().Format(time.RFC3339)})
}

// deliver sends the notification once, signed with a fresh timestamp but the same Request-Id.
func (s *Simulator) deliver(ctx context.Context, d *delivery) {
	if d.first.IsZero() {
		d.first = time.Now()
	}
	d.Attempts++
	u, err := url.Parse(s.cfg.NotificationURL)
	if err != nil {
		return
	}
	req, err := http.NewRequestWithContext(context.WithoutCancel(ctx), http.MethodPost, s.cfg.NotificationURL, bytes.NewReader(d.body))
	if err != nil {
		return
	}
	// The timestamp is the real clock's, as DOKU's would be: Advance stands for time passing for the
	// codes, not for the receiver's clock.
	req.Header = doku.SignedHeaders([]byte(s.cfg.SecretKey), doku.Components{ClientID: s.cfg.ClientID, RequestID: d.RequestID,
		Timestamp: s.cfg.Now().UTC().Format(doku.TimestampLayout), Target: u.Path, Digest: doku.Digest(d.body)}, true)
	resp, err := s.client.Do(req)
	if err != nil {
		s.cfg.Logger.Warn().Err(err).Str("request_id", d.RequestID).Int("attempt", d.Attempts).Msg("notification delivery failed")
		d.LastStatus = 0
		return
	}
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	resp.Body.Close()
	d.LastStatus = resp.StatusCode
	if json.Valid(answer) {
		d.Answer = answer
	}
	d.Delivered = resp.StatusCode >= 200 && resp.StatusCode < 300
	s.cfg.Logger.Info().Str("request_id", d.RequestID).Int("attempt", d.Attempts).Int("status", resp.StatusCode).Msg("notification delivered")
}

func (s *Simulator) scheduleRetries(first *delivery) {
	// The retry goroutine works on its own copy: the caller is still encoding `first`.
	d := &delivery{RequestID: first.RequestID, body: first.body, first: first.first, Attempts: first.Attempts}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for _, offset := range s.cfg.RetrySchedule {
			wait := time.Until(d.first.Add(offset))
			select {
			case <-s.stop:
				return
			case <-time.After(wait):
			}
			s.deliver(context.Background(), d)
			if d.Delivered {
				return
			}
		}
		s.cfg.Logger.Warn().Str("request_id", d.RequestID).Msg("notification given up after the last retry")
	}()
}
