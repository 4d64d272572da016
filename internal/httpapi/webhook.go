package httpapi

import (
	"errors"
	"io"
	"net/http"

	"github.com/rs/zerolog"

	"github.com/merchant/o2o/internal/invoice"
)

type notificationAck struct {
	Outcome invoice.Outcome `json:"outcome"`
}

// dokuNotification is DOKU's payment webhook. The signature is checked over the raw bytes before any
// of the body is believed; only then is it parsed and applied through the shared transition. Answers
// follow what DOKU acts on: 2xx stops its retries, anything else asks for one.
func (h *handlers) dokuNotification(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var maxErr *http.MaxBytesError
		if errors.As(err, &maxErr) {
			writeError(w, r, invoice.Errorf(invoice.CodeTooLarge, "the notification body must be at most %d bytes", maxErr.Limit))
			return
		}
		writeError(w, r, invoice.Errorf(invoice.CodeInvalidNotification, "the notification body could not be read"))
		return
	}
	report, err := h.notifications.ReadNotification(r.Header, body)
	if err != nil {
		writeError(w, r, err)
		return
	}
	log := zerolog.Ctx(r.Context()).With().
		Str("invoice_number", report.InvoiceNumber).
		Str("doku_request_id", report.RequestID).
		Logger()

	outcome, inv, err := h.svc.ApplyPayment(r.Context(), report)
	if err != nil {
		if invoice.ErrorCode(err) == invoice.CodeNotFound {
			log.Warn().Msg("notification for an unknown invoice")
		}
		writeError(w, r, err)
		return
	}

	ev := log.Info()
	switch {
	case outcome.Mismatch():
		// DOKU says money arrived that does not match what we issued: a retry cannot fix that,
		// so acknowledge and hand it to a person; the invoice stays as it was.
		ev = log.Error().Int64("reported_amount", report.Amount).Int64("invoice_amount", inv.Amount).
			Str("reported_channel", string(report.Channel)).Str("reported_payment_code", report.PaymentCode)
	case outcome == invoice.OutcomeNotIssued:
		// We hold no confirmed code yet to check the payment against. Answer non-2xx so DOKU
		// delivers it again once the invoice has been finished.
		log.Warn().Str("status", string(inv.Status)).Msg("notification for an invoice without a confirmed code")
		writeError(w, r, invoice.Errorf(invoice.CodeNotIssued, "invoice %s has no confirmed payment code yet", inv.Number))
		return
	}
	ev.Str("outcome", string(outcome)).Str("status", string(inv.Status)).Msg("doku notification")
	writeJSON(w, http.StatusOK, notificationAck{Outcome: outcome})
}
