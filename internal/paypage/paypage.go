// Package paypage renders the customer's payment page: the store, the payment code, the amount, the
// deadline and the steps at the counter, on one server-rendered page that works without JavaScript
// and turns green live with it. Everything it needs is embedded in the binary and inlined in the page,
// so its Content-Security-Policy allows nothing but the page itself.
package paypage

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"html/template"
	"io"
	"strings"
	"time"

	"github.com/merchant/o2o/internal/invoice"
	"github.com/merchant/o2o/internal/view"
)

// Page is what one view of the page shows.
type Page struct {
	Invoice view.CustomerInvoice
	// Instructions are DOKU's steps when FromDOKU, else none (the page shows its own for the channel).
	Instructions []invoice.Instruction
	FromDOKU     bool
	// Lang is "id" or "en" (Language); Path is the page's own path, StreamPath its stream's.
	Lang       string
	Path       string
	StreamPath string
	Now        time.Time
}

//go:embed page.css
var css string

//go:embed page.js
var js string

//go:embed page.html
var pageHTML string

var page = template.Must(template.New("page").Funcs(template.FuncMap{
	"css": func() template.CSS { return template.CSS(css) },
	"js":  func() template.JS { return template.JS(js) },
}).Parse(pageHTML))

// CSP is the page's Content-Security-Policy: its own inline style and script (by hash), its own
// stream, nothing else — no other origin, no frame around it.
var CSP = "default-src 'none'; style-src '" + hash(css) + "'; script-src '" + hash(js) + "'; connect-src 'self'; img-src 'self' data:; " +
	"base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

func hash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "sha256-" + base64.StdEncoding.EncodeToString(sum[:])
}

// Render writes the page.
func Render(w io.Writer, p Page) error {
	var b bytes.Buffer
	if err := page.Execute(&b, p); err != nil {
		return err
	}
	_, err := w.Write(b.Bytes())
	return err
}

// Language is the page's language: ?lang= when it names one, else Indonesian unless the browser
// prefers English.
func Language(acceptLanguage, query string) string {
	switch query {
	case "id", "en":
		return query
	}
	for _, part := range strings.Split(acceptLanguage, ",") {
		tag := strings.ToLower(strings.TrimSpace(strings.SplitN(part, ";", 2)[0]))
		switch {
		case strings.HasPrefix(tag, "id"):
			return "id"
		case strings.HasPrefix(tag, "en"):
			return "en"
		}
	}
	return "id"
}

// RenderError writes the page for an address that opens nothing (404) or a moment the service cannot
// answer (503).
func RenderError(w io.Writer, lang string, status int) error {
	msg := map[string]string{"id": "Halaman pembayaran ini tidak ada atau sudah tidak berlaku.", "en": "This payment page does not exist or is no longer available."}
	if status != 404 {
		msg = map[string]string{"id": "Layanan sedang tidak tersedia. Silakan coba lagi sebentar lagi.", "en": "The service is unavailable. Please try again shortly."}
	}
	return errorPage.Execute(w, struct{ Lang, Message string }{lang, msg[lang]})
}

var errorPage = template.Must(template.New("error").Funcs(template.FuncMap{
	"css": func() template.CSS { return template.CSS(css) },
}).Parse(`<!doctype html><html lang="{{.Lang}}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><title>{{.Message}}</title><style>{{css}}</style></head><body><main><p>{{.Message}}</p></main></body></html>`))
