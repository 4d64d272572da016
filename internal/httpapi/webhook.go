package httpapi

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/rs/zerolog"

	"github.com/merchant/o2o/internal/invoice"
)

// WebhookConfig holds the webhook's optional defences, all off by default.
type WebhookConfig struct {
	// AllowedNetworks, when not empty, is the only source networks notifications are accepted from.
	// It is matched against the TCP peer, so behind a proxy filter at the proxy instead.
	AllowedNetworks []netip.Prefix
	// MaxAge, when positive, refuses notifications whose Request-Timestamp is older (or further in the
	// future) than this. Off by default: DOKU does not document whether retries keep their original
	// timestamp, and a strict window could refuse every retry. Request-Id dedupe is the replay defence.
	MaxAge time.Duration
}

type notificationAck struct {
	Outcome invoice.Outcome `json:"outcome"`
}

// dokuNotification is DOKU's payment webhook. The signature is checked over the raw bytes before any
// of the body is believed; a genuine notification is then kept in the inbox and applied through the
// shared transition in one transaction. Answers follow what DOKU acts on: 2xx stops its retries,
// anything else asks for one.
func (h *handlers) dokuNotification(w http.ResponseWriter, r *http.Request) {
	got, refused := h.readNotification(r)
	if refused != nil {
		h.metrics.Notification(refused.reason)
		// Logged without the body: a refused sender may be anyone, with anything.
		zerolog.Ctx(r.Context()).Warn().Str("reason", refused.reason).Str("remote_addr", r.RemoteAddr).
			Int64("content_length", r.ContentLength).Str("client_id", truncate(r.Header.Get("Client-Id"), 64)).
			Msg("notification refused")
		writeError(w, r, refused.err)
		return
	}
	if invoice.CheckInvoiceNumber(got.n.InvoiceNumber) == "" {
		logAbout(r, got.n.InvoiceNumber)
	}
	outcome, inv, redelivered, err := h.svc.ReceiveNotification(r.Context(), got.n, got.report)
	if err != nil {
		writeError(w, r, err) // nothing stored: DOKU retries after our 503
		return
	}
	if redelivered {
		h.metrics.Notification("redelivered")
	} else {
		h.metrics.Notification(string(outcome))
	}
	h.answerNotification(w, r, got, outcome, inv, redelivered)
}

// webhookRefusal is a request to the webhook that is not a genuine notification, refused before any
// of it is kept; reason labels it in the metrics and the log.
type webhookRefusal struct {
	err    error
	reason string
}

// received is a genuine notification, with its report — nil, and readErr saying why, when its body
// cannot be read.
type received struct {
	n       *invoice.Notification
	report  *invoice.PaymentReport
	readErr error
}

// readNotification takes the request through the webhook's guards — source network, body limit,
// signature, age — and returns the genuine notification, or why it is refused.
func (h *handlers) readNotification(r *http.Request) (received, *webhookRefusal) {
	if len(h.cfg.Webhook.AllowedNetworks) > 0 && !allowed(r.RemoteAddr, h.cfg.Webhook.AllowedNetworks) {
		return received{}, &webhookRefusal{refuse(http.StatusForbidden, codeForbidden, "notifications are not accepted from this network"), "forbidden"}
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var maxErr *http.MaxBytesError
		if errors.As(err, &maxErr) {
			return received{}, &webhookRefusal{refuse(http.StatusRequestEntityTooLarge, codeTooLarge, "the notification body must be at most %d bytes", maxErr.Limit), "too_large"}
		}
		return received{}, &webhookRefusal{refuse(http.StatusBadRequest, codeInvalidNotification, "the notification body could not be read"), "unreadable"}
	}
	n, report, err := h.notifications.ReadNotification(r.Header, body)
	if n == nil {
		return received{}, &webhookRefusal{&refusal{status: http.StatusUnauthorized, code: codeBadSignature,
			msg: "the notification signature is not valid"}, "bad_signature"}
	}
	if h.cfg.Webhook.MaxAge > 0 && !fresh(r.Header.Get("Request-Timestamp"), h.cfg.Webhook.MaxAge) {
		return received{}, &webhookRefusal{refuse(http.StatusUnauthorized, codeStaleNotification, "Request-Timestamp is outside the accepted window"), "stale"}
	}
	return received{n: n, report: report, readErr: err}, nil
}

// answerNotification answers DOKU for a notification that was kept, by what it did.
func (h *handlers) answerNotification(w http.ResponseWriter, r *http.Request, got received, outcome invoice.Outcome,
	inv *invoice.Invoice, redelivered bool) {
	log := zerolog.Ctx(r.Context()).With().Str("doku_request_id", got.n.RequestID).Logger()
	report := got.report
	switch {
	case redelivered:
		log.Info().Str("first_outcome", string(outcome)).Msg("notification redelivered; already handled")
		writeJSON(w, http.StatusOK, notificationAck{Outcome: invoice.OutcomeDuplicate})
	case outcome == invoice.OutcomeMalformed:
		log.Error().Err(got.readErr).Msg("genuine notification with an unreadable body; kept for a person")
		writeError(w, r, refuse(http.StatusBadRequest, codeInvalidNotification, "%s", got.readErr.Error()))
	case outcome == invoice.OutcomeUnknownInvoice:
		log.Warn().Msg("notification for an unknown invoice; kept for a person")
		writeError(w, r, refuse(http.StatusNotFound, codeNotFound, "invoice not found"))
	case outcome == invoice.OutcomeNotIssued:
		// We hold no confirmed code to check the payment against yet. Answer non-2xx so DOKU
		// delivers it again once the invoice has been finished.
		log.Warn().Str("status", string(inv.Status)).Msg("notification for an invoice without a confirmed code")
		writeError(w, r, invoice.Errorf(invoice.ErrNotIssued, "invoice %s has no confirmed payment code yet", inv.Number))
	case outcome.Mismatch():
		// DOKU says money arrived that does not match what we issued: a retry cannot fix that, so
		// acknowledge and hand it to a person; the invoice stays as it was.
		log.Error().Str("outcome", string(outcome)).Str("reported_amount", report.AmountText).Int64("invoice_amount", inv.Amount).
			Str("reported_channel", string(report.Channel)).Str("reported_payment_code", report.PaymentCode).
			Msg("notification does not match the invoice; flagged for a person")
		writeJSON(w, http.StatusOK, notificationAck{Outcome: outcome})
	default:
		log.Info().Str("outcome", string(outcome)).Str("status", string(inv.Status)).Msg("doku notification")
		writeJSON(w, http.StatusOK, notificationAck{Outcome: outcome})
	}
}

func allowed(remoteAddr string, nets []netip.Prefix) bool {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		return false
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	ip = ip.Unmap()
	for _, n := range nets {
		if n.Contains(ip) {
			return true
		}
	}
	return false
}

func fresh(timestamp string, maxAge time.Duration) bool {
	t, err := time.Parse("2006-01-02T15:04:05Z", timestamp)
	if err != nil {
		return false
	}
	age := time.Since(t)
	return age <= maxAge && age >= -5*time.Minute
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
