// Package dokusim is a DOKU O2O simulator: both generate-payment-code endpoints and check status with
// DOKU's signature verification and Request-Id idempotency, plus a control API that "pays at the
// counter" by sending a signed notification and retrying it on DOKU's schedule. It runs as
// cmd/dokusim for local stacks and in-process (httptest) for tests.
package dokusim

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"
	"github.com/rs/zerolog"

	"github.com/merchant/o2o/internal/doku"
	"github.com/merchant/o2o/internal/invoice"
)

// DefaultRetrySchedule is DOKU's: after a failed first delivery, tries at +30 min, +6 h and +12 h
// from the first attempt, then never again (REFERENCE.md §4).
var DefaultRetrySchedule = []time.Duration{30 * time.Minute, 6 * time.Hour, 12 * time.Hour}

// Config configures a Simulator.
type Config struct {
	ClientID  string
	SecretKey string
	// NotificationURL is where payment notifications are sent; its path is the signed Request-Target.
	NotificationURL string
	// RetrySchedule is when failed deliveries are retried, as offsets from the first attempt.
	RetrySchedule []time.Duration
	Logger        zerolog.Logger
	// Now is the simulator's clock (tests move it to expire codes).
	Now func() time.Time
}

// Simulator is the DOKU simulator. Use it as an http.Handler; Close it to stop pending retries.
type Simulator struct {
	cfg    Config
	router http.Handler
	client *http.Client

	mu          sync.Mutex
	byRequestID map[string]*generation
	byInvoice   map[string]*order
	byCode      map[string]*order
	faults      Faults
	seq         int64
	clockOffset time.Duration // added to cfg.Now: tests move the simulator's clock to expire codes

	offsetMu sync.RWMutex

	generateCalls atomic.Int64
	statusCalls   atomic.Int64

	stop    chan struct{}
	stopped sync.Once
	wg      sync.WaitGroup
}

type generation struct {
	bodyHash [32]byte
	response []byte
}

type order struct {
	invoiceNumber string
	channel       invoice.Channel
	amount        int64
	requestID     string
	paymentCode   string
	info          string
	reusable      bool
	createdAt     time.Time
	expiresAt     time.Time
	payments      []payment
}

type payment struct {
	trxID string
	at    time.Time
}

// New returns a Simulator.
func New(cfg Config) *Simulator {
	if cfg.RetrySchedule == nil {
		cfg.RetrySchedule = DefaultRetrySchedule
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Simulator{
		cfg:         cfg,
		client:      &http.Client{Timeout: 10 * time.Second},
		byRequestID: map[string]*generation{},
		byInvoice:   map[string]*order{},
		byCode:      map[string]*order{},
		stop:        make(chan struct{}),
	}
	r := chi.NewRouter()
	r.Post(doku.PathAlfaGenerate, s.generate(invoice.ChannelAlfa))
	r.Post(doku.PathIndomaretGenerate, s.generate(invoice.ChannelIndomaret))
	r.Get(doku.PathStatusPrefix+"{id}", s.checkStatus)
	r.Post("/simulator/payments", s.pay)
	r.Post("/simulator/clock", s.advanceClock)
	r.Get("/simulator/faults", s.getFaults)
	r.Put("/simulator/faults", s.putFaults)
	r.Get("/simulator/how-to-pay/{code}", s.howToPayPage)
	r.Get("/simulator/how-to-pay-api/{code}", s.howToPayAPI)
	r.Get("/healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	s.router = r
	return s
}

func (s *Simulator) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.router.ServeHTTP(w, r) }

// Close stops scheduled notification retries and waits for deliveries in progress.
func (s *Simulator) Close() {
	s.stopped.Do(func() { close(s.stop) })
	s.wg.Wait()
}

// now is the simulator's clock. Callers need not hold s.mu: the offset is read under it.
func (s *Simulator) now() time.Time {
	s.offsetMu.RLock()
	defer s.offsetMu.RUnlock()
	return s.cfg.Now().Add(s.clockOffset)
}

// Advance moves the simulator's clock forward by d (codes expire on this clock).
func (s *Simulator) Advance(d time.Duration) {
	s.offsetMu.Lock()
	s.clockOffset += d
	s.offsetMu.Unlock()
}

// GenerateCalls is how many generate requests arrived (valid or not, replays included).
func (s *Simulator) GenerateCalls() int64 { return s.generateCalls.Load() }

// PaymentCode is the code the simulator issued for an invoice number ("" if none).
func (s *Simulator) PaymentCode(invoiceNumber string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if o := s.byInvoice[invoiceNumber]; o != nil {
		return o.paymentCode
	}
	return ""
}

// Issued is how many distinct codes the simulator has issued.
func (s *Simulator) Issued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.byCode)
}

// StatusCalls is how many check-status requests arrived.
func (s *Simulator) StatusCalls() int64 { return s.statusCalls.Load() }

// dokuError writes DOKU's error shape.
func dokuError(w http.ResponseWriter, status int, code, message string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": message}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, _ := json.Marshal(v)
	writeRaw(w, status, body)
}

func writeRaw(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// verify checks a request's headers and signature the way DOKU does: the target is the request path
// and the digest covers the raw body; a GET has no Digest line.
func (s *Simulator) verify(r *http.Request, body []byte) error {
	h := r.Header
	c := doku.Components{
		ClientID:  h.Get(doku.HeaderClientID),
		RequestID: h.Get(doku.HeaderRequestID),
		Timestamp: h.Get(doku.HeaderRequestTimestamp),
		Target:    r.URL.Path,
	}
	sig := h.Get(doku.HeaderSignature)
	if c.ClientID == "" || c.RequestID == "" || c.Timestamp == "" || sig == "" {
		return errors.New("missing Client-Id, Request-Id, Request-Timestamp or Signature header")
	}
	if len(c.RequestID) > 128 {
		return errors.New("Request-Id is longer than 128 characters")
	}
	if _, err := time.Parse(doku.TimestampLayout, c.Timestamp); err != nil {
		return errors.New("Request-Timestamp is not in yyyy-MM-ddTHH:mm:ssZ format")
	}
	if c.ClientID != s.cfg.ClientID {
		return errors.New("unknown Client-Id")
	}
	if r.Method != http.MethodGet {
		c.Digest = doku.Digest(body)
	}
	if doku.Sign([]byte(s.cfg.SecretKey), c) != sig {
		return errors.New("Invalid Header Signature")
	}
	return nil
}

type generateRequest struct {
	Order struct {
		InvoiceNumber string          `json:"invoice_number"`
		Amount        json.RawMessage `json:"amount"`
	} `json:"order"`
	O2OInfo struct {
		ExpiredTime    *int   `json:"expired_time"`
		ReusableStatus *bool  `json:"reusable_status"`
		Info           string `json:"info"`
	} `json:"online_to_offline_info"`
	Customer struct {
		Name  string `json:"name"`
		Email string `json:"email"`
	} `json:"customer"`
}

func (s *Simulator) generate(ch invoice.Channel) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.generateCalls.Add(1)
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			dokuError(w, http.StatusBadRequest, "invalid_request", "cannot read body")
			return
		}
		if err := s.verify(r, body); err != nil {
			dokuError(w, http.StatusUnauthorized, "invalid_signature", err.Error())
			return
		}
		if fault, ok := s.takeFault(r.Context()); ok {
			fault(w)
			return
		}
		requestID := r.Header.Get(doku.HeaderRequestID)
		hash := sha256.Sum256(body)

		s.mu.Lock()
		if g, ok := s.byRequestID[requestID]; ok {
			s.mu.Unlock()
			if g.bodyHash != hash {
				dokuError(w, http.StatusBadRequest, "invalid_request", "Request-Id was already used with a different request body")
				return
			}
			// DOKU's idempotency: the original response, with 409.
			writeRaw(w, http.StatusConflict, g.response)
			return
		}
		var req generateRequest
		if msg := decodeGenerate(body, &req); msg != "" {
			s.mu.Unlock()
			dokuError(w, http.StatusBadRequest, "invalid_parameter", msg)
			return
		}
		amount, _ := parseSimAmount(req.Order.Amount)
		if _, taken := s.byInvoice[req.Order.InvoiceNumber]; taken {
			s.mu.Unlock()
			dokuError(w, http.StatusBadRequest, "duplicate_invoice", "invoice_number has already been used")
			return
		}
		now := s.now().UTC().Truncate(time.Second)
		expiry := 60
		if req.O2OInfo.ExpiredTime != nil {
			expiry = *req.O2OInfo.ExpiredTime
		}
		s.seq++
		o := &order{
			invoiceNumber: req.Order.InvoiceNumber,
			channel:       ch,
			amount:        amount,
			requestID:     requestID,
			paymentCode:   paymentCode(ch, s.seq),
			info:          req.O2OInfo.Info,
			reusable:      req.O2OInfo.ReusableStatus != nil && *req.O2OInfo.ReusableStatus,
			createdAt:     now,
			expiresAt:     now.Add(time.Duration(expiry) * time.Minute),
		}
		base := "http://" + r.Host
		resp, _ := json.Marshal(map[string]any{
			"order": map[string]any{"invoice_number": o.invoiceNumber, "amount": o.amount},
			"online_to_offline_info": map[string]any{
				"payment_code":    o.paymentCode,
				"info":            o.info,
				"how_to_pay_page": base + "/simulator/how-to-pay/" + o.paymentCode,
				"how_to_pay_api":  base + "/simulator/how-to-pay-api/" + o.paymentCode,
				"created_date":    doku.FormatWIB(o.createdAt),
				"expired_date":    doku.FormatWIB(o.expiresAt),
			},
		})
		s.byRequestID[requestID] = &generation{bodyHash: hash, response: resp}
		s.byInvoice[o.invoiceNumber] = o
		s.byCode[o.paymentCode] = o
		lost := s.takeLostResponse()
		s.mu.Unlock()
		if lost {
			s.hang(r.Context())
			return
		}
		writeRaw(w, http.StatusOK, resp)
	}
}

// decodeGenerate validates a generate body the way DOKU documents its fields, returning DOKU-style
// messages.
func decodeGenerate(body []byte, req *generateRequest) string {
	if err := json.Unmarshal(body, req); err != nil {
		return "request body is not valid JSON"
	}
	n := req.Order.InvoiceNumber
	switch {
	case n == "":
		return "order.invoice_number is mandatory"
	case len(n) > 64:
		return "order.invoice_number must be at most 64 characters"
	}
	if _, err := parseSimAmount(req.Order.Amount); err != nil {
		return "order.amount " + err.Error()
	}
	if req.O2OInfo.ExpiredTime != nil && (*req.O2OInfo.ExpiredTime < 1 || *req.O2OInfo.ExpiredTime > 99_999_999) {
		return "online_to_offline_info.expired_time must be between 1 and 99999999 minutes"
	}
	if strings.TrimSpace(req.Customer.Name) == "" {
		return "customer.name is mandatory"
	}
	return ""
}

func parseSimAmount(raw json.RawMessage) (int64, error) {
	var n json.Number
	if err := json.Unmarshal(raw, &n); err != nil || strings.ContainsAny(string(raw), `."eE`) {
		return 0, errors.New("must be an integer")
	}
	v, err := n.Int64()
	if err != nil || v <= 0 || v > 999_999_999_999 {
		return 0, errors.New("must be a positive integer of at most 12 digits")
	}
	return v, nil
}

// paymentCode is a company prefix (BIN) followed by a unique part, as DOKU's codes are; Alfa's and
// Indomaret's prefixes differ so a code alone tells the channel in logs.
func paymentCode(ch invoice.Channel, seq int64) string {
	prefix := "88880"
	if ch == invoice.ChannelIndomaret {
		prefix = "77770"
	}
	return fmt.Sprintf("%s%011d", prefix, seq)
}

func (s *Simulator) statusOf(o *order, now time.Time) string {
	switch {
	case len(o.payments) > 0:
		return invoice.DokuSuccess
	case !now.Before(o.expiresAt):
		return invoice.DokuExpired
	}
	return invoice.DokuPending
}

func (s *Simulator) checkStatus(w http.ResponseWriter, r *http.Request) {
	s.statusCalls.Add(1)
	if err := s.verify(r, nil); err != nil {
		dokuError(w, http.StatusUnauthorized, "invalid_signature", err.Error())
		return
	}
	if fault, ok := s.takeFault(r.Context()); ok {
		fault(w)
		return
	}
	id := chi.URLParam(r, "id")
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.byInvoice[id]
	if o == nil {
		for _, cand := range s.byInvoice {
			if cand.requestID == id {
				o = cand
				break
			}
		}
	}
	if o == nil {
		dokuError(w, http.StatusNotFound, "invoice_not_found", "Order not found")
		return
	}
	now := s.now()
	tx := map[string]any{"status": s.statusOf(o, now), "original_request_id": o.requestID}
	var ids []map[string]string
	if n := len(o.payments); n > 0 {
		last := o.payments[n-1]
		tx["date"] = last.at.Format(doku.TimestampLayout)
		ids = identifiers(o.channel, last.trxID)
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"order":       map[string]any{"invoice_number": o.invoiceNumber, "amount": o.amount},
		"transaction": tx,
		"service":     map[string]string{"id": doku.ServiceO2O},
		"acquirer":    map[string]string{"id": doku.AcquirerID(o.channel)},
		"channel":     map[string]string{"id": doku.ChannelID(o.channel)},
		"online_to_offline_info": map[string]any{
			"created_date":    doku.FormatWIB(o.createdAt),
			"expired_date":    doku.FormatWIB(o.expiresAt),
			"reusable_status": fmt.Sprint(o.reusable), // a string here, as DOKU sends it
		},
		"online_to_offline_payment": map[string]any{"identifier": ids},
	})
}

func identifiers(ch invoice.Channel, trxID string) []map[string]string {
	agent := "ALFAMART"
	if ch == invoice.ChannelIndomaret {
		agent = "INDOMARET"
	}
	return []map[string]string{
		{"name": "AGENT_ID", "value": agent},
		{"name": "AGENT_STORE_ID", "value": "SIM-STORE-01"},
		{"name": "AGENT_TRX_ID", "value": trxID},
	}
}

func (s *Simulator) howToPayPage(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	fmt.Fprintf(w, "<!doctype html><title>How to pay</title><p>Tell the cashier you want to pay a DOKU payment code, then give code <b>%s</b>.</p>",
		html.EscapeString(chi.URLParam(r, "code")))
}

func (s *Simulator) howToPayAPI(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"payment_instruction": []map[string]any{{
		"channel": "STORE",
		"step":    []string{"Go to the cashier", "Say you want to pay a DOKU payment code", "Give code " + chi.URLParam(r, "code"), "Pay and keep the receipt"},
	}}})
}

type payRequest struct {
	PaymentCode string `json:"payment_code"`
	Amount      *int64 `json:"amount"`
	// Late pays a code that has already expired: a payment DOKU settles after the code's expiry.
	Late bool `json:"late"`
}

// pay "pays at the counter": it records the payment and delivers a signed notification now, then
// retries in the background on the retry schedule while deliveries fail.
func (s *Simulator) pay(w http.ResponseWriter, r *http.Request) {
	var req payRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&req); err != nil || req.PaymentCode == "" {
		dokuError(w, http.StatusBadRequest, "invalid_request", `body must be {"payment_code": "...", "amount": N}`)
		return
	}
	now := s.now().UTC().Truncate(time.Second)
	s.mu.Lock()
	o := s.byCode[req.PaymentCode]
	switch {
	case o == nil:
		s.mu.Unlock()
		dokuError(w, http.StatusNotFound, "not_found", "unknown payment code")
		return
	case req.Amount != nil && *req.Amount != o.amount:
		s.mu.Unlock()
		dokuError(w, http.StatusBadRequest, "amount_mismatch", fmt.Sprintf("the cashier asks for exactly %d", o.amount))
		return
	case !req.Late && s.statusOf(o, now) == invoice.DokuExpired:
		s.mu.Unlock()
		dokuError(w, http.StatusConflict, "expired", "the payment code has expired")
		return
	case len(o.payments) > 0 && !o.reusable:
		s.mu.Unlock()
		dokuError(w, http.StatusConflict, "already_paid", "the payment code has already been paid")
		return
	}
	s.seq++
	p := payment{trxID: fmt.Sprintf("TRX%08d", s.seq), at: now}
	o.payments = append(o.payments, p)
	body := NotificationBody(Payment{InvoiceNumber: o.invoiceNumber, Channel: o.channel, PaymentCode: o.paymentCode,
		Amount: o.amount, At: p.at, TransactionID: p.trxID, OriginalRequestID: o.requestID})
	invoiceNumber := o.invoiceNumber
	drop := s.faults.DropNotifications
	delay := time.Duration(s.faults.NotifyDelayMS) * time.Millisecond
	s.mu.Unlock()

	d := &delivery{RequestID: uuid.NewString(), body: body}
	result := map[string]any{
		"invoice_number": invoiceNumber,
		"payment_code":   req.PaymentCode,
		"transaction_id": p.trxID,
		"notification":   d,
	}
	switch {
	case drop:
		d.Dropped = true
		writeJSON(w, http.StatusOK, result)
		return
	case delay > 0:
		// Delivered later, in the background, with retries as usual.
		d.Delayed = true
		s.later(delay, &delivery{RequestID: d.RequestID, body: d.body})
		writeJSON(w, http.StatusOK, result)
		return
	}
	s.deliver(r.Context(), d)
	if !d.Delivered {
		s.scheduleRetries(d)
	}
	writeJSON(w, http.StatusOK, result)
}

// delivery is one notification and what happened to it.
type delivery struct {
	body       []byte
	first      time.Time
	RequestID  string `json:"request_id"`
	Attempts   int    `json:"attempts"`
	LastStatus int    `json:"last_status"`
	Delivered  bool   `json:"delivered"`
	Dropped    bool   `json:"dropped"`
	Delayed    bool   `json:"delayed"`
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
}

func (s *Simulator) advanceClock(w http.ResponseWriter, r *http.Request) {
	var req clockRequest
	err := json.NewDecoder(io.LimitReader(r.Body, 1<<10)).Decode(&req)
	d, perr := time.ParseDuration(req.Advance)
	if err != nil || perr != nil || d < 0 {
		dokuError(w, http.StatusBadRequest, "invalid_request", `body must be {"advance": "<Go duration, e.g. 2h>"}`)
		return
	}
	s.Advance(d)
	writeJSON(w, http.StatusOK, map[string]string{"now": s.now().UTC().Format(time.RFC3339)})
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
	req.Header = doku.SignedHeaders([]byte(s.cfg.SecretKey), doku.Components{ClientID: s.cfg.ClientID, RequestID: d.RequestID,
		Timestamp: s.now().UTC().Format(doku.TimestampLayout), Target: u.Path, Digest: doku.Digest(d.body)}, true)
	resp, err := s.client.Do(req)
	if err != nil {
		s.cfg.Logger.Warn().Err(err).Str("request_id", d.RequestID).Int("attempt", d.Attempts).Msg("notification delivery failed")
		d.LastStatus = 0
		return
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	resp.Body.Close()
	d.LastStatus = resp.StatusCode
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
