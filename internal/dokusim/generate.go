package dokusim

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/merchant/o2o/internal/doku"
	"github.com/merchant/o2o/internal/invoice"
	"github.com/merchant/o2o/internal/strictjson"
)

// generateRequest is the generate body as DOKU reads it: pointers tell a missing field from a zero.
type generateRequest struct {
	Order *struct {
		InvoiceNumber *string `json:"invoice_number"`
		Amount        *int64  `json:"amount"`
	} `json:"order"`
	O2OInfo *struct {
		ExpiredTime    *int64  `json:"expired_time"`
		ReusableStatus *bool   `json:"reusable_status"`
		Info           *string `json:"info"`
	} `json:"online_to_offline_info"`
	Customer *struct {
		Name  *string `json:"name"`
		Email *string `json:"email"`
	} `json:"customer"`
	AlfaInfo *struct {
		Receipt *struct {
			FooterMessage *string `json:"footer_message"`
		} `json:"receipt"`
	} `json:"alfa_info"`
}

// present lists the fields of doku.RequiredGenerateFields the request carries (a text only when not blank).
func (g *generateRequest) present() map[string]bool {
	text := func(s *string) bool { return s != nil && strings.TrimSpace(*s) != "" }
	p := map[string]bool{}
	if o := g.Order; o != nil {
		p["order"], p["order.invoice_number"], p["order.amount"] = true, text(o.InvoiceNumber), o.Amount != nil
	}
	if o := g.O2OInfo; o != nil {
		p["online_to_offline_info"] = true
		p["online_to_offline_info.expired_time"] = o.ExpiredTime != nil
		p["online_to_offline_info.reusable_status"] = o.ReusableStatus != nil
		p["online_to_offline_info.info"] = text(o.Info)
	}
	if c := g.Customer; c != nil {
		p["customer"], p["customer.name"], p["customer.email"] = true, text(c.Name), text(c.Email)
	}
	if a := g.AlfaInfo; a != nil {
		p["alfa_info"], p["alfa_info.receipt"] = true, a.Receipt != nil
	}
	return p
}

// decodeGenerate reads and checks a generate body as DOKU documents its fields, and returns a
// DOKU-style message for the first problem.
func (s *Simulator) decodeGenerate(body []byte) (*generateRequest, string) {
	var g generateRequest
	if err := strictjson.DecodeForeign(body, &g); err != nil {
		var se *strictjson.Error
		if errors.As(err, &se) && se.Path != "" {
			return nil, se.Path + " is invalid: " + se.Detail
		}
		return nil, "request body is not valid JSON"
	}
	have := g.present()
	for _, f := range doku.RequiredGenerateFields {
		if !have[f] && !slices.Contains(s.cfg.OptionalFields, f) {
			return nil, f + " is mandatory"
		}
	}
	if o := g.Order; o != nil {
		if o.InvoiceNumber != nil && len(*o.InvoiceNumber) > 64 {
			return nil, "order.invoice_number must be at most 64 characters"
		}
		if o.Amount != nil && (*o.Amount <= 0 || *o.Amount > 999_999_999_999) {
			return nil, "order.amount must be a positive integer of at most 12 digits"
		}
	}
	if o := g.O2OInfo; o != nil && o.ExpiredTime != nil && (*o.ExpiredTime < 1 || *o.ExpiredTime > 99_999_999) {
		return nil, "online_to_offline_info.expired_time must be between 1 and 99999999 minutes"
	}
	return &g, ""
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
		// DOKU's sample request sends Content-Type: application/json, and its body is documented as that.
		if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
			dokuError(w, http.StatusBadRequest, "invalid_request", "Content-Type must be application/json")
			return
		}
		if fault, ok := s.takeFault(r.Context()); ok {
			fault(w)
			return
		}
		a := s.register(ch, r.Header.Get(doku.HeaderRequestID), body, s.publicBase(r))
		if a.lost {
			s.hang(r.Context())
			return
		}
		writeRaw(w, a.status, a.body)
	}
}

// answer is the simulator's reply to a generate request; lost means the code was issued but the
// reply is to be lost on the way, as a fault asked.
type answer struct {
	status int
	body   []byte
	lost   bool
}

func refusal(status int, code, message string) answer {
	body, _ := json.Marshal(map[string]any{"error": map[string]string{"code": code, "message": message}})
	return answer{status: status, body: body}
}

// register issues a code for a verified generate request, or repeats the answer an earlier request
// with the same Request-Id got — DOKU's idempotency. The lock is held throughout so two requests for
// one invoice number cannot both win.
func (s *Simulator) register(ch invoice.Channel, requestID string, body []byte, base string) answer {
	hash := sha256.Sum256(body)
	s.mu.Lock()
	defer s.mu.Unlock()
	if g, ok := s.state.Generation[requestID]; ok {
		if g.BodyHash != hash {
			return refusal(http.StatusBadRequest, "invalid_request", "Request-Id was already used with a different request body")
		}
		return answer{status: http.StatusConflict, body: g.Response} // the original response, with 409
	}
	// A refusal is DOKU's answer to this Request-Id too: the same request again gets it back with 409,
	// and another body under it is refused (DOKU documents "the original response with HTTP 409"
	// without limiting it to successes).
	refuse := func(a answer) answer {
		s.state.Generation[requestID] = &generation{BodyHash: hash, Response: a.body}
		if err := s.save(); err != nil {
			s.cfg.Logger.Error().Err(err).Msg("cannot save the simulator's state")
		}
		return a
	}
	req, msg := s.decodeGenerate(body)
	if msg != "" {
		return refuse(refusal(http.StatusBadRequest, "invalid_parameter", msg))
	}
	o := s.newOrder(ch, requestID, req)
	if _, taken := s.state.Orders[o.InvoiceNumber]; taken {
		return refuse(refusal(http.StatusBadRequest, "duplicate_invoice", "invoice_number has already been used"))
	}
	o.PaymentCode = paymentCode(ch, s.state.next())
	resp := generatedBody(o, base)
	s.state.Generation[requestID] = &generation{BodyHash: hash, Response: resp}
	s.state.add(o)
	if err := s.save(); err != nil {
		// The code exists in memory: a retry with the same Request-Id gets it back (409).
		s.cfg.Logger.Error().Err(err).Msg("cannot save the simulator's state")
		return refusal(http.StatusInternalServerError, "internal_error", "state could not be saved")
	}
	return answer{status: http.StatusOK, body: resp, lost: s.takeLostResponse()}
}

// generatedBody is DOKU's success response for a new code.
func generatedBody(o *order, base string) []byte {
	resp, _ := json.Marshal(map[string]any{
		"order": map[string]any{"invoice_number": o.InvoiceNumber, "amount": o.Amount},
		"online_to_offline_info": map[string]any{
			"payment_code":    o.PaymentCode,
			"info":            o.Info,
			"how_to_pay_page": base + "/simulator/how-to-pay/" + o.PaymentCode,
			"how_to_pay_api":  base + "/simulator/how-to-pay-api/" + o.PaymentCode,
			"created_date":    doku.FormatWIB(o.CreatedAt),
			"expired_date":    doku.FormatWIB(o.ExpiresAt),
		},
	})
	return resp
}

// newOrder is the order a valid generate request describes (its code not yet drawn).
func (s *Simulator) newOrder(ch invoice.Channel, requestID string, g *generateRequest) *order {
	now := s.now().UTC().Truncate(time.Second)
	o := &order{Channel: ch, RequestID: requestID, CreatedAt: now}
	expiry := int64(60) // DOKU's documented default
	if g.Order != nil {
		if g.Order.InvoiceNumber != nil {
			o.InvoiceNumber = *g.Order.InvoiceNumber
		}
		if g.Order.Amount != nil {
			o.Amount = *g.Order.Amount
		}
	}
	if i := g.O2OInfo; i != nil {
		if i.ExpiredTime != nil {
			expiry = *i.ExpiredTime
		}
		o.Reusable = i.ReusableStatus != nil && *i.ReusableStatus
		if i.Info != nil {
			o.Info = *i.Info
		}
	}
	o.ExpiresAt = now.Add(time.Duration(expiry) * time.Minute)
	return o
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
