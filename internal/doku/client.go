package doku

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/merchant/o2o/internal/invoice"
	"github.com/merchant/o2o/internal/metrics"
)

// Paths of DOKU's O2O endpoints (api/DOKU.md §1). Alfa uses the path all three official plugins call;
// the documentation's /alfa-virtual-account/ path is, per DOKU's own tooling, a documentation error.
const (
	PathAlfaGenerate      = "/alfa-online-to-offline/v2/payment-code"
	PathIndomaretGenerate = "/indomaret-online-to-offline/v2/payment-code"
	PathStatusPrefix      = "/orders/v1/status/"
)

// GeneratePath is the payment-code endpoint of a channel.
func GeneratePath(ch invoice.Channel) string {
	if ch == invoice.ChannelIndomaret {
		return PathIndomaretGenerate
	}
	return PathAlfaGenerate
}

// maxResponseBytes bounds how much of a DOKU response we read: a misbehaving peer must not be able to
// make us buffer without limit.
const maxResponseBytes = 1 << 20

// ErrUnavailable marks failures where DOKU's answer is unknown or temporary (timeouts, connection
// errors, 5xx, 429): the request may or may not have been processed, so it is retried with the same
// Request-Id and bytes, never abandoned and never re-issued under a new id.
var ErrUnavailable = errors.New("doku unavailable")

// APIError is a non-success answer from DOKU. DOKU's message is kept verbatim: it is what a person
// needs to see when a code is refused.
type APIError struct {
	StatusCode int
	Code       string
	Message    string
	// RetryAfter is when DOKU asked to be asked again (its Retry-After), 0 when it did not say.
	RetryAfter time.Duration
}

func (e *APIError) Error() string {
	if e.Code != "" {
		return fmt.Sprintf("doku: HTTP %d %s: %s", e.StatusCode, e.Code, e.Message)
	}
	return fmt.Sprintf("doku: HTTP %d: %s", e.StatusCode, e.Message)
}

// Unwrap makes statuses whose outcome is unknown match ErrUnavailable, so callers need one check:
// 5xx, 408 and 429 are temporary; a 409 means DOKU has already processed this Request-Id — a code may
// well exist even if this answer did not carry it readably; and a status that is not an error at all
// but not DOKU's 200 either (another 2xx, a 1xx or 3xx from something in between) says nothing about
// the code. Only the remaining 4xx are a definite refusal.
func (e *APIError) Unwrap() error {
	switch s := e.StatusCode; {
	case s < 400, s >= 500, s == http.StatusTooManyRequests, s == http.StatusRequestTimeout, s == http.StatusConflict:
		return ErrUnavailable
	}
	return nil
}

// IsRejection reports whether err is DOKU definitely refusing the request (a 4xx other than 408/429):
// sending the same request again will be refused again.
func IsRejection(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && !errors.Is(err, ErrUnavailable)
}

// Config configures a Client.
type Config struct {
	BaseURL   string
	ClientID  string
	SecretKey string
	// Timeout bounds every call, connection and body included.
	Timeout time.Duration
	// MaxConns bounds idle keep-alive connections kept to DOKU; it should match the concurrency the
	// service can have in flight towards DOKU, or connections are closed and redialled under load.
	MaxConns int
	// Metrics counts calls by endpoint and outcome; nil counts nothing.
	Metrics *metrics.Metrics
	// Logger logs each call when the context carries no request logger.
	Logger zerolog.Logger
	// Defaults fill the generate request's required fields a create request left out.
	Defaults BodyDefaults
}

// Client calls DOKU. It is safe for concurrent use and reuses connections.
type Client struct {
	baseURL  string
	clientID string
	secret   []byte
	http     *http.Client
	now      func() time.Time
	metrics  *metrics.Metrics
	log      zerolog.Logger
	defaults BodyDefaults
}

// New returns a Client for cfg.
func New(cfg Config) *Client {
	tr := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:   true,
		MaxIdleConns:        cfg.MaxConns,
		MaxIdleConnsPerHost: cfg.MaxConns,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 5 * time.Second,
	}
	return &Client{
		baseURL:  strings.TrimRight(cfg.BaseURL, "/"),
		clientID: cfg.ClientID,
		secret:   []byte(cfg.SecretKey),
		http:     &http.Client{Transport: tr, Timeout: cfg.Timeout},
		now:      time.Now,
		metrics:  cfg.Metrics,
		log:      cfg.Logger,
		defaults: cfg.Defaults,
	}
}

// call is one DOKU call, observed when it ends.
type call struct {
	endpoint, requestID, invoiceNumber string
	start                              time.Time
}

// done counts and logs a finished call: endpoint, outcome, HTTP status, latency and the Request-Id,
// with the request's logger (and so its request id) when there is one.
func (c *Client) done(ctx context.Context, k call, status int, outcome string, err error) {
	d := time.Since(k.start)
	c.metrics.DokuCall(k.endpoint, outcome, d)
	log := zerolog.Ctx(ctx)
	if log.GetLevel() == zerolog.Disabled {
		log = &c.log
	}
	ev := log.Info()
	if outcome == "unavailable" {
		ev = log.Warn().Err(err)
	}
	ev.Str("doku_endpoint", k.endpoint).Str("outcome", outcome).Int("http_status", status).
		Float64("duration_ms", float64(d.Microseconds())/1000).Str("doku_request_id", k.requestID).
		Str("invoice_number", k.invoiceNumber).Msg("doku call")
}

func outcomeOf(status int, err error) string {
	switch {
	case err == nil && status == http.StatusConflict:
		return "replayed"
	case err == nil:
		return "ok"
	case IsRejection(err):
		return "rejected"
	}
	return "unavailable"
}

// GeneratePaymentCode asks DOKU for a payment code, sending body — built once by GenerateBody and
// stored with the invoice — under requestID. DOKU's 409 replay of an earlier identical request is
// success: it carries the code issued the first time.
func (c *Client) GeneratePaymentCode(ctx context.Context, ch invoice.Channel, requestID string, body []byte) (is invoice.Issued, err error) {
	k := call{endpoint: "generate_" + string(ch), requestID: requestID, start: time.Now()}
	var asked struct {
		Order struct {
			InvoiceNumber string `json:"invoice_number"`
			Amount        int64  `json:"amount"`
		} `json:"order"`
	}
	_ = json.Unmarshal(body, &asked) // our own body (GenerateBody): for the log line and the answer's check
	k.invoiceNumber = asked.Order.InvoiceNumber
	status := 0
	defer func() { c.done(ctx, k, status, outcomeOf(status, err), err) }()

	status, respBody, retry, err := c.do(ctx, http.MethodPost, GeneratePath(ch), requestID, body)
	if err != nil {
		return invoice.Issued{}, err
	}
	if status == http.StatusOK || status == http.StatusConflict {
		issued, perr := parseGenerateResponse(respBody, asked.Order.InvoiceNumber, asked.Order.Amount)
		if perr == nil {
			return issued, nil
		}
		if status == http.StatusOK || errors.Is(perr, errNotOurCode) {
			// A 200 we cannot read (or one for another order) may still have issued our code:
			// retrying the same Request-Id gets it back, so this is "unknown", not a rejection.
			return invoice.Issued{}, fmt.Errorf("%w: unusable success response: %s", ErrUnavailable, CleanText(perr.Error()))
		}
	}
	ae := apiError(status, respBody)
	ae.RetryAfter = retry
	return invoice.Issued{}, ae
}

// maxRetryAfter bounds how long a Retry-After DOKU sends is honoured: a typo on DOKU's side must not
// park an invoice for a day.
const maxRetryAfter = 10 * time.Minute

// retryAfter reads a Retry-After header given in seconds (the form APIs use), or 0.
func retryAfter(h http.Header) time.Duration {
	secs, err := strconv.Atoi(strings.TrimSpace(h.Get("Retry-After")))
	if err != nil || secs <= 0 {
		return 0
	}
	return min(time.Duration(secs)*time.Second, maxRetryAfter)
}

// do sends one signed request and returns the status, the (bounded) body and the Retry-After DOKU
// asked for.
func (c *Client) do(ctx context.Context, method, path, requestID string, body []byte) (int, []byte, time.Duration, error) {
	timestamp := c.now().UTC().Format(TimestampLayout)
	comp := Components{ClientID: c.clientID, RequestID: requestID, Timestamp: timestamp, Target: path}
	var rd io.Reader
	if body != nil {
		comp.Digest = Digest(body)
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.baseURL+path, rd)
	if err != nil {
		return 0, nil, 0, fmt.Errorf("doku: build request: %w", err)
	}
	req.Header.Set(HeaderClientID, c.clientID)
	req.Header.Set(HeaderRequestID, requestID)
	req.Header.Set(HeaderRequestTimestamp, timestamp)
	req.Header.Set(HeaderSignature, Sign(c.secret, comp))
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}

	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, 0, fmt.Errorf("%w: %s %s: %v", ErrUnavailable, method, path, err)
	}
	defer resp.Body.Close()
	respBody, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return 0, nil, 0, fmt.Errorf("%w: %s %s: reading response: %v", ErrUnavailable, method, path, err)
	}
	// Drain what is left so the connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseBytes))
	return resp.StatusCode, respBody, retryAfter(resp.Header), nil
}
