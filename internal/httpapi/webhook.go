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
	log := zerolog.Ctx(r.Context())
	refuse := func(err error, reason string) {
		h.metrics.Notification(reason)
		// Logged without the body: a refused sender may be anyone, with anything.
		log.Warn().Str("reason", reason).Str("remote_addr", r.RemoteAddr).Int64("content_length", r.ContentLength).
			Str("client_id", truncate(r.Header.Get("Client-Id"), 64)).Msg("notification refused")
		writeError(w, r, err)
	}
	if len(h.webhook.AllowedNetworks) > 0 && !allowed(r.RemoteAddr, h.webhook.AllowedNetworks) {
		refuse(invoice.Errorf(invoice.CodeForbidden, "notifications are not accepted from this network"), "forbidden")
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var maxErr *http.MaxBytesError
		if errors.As(err, &maxErr) {
			refuse(invoice.Errorf(invoice.CodeTooLarge, "the notification body must be at most %d bytes", maxErr.Limit), "too_large")
			return
		}
		refuse(invoice.Errorf(invoice.CodeInvalidNotification, "the notification body could not be read"), "unreadable")
		return
	}
	n, report, err := h.notifications.ReadNotification(r.Header, body)
	if invoice.ErrorCode(err) == invoice.CodeBadSignature {
		refuse(err, "bad_signature")
		return
	}
	if h.webhook.MaxAge > 0 && !fresh(r.Header.Get("Request-Timestamp"), h.webhook.MaxAge) {
		refuse(invoice.Errorf(invoice.CodeStaleNotification, "Request-Timestamp is outside the accepted window"), "stale")
		return
	}
	log2 := log.With().Str("invoice_number", n.InvoiceNumber).Str("doku_request_id", n.RequestID).Logger()
	outcome, inv, redelivered, serr := h.svc.ReceiveNotification(r.Context(), n, report)
	if serr != nil {
		writeError(w, r, serr) // nothing stored: DOKU retries after our 503
		return
	}
	if redelivered {
		h.metrics.Notification("redelivered")
	} else {
		h.metrics.Notification(string(outcome))
	}

	switch {
	case redelivered:
		log2.Info().Str("first_outcome", string(outcome)).Msg("notification redelivered; already handled")
		writeJSON(w, http.StatusOK, notificationAck{Outcome: invoice.OutcomeDuplicate})
	case outcome == invoice.OutcomeMalformed:
		log2.Error().Err(err).Msg("genuine notification with an unreadable body; kept in the inbox")
		writeError(w, r, err)
	case outcome == invoice.OutcomeUnknownInvoice:
		log2.Warn().Msg("notification for an unknown invoice; kept in the inbox")
		writeError(w, r, invoice.ErrNotFound)
	case outcome == invoice.OutcomeNotIssued:
		// We hold no confirmed code to check the payment against yet. Answer non-2xx so DOKU
		// delivers it again once the invoice has been finished.
		log2.Warn().Str("status", string(inv.Status)).Msg("notification for an invoice without a confirmed code")
		writeError(w, r, invoice.Errorf(invoice.CodeNotIssued, "invoice %s has no confirmed payment code yet", inv.Number))
	case outcome.Mismatch():
		// DOKU says money arrived that does not match what we issued: a retry cannot fix that, so
		// acknowledge and hand it to a person; the invoice stays as it was.
		log2.Error().Str("outcome", string(outcome)).Str("reported_amount", report.AmountText).Int64("invoice_amount", inv.Amount).
			Str("reported_channel", string(report.Channel)).Str("reported_payment_code", report.PaymentCode).
			Msg("notification does not match the invoice; flagged for a person")
		writeJSON(w, http.StatusOK, notificationAck{Outcome: outcome})
	default:
		log2.Info().Str("outcome", string(outcome)).Str("status", string(inv.Status)).Msg("doku notification")
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
