// Package strictjson finds what encoding/json lets through silently: an object with the same key twice.
// encoding/json keeps the last one, other parsers the first, so a duplicated "amount" could mean two
// different payments to two readers of the same bytes.
package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
)

// ErrDuplicateKey is returned (wrapped with the key's path) for an object holding a key twice.
var ErrDuplicateKey = errors.New("duplicate key")

type frame struct {
	object    bool
	keys      map[string]struct{}
	expectKey bool
	key       string
}

// CheckDuplicateKeys returns an error naming the first duplicated key (as a dotted path), a JSON
// syntax error, or nil.
func CheckDuplicateKeys(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var stack []*frame
	valueDone := func() {
		if n := len(stack); n > 0 && stack[n-1].object {
			stack[n-1].expectKey = true
		}
	}
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			if len(stack) > 0 {
				return io.ErrUnexpectedEOF
			}
			return nil
		}
		if err != nil {
			return err
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{':
				stack = append(stack, &frame{object: true, keys: map[string]struct{}{}, expectKey: true})
			case '[':
				stack = append(stack, &frame{})
			default: // '}' or ']'
				stack = stack[:len(stack)-1]
				valueDone()
			}
		case string:
			if n := len(stack); n > 0 && stack[n-1].object && stack[n-1].expectKey {
				top := stack[n-1]
				if _, dup := top.keys[t]; dup {
					return &DuplicateKeyError{Path: path(stack, t)}
				}
				top.keys[t] = struct{}{}
				top.key = t
				top.expectKey = false
				continue
			}
			valueDone()
		default:
			valueDone()
		}
	}
}

// DuplicateKeyError names the duplicated key.
type DuplicateKeyError struct{ Path string }

func (e *DuplicateKeyError) Error() string { return "duplicate key " + e.Path }

// Unwrap lets errors.Is match ErrDuplicateKey.
func (e *DuplicateKeyError) Unwrap() error { return ErrDuplicateKey }

func path(stack []*frame, last string) string {
	var parts []string
	for _, f := range stack[:len(stack)-1] {
		if f.object {
			parts = append(parts, f.key)
		}
	}
	return strings.Join(append(parts, last), ".")
}
