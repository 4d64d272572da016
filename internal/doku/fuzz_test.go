package doku

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/merchant/o2o/internal/invoice"
)

// FuzzNotification feeds arbitrary headers and bodies through verification and parsing, the path a
// public webhook request takes. Properties: nothing panics; only a body signed with our secret for
// our Client-Id and path verifies; a parsed SUCCESS always names an invoice and a positive amount.
func FuzzNotification(f *testing.F) {
	f.Add(vecClientID, v3RequestID, v3Timestamp, v3Signature, []byte(v3Body))
	var pretty bytes.Buffer
	_ = json.Indent(&pretty, []byte(v3Body), "", "    ")
	f.Add(vecClientID, v3RequestID, v3Timestamp, v3Signature, pretty.Bytes())
	f.Add(vecClientID, v3RequestID, v3Timestamp, v3Signature, []byte(v3Body+"\n"))
	f.Add(vecClientID, v3RequestID, v3Timestamp, "HMACHSHA256=z2eurtPjGec9HnxD9BS+5dNO3/G463R0ViiFg+E5DtY=", []byte(v3Body))
	f.Add("MCH-0002", v3RequestID, v3Timestamp, v3Signature, []byte(v3Body))
	f.Add("", "", "", "", []byte(""))
	f.Add(vecClientID, "r", "t", "HMACSHA256=", []byte(`{"order":{"invoice_number":"A","amount":"1.00"},"transaction":{"status":"SUCCESS"}}`))
	f.Add(vecClientID, "r", "t", "x", []byte(`{"order":{"amount":1,"amount":2}}`))
	f.Add(vecClientID, "r", "t", "x", []byte(`{"order":{"invoice_number":"A","amount":1e309},"transaction":{"status":"SUCCESS"}}`))
	f.Add(vecClientID, "r", "t", "x", []byte(`[{"order":null}]`))

	v := Verifier{ClientID: vecClientID, Secret: []byte(vecSecret), Target: v3Target}
	f.Fuzz(func(t *testing.T, clientID, requestID, timestamp, signature string, body []byte) {
		h := http.Header{}
		h.Set(HeaderClientID, clientID)
		h.Set(HeaderRequestID, requestID)
		h.Set(HeaderRequestTimestamp, timestamp)
		h.Set(HeaderSignature, signature)
		n, r, err := v.ReadNotification(h, body)
		if n != nil {
			want := Sign(v.Secret, Components{ClientID: h.Get(HeaderClientID), RequestID: h.Get(HeaderRequestID),
				Timestamp: h.Get(HeaderRequestTimestamp), Target: v.Target, Digest: Digest(body)})
			if h.Get(HeaderClientID) != vecClientID || h.Get(HeaderSignature) != want {
				t.Fatalf("accepted a notification not signed for us: %q %q", clientID, signature)
			}
			storable(t, n.RequestID, n.InvoiceNumber)
			for k, v := range n.Headers {
				storable(t, k, v)
			}
		}
		if (err == nil) != (r != nil) {
			t.Fatalf("report %v with error %v", r, err)
		}
		// Parsing alone, as if the signature had passed, must be as safe.
		if r, err := ParseNotification(body); err == nil {
			if r.DokuStatus == invoice.DokuSuccess && (r.InvoiceNumber == "" || r.AmountText == "" || r.Amount < 0) {
				t.Fatalf("SUCCESS without invoice or amount: %+v", r)
			}
			// Everything read from DOKU's bytes is text PostgreSQL stores, whatever the bytes were.
			storable(t, r.InvoiceNumber, r.PaymentCode, r.AmountText, r.DateText, r.DokuStatus, r.OriginalRequestID, string(r.Channel))
			for k, v := range r.Identifiers {
				storable(t, k, v)
			}
		} else if !errors.Is(err, ErrMalformed) {
			t.Fatalf("parse error is not ErrMalformed: %v", err)
		}
		// Whatever a sender signs correctly must verify.
		sig := Sign(v.Secret, Components{ClientID: vecClientID, RequestID: h.Get(HeaderRequestID),
			Timestamp: h.Get(HeaderRequestTimestamp), Target: v.Target, Digest: Digest(body)})
		h.Set(HeaderClientID, vecClientID)
		h.Set(HeaderSignature, sig)
		if h.Get(HeaderRequestID) != "" && h.Get(HeaderRequestTimestamp) != "" {
			if err := v.Verify(h, body); err != nil {
				t.Fatalf("a correctly signed notification was refused: %v", err)
			}
		}
	})
}

// FuzzDokuResponses feeds arbitrary bytes to the generate and check-status response parsers.
func FuzzDokuResponses(f *testing.F) {
	f.Add([]byte(`{"order":{"invoice_number":"INV-1","amount":150000},"online_to_offline_info":{"payment_code":"0012345","how_to_pay_page":"https://p","expired_date":"20240101090000"}}`))
	f.Add([]byte(`{"online_to_offline_info":{"payment_code":8888123}}`))
	f.Add([]byte(`{"online_to_offline_info":{"payment_code":null,"expired_date":"2024"}}`))
	f.Add([]byte(`{"error":{"message":"Order not found","code":"x"}}`))
	f.Add([]byte(`{"order":{"invoice_number":"INV-67220100000","amount":120000},"transaction":{"status":"SUCCESS","date":"2021-12-29T02:37:35Z"},"online_to_offline_info":{"reusable_status":"false"}}`))
	f.Add([]byte(`{"order":{"invoice_number":"A"},"transaction":{"status":"PENDING"},"online_to_offline_info":{"reusable_status":true}}`))
	f.Add([]byte(`<html>502</html>`))
	f.Fuzz(func(t *testing.T, body []byte) {
		if is, err := parseGenerateResponse(body, "INV-1", 150000); err == nil &&
			(is.PaymentCode == "" || CleanText(is.PaymentCode) != is.PaymentCode || CleanText(is.HowToPayAPI) != is.HowToPayAPI) {
			t.Fatalf("generate response accepted with a payment code %q, how_to_pay_api %q", is.PaymentCode, is.HowToPayAPI)
		}
		if e := apiError(400, body); CleanText(e.Message) != e.Message || CleanText(e.Code) != e.Code {
			t.Fatalf("an error's message %q or code %q is not text PostgreSQL stores", e.Message, e.Code)
		}
		if r, err := parseStatusResponse(body); err == nil {
			switch r.DokuStatus {
			case invoice.DokuPending, invoice.DokuSuccess, invoice.DokuExpired, invoice.DokuFailed:
			default:
				t.Fatalf("status %q accepted", r.DokuStatus)
			}
		}
		for _, status := range []int{400, 409, 500} {
			if e := apiError(status, body); e.Message == "" {
				t.Fatal("an API error without a message")
			}
		}
	})
}

func storable(t *testing.T, texts ...string) {
	t.Helper()
	for _, s := range texts {
		if !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0 {
			t.Fatalf("%q is not text PostgreSQL can store", s)
		}
	}
}
