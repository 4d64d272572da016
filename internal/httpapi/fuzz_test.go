package httpapi

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/merchant/o2o/internal/config"
	"github.com/merchant/o2o/internal/doku"
	"github.com/merchant/o2o/internal/invoice"
)

// FuzzCreateRequest feeds arbitrary bodies through the create decoder and validator. Properties:
// nothing panics; every refusal is a coded domain error; whatever is accepted is a valid invoice whose
// DOKU request body is valid JSON carrying exactly the validated amount.
func FuzzCreateRequest(f *testing.F) {
	for _, s := range []string{
		`{"invoice_number":"INV-1","channel":"alfa","amount":150000,"customer":{"name":"A","email":"a@b.co"},"receipt_footer":"x"}`,
		`{"invoice_number":"INV-1","channel":"indomaret","amount":10000,"customer":{"name":"A"},"metadata":{"a":[1,{"b":null}]},"reusable":true,"expires_in_minutes":5}`,
		`{"invoice_number":"INV-1","channel":"alfa","amount":150000.0,"customer":{"name":"A"}}`,
		`{"invoice_number":"INV-1","channel":"alfa","amount":1,"amount":150000,"customer":{"name":"A"}}`,
		`{"invoice_number":"../x","channel":"ovo","amount":-1,"customer":{"name":"\u0000"}}`,
		`{"invoice_number":"INV-1"} {"x":1}`,
		`{"metadata":[1]}`,
		`null`, `[]`, ``, `{"customer":null}`, `{"amount":99999999999999999999}`,
	} {
		f.Add([]byte(s))
	}
	limits := config.Defaults().Limits()
	f.Fuzz(func(t *testing.T, body []byte) {
		var req createRequest
		if err := decodeJSONBytes(body, &req); err != nil {
			if p := problemOf(err); p.Status >= 500 || p.Code == codeInternal {
				t.Fatalf("a body answered %d %s: %v", p.Status, p.Code, err)
			}
			return
		}
		d, fieldErrs := req.draft()
		inv, err := d.Validate(limits)
		var invalid *invoice.ValidationError
		if err != nil && !errors.As(err, &invalid) {
			t.Fatalf("validation failed with %v", err)
		}
		if err != nil || len(fieldErrs) > 0 {
			return
		}
		if _, ok := invoice.ParseChannel(string(inv.Channel)); invoice.CheckInvoiceNumber(inv.Number) != "" || !ok ||
			inv.Amount < limits.AmountMin || inv.Amount > limits.AmountMax || inv.Customer.Name == "" {
			t.Fatalf("accepted an invalid invoice: %+v", inv)
		}
		raw, err := doku.GenerateBody(inv, doku.BodyDefaults{Info: "i", CustomerEmail: "e@x.co", ReceiptFooter: "f"})
		if err != nil {
			t.Fatal(err)
		}
		var sent struct {
			Order struct {
				Amount int64 `json:"amount"`
			} `json:"order"`
		}
		if err := json.Unmarshal(raw, &sent); err != nil || sent.Order.Amount != inv.Amount {
			t.Fatalf("DOKU body %s does not carry amount %d", raw, inv.Amount)
		}
	})
}
