package strictjson

import (
	"errors"
	"testing"
)

func TestCheckDuplicateKeys(t *testing.T) {
	for body, want := range map[string]string{
		`{"a":1,"b":2}`:                         "",
		`{"a":{"x":1},"b":{"x":1}}`:             "",
		`[{"a":1},{"a":1}]`:                     "",
		`{"a":[{"k":1,"k":2}]}`:                 "a.k",
		`{"a":1,"a":2}`:                         "a",
		`{"order":{"amount":1,"amount":900}}`:   "order.amount",
		`{"a":"a","b":{"c":[1,{"d":1}],"c":2}}`: "b.c",
		`{"x":{"y":{}},"x":1}`:                  "x",
		`"just a string"`:                       "",
		`{"a\u0062":1,"ab":2}`:                  "ab",
	} {
		err := CheckDuplicateKeys([]byte(body))
		var de *DuplicateKeyError
		switch {
		case want == "" && err != nil:
			t.Errorf("%s: %v", body, err)
		case want != "" && (!errors.As(err, &de) || de.Path != want || !errors.Is(err, ErrDuplicateKey)):
			t.Errorf("%s: %v, want duplicate %s", body, err, want)
		}
	}
	if err := CheckDuplicateKeys([]byte(`{"a":`)); err == nil || errors.Is(err, ErrDuplicateKey) {
		t.Fatalf("truncated JSON: %v", err)
	}
}

func FuzzCheckDuplicateKeys(f *testing.F) {
	for _, s := range []string{`{"a":1,"a":2}`, `{"a":[{"b":{}}]}`, `[1,"x",null,true]`, `{"a":`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		_ = CheckDuplicateKeys(data) // must not panic on any input
	})
}
