// Package strictjson decodes the JSON that enters the service so that every reader of the same bytes
// sees the same values. encoding/json matches keys case-insensitively and keeps the last of two equal
// keys, so {"amount":1000,"AMOUNT":150000} means 150,000 to it and 1,000 to a stricter reader; it also
// replaces invalid UTF-8 silently. Here keys match exactly, a key given twice (or twice up to case) is
// refused, and the caller chooses how text that is not UTF-8 is treated.
//
// Decoding is done by github.com/go-json-experiment/json, the prototype of encoding/json/v2, whose
// defaults are exactly these rules; this package adds the case-variant check and turns its errors into
// ones that name the offending member.
package strictjson

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// Kind says what is wrong with a document.
type Kind int

const (
	// Syntax: not one well-formed JSON value (or not the kind of value expected at the top).
	Syntax Kind = iota + 1
	// Duplicate: an object holds the same key twice.
	Duplicate
	// CaseVariant: an object holds two keys that differ only in case ("amount" and "AMOUNT").
	CaseVariant
	// InvalidText: a string is not valid UTF-8 (raw bytes or an unpaired surrogate escape).
	InvalidText
	// Unknown: a key that the target type does not have (matched exactly, so "Amount" is unknown).
	Unknown
	// Type: a value of the wrong JSON type for its member.
	Type
)

// Error is a refused document. Path is the dotted path of the offending member ("customer.name"),
// empty when the problem is the document as a whole.
type Error struct {
	Kind   Kind
	Path   string
	Detail string
	// Want names the expected JSON type for Type errors ("number", "string", "boolean", "object").
	Want string
}

func (e *Error) Error() string {
	if e.Path == "" {
		return e.Detail
	}
	return e.Path + ": " + e.Detail
}

// Decode reads exactly one JSON value from data into dst for a request body the service defines: keys
// match dst's fields exactly, unknown keys, duplicate keys and text that is not valid UTF-8 are refused,
// and nothing may follow the value.
func Decode(data []byte, dst any) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return &Error{Kind: Syntax, Detail: "the body is empty; a JSON object is required"}
	}
	return translate(json.Unmarshal(data, dst, json.RejectUnknownMembers(true)), dst)
}

// DecodeForeign reads a document someone else defines (DOKU's notifications and answers), forgivingly
// where forgiving loses nothing and strictly where it could change the meaning: unknown keys are
// ignored (new fields appear without notice) and invalid UTF-8 is replaced with U+FFFD (the raw bytes
// are kept elsewhere), but keys still match exactly and a key given twice, or twice up to case, is
// refused — there is no right way to read {"amount":1000,"AMOUNT":150000}.
func DecodeForeign(data []byte, dst any) error {
	if err := CheckKeys(data); err != nil {
		return err
	}
	return translate(json.Unmarshal(data, dst, jsontext.AllowInvalidUTF8(true)), dst)
}

// CheckKeys refuses a document in which some object holds two keys that are equal, or equal up to
// case. Text that is not valid UTF-8 is tolerated here; whoever decodes decides about it.
func CheckKeys(data []byte) error {
	dec := jsontext.NewDecoder(bytes.NewReader(data), jsontext.AllowInvalidUTF8(true), jsontext.AllowDuplicateNames(true))
	type frame struct {
		object bool
		names  map[string]string // folded name -> name as written
		name   bool              // the next string token is a name
	}
	var stack []*frame
	for {
		tok, err := dec.ReadToken()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return translate(err, nil)
		}
		top := (*frame)(nil)
		if n := len(stack); n > 0 {
			top = stack[n-1]
		}
		if top != nil && top.object && top.name && tok.Kind() == '"' {
			name := tok.String()
			folded := strings.ToLower(name)
			if prev, seen := top.names[folded]; seen {
				path := pointerPath(dec.StackPointer())
				if prev == name {
					return &Error{Kind: Duplicate, Path: path, Detail: "is given more than once"}
				}
				return &Error{Kind: CaseVariant, Path: path, Detail: fmt.Sprintf("is also given as %q; keys must differ by more than case", prev)}
			}
			top.names[folded] = name
			top.name = false
			continue
		}
		switch tok.Kind() {
		case '{':
			stack = append(stack, &frame{object: true, names: map[string]string{}, name: true})
			continue
		case '[':
			stack = append(stack, &frame{})
			continue
		case '}', ']':
			stack = stack[:len(stack)-1]
		}
		// A value (or a closed container) ends a member: the next token of the enclosing object is a name.
		if n := len(stack); n > 0 && stack[n-1].object {
			stack[n-1].name = true
		}
	}
}

// translate turns the decoder's errors into *Error.
func translate(err error, dst any) error {
	if err == nil {
		return nil
	}
	var (
		syn *jsontext.SyntacticError
		sem *json.SemanticError
	)
	switch {
	case errors.As(err, &syn):
		path := pointerPath(syn.JSONPointer)
		msg := syn.Err.Error()
		switch {
		case errors.Is(syn.Err, jsontext.ErrDuplicateName):
			return &Error{Kind: Duplicate, Path: path, Detail: "is given more than once"}
		case strings.Contains(msg, "invalid UTF-8"), strings.Contains(msg, "surrogate"):
			// The decoder's sentinel for these is internal; its message is pinned by this package's tests.
			return &Error{Kind: InvalidText, Path: path, Detail: "must be valid UTF-8 text"}
		case errors.Is(syn.Err, io.ErrUnexpectedEOF):
			return &Error{Kind: Syntax, Detail: "the JSON is truncated"}
		}
		return &Error{Kind: Syntax, Detail: fmt.Sprintf("malformed JSON at byte %d: %s", syn.ByteOffset, msg)}
	case errors.As(err, &sem):
		path := pointerPath(sem.JSONPointer)
		if errors.Is(sem.Err, json.ErrUnknownName) {
			return &Error{Kind: Unknown, Path: path, Detail: "is not a known field"}
		}
		if path == "" {
			return &Error{Kind: Syntax, Detail: "the body must be a JSON " + kindName(typeOf(dst))}
		}
		want := kindName(sem.GoType)
		return &Error{Kind: Type, Path: path, Want: want, Detail: "must be a JSON " + want}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &Error{Kind: Syntax, Detail: "the JSON is truncated"}
	}
	return &Error{Kind: Syntax, Detail: err.Error()}
}

func typeOf(v any) reflect.Type {
	if v == nil {
		return nil
	}
	return reflect.TypeOf(v)
}

// kindName is the JSON name of the kind of value a Go type holds.
func kindName(t reflect.Type) string {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil {
		return "value"
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		return "number"
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Struct, reflect.Map:
		return "object"
	case reflect.Slice, reflect.Array:
		return "array"
	}
	return "value"
}

// pointerPath turns a JSON Pointer ("/customer/name") into the dotted path clients see.
func pointerPath(p jsontext.Pointer) string {
	var parts []string
	for tok := range p.Tokens() {
		parts = append(parts, tok)
	}
	return strings.Join(parts, ".")
}
