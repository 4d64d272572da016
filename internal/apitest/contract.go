package apitest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

var (
	specOnce   sync.Once
	specDoc    *openapi3.T
	specRouter routers.Router
	specErr    error
)

// SpecPath is api/openapi.yaml, found relative to this file so tests in any package can load it.
func SpecPath() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "api", "openapi.yaml")
}

func loadSpec() (routers.Router, error) {
	specOnce.Do(func() {
		// The payment page is HTML: a string, as far as the contract checks it.
		openapi3filter.RegisterBodyDecoder("text/html", openapi3filter.PlainBodyDecoder)
		doc, err := openapi3.NewLoader().LoadFromFile(SpecPath())
		if err != nil {
			specErr = err
			return
		}
		if err := doc.Validate(context.Background()); err != nil {
			specErr = err
			return
		}
		specDoc = doc
		specRouter, specErr = gorillamux.NewRouter(doc)
	})
	return specRouter, specErr
}

// ContractTransport checks every response that passes through it against api/openapi.yaml: the
// route and status must be documented and the body must match its schema (which forbids fields the
// spec does not have). A mismatch fails the test, so the document cannot drift from the code.
type ContractTransport struct {
	T    testing.TB
	Base http.RoundTripper
}

func (c *ContractTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := c.Base.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if resp.StatusCode == http.StatusRequestHeaderFieldsTooLarge {
		// Answered by net/http itself before any handler runs: not part of the API's contract.
		return resp, nil
	}
	if verr := CheckResponse(req, resp.StatusCode, resp.Header, body); verr != nil {
		c.T.Errorf("contract: %s %s -> %d does not match api/openapi.yaml: %v\nbody: %s", req.Method, req.URL.Path, resp.StatusCode, verr, body)
	}
	return resp, nil
}

// CheckResponse validates one response against the spec.
func CheckResponse(req *http.Request, status int, header http.Header, body []byte) error {
	router, err := loadSpec()
	if err != nil {
		return err
	}
	route, params, err := router.FindRoute(req)
	if err != nil {
		// A path or method the API does not have must still answer with a documented problem.
		if status != http.StatusNotFound && status != http.StatusMethodNotAllowed {
			return err
		}
		return checkProblem(header, body)
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{
			Request: req, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc},
		},
		Status: status,
		Header: header,
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true,
			// A stream's body is its events, each checked against its schema as it is read (SSE).
			ExcludeResponseBody: strings.HasPrefix(header.Get("Content-Type"), "text/event-stream")},
	}
	in.SetBodyBytes(body)
	return openapi3filter.ValidateResponse(req.Context(), in)
}

func checkProblem(header http.Header, body []byte) error {
	if ct := header.Get("Content-Type"); ct != "application/problem+json" {
		return fmt.Errorf("content type %q, want application/problem+json", ct)
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return err
	}
	return specDoc.Components.Schemas["Problem"].Value.VisitJSON(v)
}
