// Package dokusim is a DOKU O2O simulator: both generate-payment-code endpoints and check status with
// DOKU's signature verification and Request-Id idempotency, plus a control API that "pays at the
// counter" by sending a signed notification and retrying it on DOKU's schedule. It runs as
// cmd/dokusim for local stacks and in-process (httptest) for tests.
//
// By default it is exactly as strict as DOKU documents itself and never kinder: a generate request
// lacking a field DOKU marks required is refused, a Request-Timestamp far from its clock is refused,
// and check status answers in DOKU's documented shape only — which does not say which payment was
// made. Anything looser is a Config knob a test turns on by name.
package dokusim

import (
	"crypto/hmac"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/rs/zerolog"

	"github.com/merchant/o2o/internal/doku"
	"github.com/merchant/o2o/internal/invoice"
)

// DefaultMaxClockSkew is how far a Request-Timestamp may be from the simulator's clock. DOKU documents
// that it checks the timestamp but not the window; five minutes is the common choice.
const DefaultMaxClockSkew = 5 * time.Minute

// Config configures a Simulator.
type Config struct {
	ClientID  string
	SecretKey string
	// NotificationURL is where payment notifications are sent; its path is the signed Request-Target.
	NotificationURL string
	// RetrySchedule is when failed deliveries are retried, as offsets from the first attempt (DOKU's:
	// +30 min, +6 h, +12 h — cmd/dokusim's default); none when empty.
	RetrySchedule []time.Duration
	Logger        zerolog.Logger
	// Now is the simulator's clock (tests move it with Advance to expire codes).
	Now func() time.Time
	// StateFile, when set, is where the simulator keeps its codes, Request-Ids and payments, so that
	// a restart neither forgets an order nor issues a code a second time.
	StateFile string
	// PublicURL is the base of the how-to-pay links it hands out ("" uses the request's Host).
	PublicURL string

	// Knobs that make the simulator kinder than DOKU. Each is off by default, and a test that turns
	// one on says by its name which leniency it relies on.

	// OptionalFields are generate-request fields of doku.RequiredGenerateFields (dotted paths such as
	// "customer.email") that are not refused when missing, although DOKU marks them required.
	OptionalFields []string
	// MaxClockSkew overrides DefaultMaxClockSkew; IgnoreClockSkew turns the check off.
	MaxClockSkew    time.Duration
	IgnoreClockSkew bool
}

// Simulator is the DOKU simulator. Use it as an http.Handler; Close it to stop pending retries.
type Simulator struct {
	cfg    Config
	router http.Handler
	client *http.Client

	mu     sync.Mutex
	state  state
	faults Faults

	offsetMu    sync.RWMutex
	clockOffset time.Duration // added to cfg.Now: tests move the simulator's clock to expire codes

	generateCalls atomic.Int64
	statusCalls   atomic.Int64
	howToPayCalls atomic.Int64

	stop    chan struct{}
	stopped sync.Once
	wg      sync.WaitGroup
}

// New returns a Simulator. With a StateFile it starts from the state kept there.
func New(cfg Config) (*Simulator, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxClockSkew <= 0 {
		cfg.MaxClockSkew = DefaultMaxClockSkew
	}
	s := &Simulator{
		cfg:    cfg,
		client: &http.Client{Timeout: 10 * time.Second},
		state:  newState(),
		stop:   make(chan struct{}),
	}
	if err := s.load(); err != nil {
		return nil, err
	}
	r := chi.NewRouter()
	r.Post(doku.PathAlfaGenerate, s.generate(invoice.ChannelAlfa))
	r.Post(doku.PathIndomaretGenerate, s.generate(invoice.ChannelIndomaret))
	r.Get(doku.PathStatusPrefix+"{id}", s.checkStatus)
	r.Post("/simulator/payments", s.pay)
	r.Post("/simulator/notifications", s.notify)
	r.Post("/simulator/clock", s.advanceClock)
	r.Get("/simulator/faults", s.getFaults)
	r.Put("/simulator/faults", s.putFaults)
	r.Get("/simulator/how-to-pay/{code}", s.howToPayPage)
	r.Get("/simulator/how-to-pay-api/{code}", s.howToPayAPI)
	r.Get("/simulator", s.cashier)
	r.Post("/simulator/cashier", s.cashierPay)
	r.Get("/healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	s.router = r
	return s, nil
}

func (s *Simulator) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.router.ServeHTTP(w, r) }

// Close stops scheduled notification retries and waits for deliveries in progress.
func (s *Simulator) Close() {
	s.stopped.Do(func() { close(s.stop) })
	s.wg.Wait()
}

// now is the simulator's clock, as moved by Advance.
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

// StatusCalls is how many check-status requests arrived.
func (s *Simulator) StatusCalls() int64 { return s.statusCalls.Load() }

// HowToPayCalls is how many how_to_pay_api requests arrived.
func (s *Simulator) HowToPayCalls() int64 { return s.howToPayCalls.Load() }

// PaymentCode is the code the simulator issued for an invoice number ("" if none).
func (s *Simulator) PaymentCode(invoiceNumber string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if o := s.state.Orders[invoiceNumber]; o != nil {
		return o.PaymentCode
	}
	return ""
}

// Issued is how many distinct codes the simulator has issued.
func (s *Simulator) Issued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.state.Orders)
}

// dokuError writes DOKU's error shape.
func dokuError(w http.ResponseWriter, status int, code, message string) {
	a := refusal(status, code, message)
	writeRaw(w, a.status, a.body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, _ := json.Marshal(v)
	writeRaw(w, status, body)
}

// writeControl answers a control request (pay, notify, faults, clock): JSON with a final newline, so
// that curl's output does not run into the prompt.
func writeControl(w http.ResponseWriter, status int, v any) {
	body, _ := json.Marshal(v)
	writeRaw(w, status, append(body, '\n'))
}

func writeRaw(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// verify checks a request's headers and signature the way DOKU does: the target is the request path
// and the digest covers the raw body; a GET has no Digest line. The Request-Timestamp must be near the
// real clock (not the one Advance moves: that stands for time passing for the codes, not for the
// merchant's clock).
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
	// Parsed and written back: Go's parser also takes a fraction of a second or a one-digit hour,
	// which DOKU's format ("2020-08-11T08:45:42Z", UTC to the second) has not.
	ts, err := time.Parse(doku.TimestampLayout, c.Timestamp)
	if err != nil || ts.Format(doku.TimestampLayout) != c.Timestamp {
		return errors.New("Request-Timestamp is not in yyyy-MM-ddTHH:mm:ssZ format")
	}
	if skew := s.cfg.Now().Sub(ts); !s.cfg.IgnoreClockSkew && (skew > s.cfg.MaxClockSkew || skew < -s.cfg.MaxClockSkew) {
		return fmt.Errorf("Request-Timestamp is %s away from DOKU's clock", skew.Round(time.Second))
	}
	if c.ClientID != s.cfg.ClientID {
		return errors.New("unknown Client-Id")
	}
	if r.Method != http.MethodGet {
		c.Digest = doku.Digest(body)
	}
	if !hmac.Equal([]byte(doku.Sign([]byte(s.cfg.SecretKey), c)), []byte(sig)) {
		//lint:ignore ST1005 DOKU's own message, word for word
		return errors.New("Invalid Header Signature")
	}
	return nil
}

// publicBase is the base URL of links the simulator hands out.
func (s *Simulator) publicBase(r *http.Request) string {
	if s.cfg.PublicURL != "" {
		return s.cfg.PublicURL
	}
	return "http://" + r.Host
}
