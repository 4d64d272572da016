package strictjson

import (
	"encoding/json"
	"errors"
	"testing"
)

type customer struct {
	Name  string `json:"name"`
	Email string `json:"email"`
}

type request struct {
	Number   string          `json:"invoice_number"`
	Amount   json.RawMessage `json:"amount"`
	Customer *customer       `json:"customer"`
	Minutes  *int            `json:"expires_in_minutes"`
	Metadata json.RawMessage `json:"metadata"`
}

func TestDecode(t *testing.T) {
	for _, tc := range []struct {
		body string
		kind Kind
		path string
	}{
		{`{"invoice_number":"A","amount":1,"customer":{"name":"n"}}`, 0, ""},
		{`{"metadata":{"a":1,"A":2}}`, 0, ""}, // free-form: case variants are different keys there
		{`{"invoice_number":"x\u0000"}`, 0, ""},
		{`{"Amount":1}`, Unknown, "Amount"},
		{`{"amount":1,"AMOUNT":2}`, Unknown, "AMOUNT"},
		{`{"amount":1,"amount":2}`, Duplicate, "amount"},
		{`{"customer":{"name":"a","Name":"b"}}`, Unknown, "customer.Name"},
		{`{"customer":{"name":"a","phone":"1"}}`, Unknown, "customer.phone"},
		{`{"metadata":{"a":1,"a":2}}`, Duplicate, "metadata.a"},
		{"{\"invoice_number\":\"x\xff\"}", InvalidText, "invoice_number"},
		{`{"customer":{"name":"x\ud800"}}`, InvalidText, "customer.name"},
		{`{"metadata":{"k":["\udc00"]}}`, InvalidText, "metadata.k.0"},
		{`{"expires_in_minutes":"60"}`, Type, "expires_in_minutes"},
		{`{"expires_in_minutes":1.5}`, Type, "expires_in_minutes"},
		{`{"invoice_number":1001}`, Type, "invoice_number"},
		{`{"invoice_number":"A"} {"b":2}`, Syntax, ""},
		{`[1,2]`, Syntax, ""},
		{`{"invoice_number":"A",`, Syntax, ""},
		{``, Syntax, ""},
		{`   `, Syntax, ""},
		{`invoice_number=1`, Syntax, ""},
	} {
		var r request
		err := Decode([]byte(tc.body), &r)
		var e *Error
		switch {
		case tc.kind == 0 && err != nil:
			t.Errorf("%q: %v", tc.body, err)
		case tc.kind != 0 && (!errors.As(err, &e) || e.Kind != tc.kind || e.Path != tc.path):
			t.Errorf("%q: %#v, want kind %d at %q", tc.body, err, tc.kind, tc.path)
		}
	}
}

type notification struct {
	Order struct {
		InvoiceNumber string `json:"invoice_number"`
		Amount        int64  `json:"amount"`
	} `json:"order"`
	ID string `json:"id"`
}

func TestDecodeForeign(t *testing.T) {
	var n notification
	if err := DecodeForeign([]byte("{\"order\":{\"invoice_number\":\"A\xffB\",\"amount\":5,\"new_field\":1},\"extra\":[1]}"), &n); err != nil {
		t.Fatal(err)
	}
	if n.Order.InvoiceNumber != "A\uFFFDB" || n.Order.Amount != 5 {
		t.Fatalf("decoded %+v", n)
	}
	for _, tc := range []struct {
		body string
		kind Kind
		path string
	}{
		{`{"order":{"amount":1000,"AMOUNT":150000}}`, CaseVariant, "order.AMOUNT"},
		{`{"order":{"amount":1000},"Order":{"amount":150000}}`, CaseVariant, "Order"},
		{`{"order":{"amount":1,"amount":2}}`, Duplicate, "order.amount"},
		{`{"x":[{"k":1,"K":2}]}`, CaseVariant, "x.0.K"},
		{`{"order":{"amount":"1"}}`, Type, "order.amount"},
		{`{"order":`, Syntax, ""},
	} {
		var n notification
		err := DecodeForeign([]byte(tc.body), &n)
		var e *Error
		if !errors.As(err, &e) || e.Kind != tc.kind || e.Path != tc.path {
			t.Errorf("%q: %#v, want kind %d at %q", tc.body, err, tc.kind, tc.path)
		}
	}
	// Only exact keys are read: a key differing in case alone is an unknown field, so ignored.
	var only notification
	if err := DecodeForeign([]byte(`{"ORDER":{"amount":9}}`), &only); err != nil || only.Order.Amount != 0 {
		t.Fatalf("a case-variant key was read as the real one: %+v %v", only, err)
	}
}

func TestCheckKeys(t *testing.T) {
	for body, want := range map[string]string{
		`{"a":1,"b":2}`:                         "",
		`{"a":{"x":1},"b":{"x":1}}`:             "",
		`[{"a":1},{"a":1}]`:                     "",
		`{"a":[{"k":1,"k":2}]}`:                 "a.0.k",
		`{"a":1,"a":2}`:                         "a",
		`{"a":"a","b":{"c":[1,{"d":1}],"c":2}}`: "b.c",
		`{"x":{"y":{}},"x":1}`:                  "x",
		`"just a string"`:                       "",
		`{"a\u0062":1,"ab":2}`:                  "ab",
		`{"ab":1,"aB":2}`:                       "aB",
	} {
		err := CheckKeys([]byte(body))
		var e *Error
		switch {
		case want == "" && err != nil:
			t.Errorf("%s: %v", body, err)
		case want != "" && (!errors.As(err, &e) || e.Path != want || (e.Kind != Duplicate && e.Kind != CaseVariant)):
			t.Errorf("%s: %v, want a repeated key at %s", body, err, want)
		}
	}
	var e *Error
	if err := CheckKeys([]byte(`{"a":`)); !errors.As(err, &e) || e.Kind != Syntax {
		t.Fatalf("truncated JSON: %v", err)
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range []string{`{"amount":1,"AMOUNT":2}`, `{"customer":{"name":"\ud800"}}`, `[1,"x",null,true]`, `{"a":`, "{\"x\":\"\xff\"}"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var r request
		if err := Decode(data, &r); err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Kind == 0 {
				t.Fatalf("error without a kind: %v", err)
			}
		}
		var n notification
		_ = DecodeForeign(data, &n) // must not panic on any input
	})
}
