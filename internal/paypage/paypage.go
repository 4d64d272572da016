// Package paypage renders the customer's payment page: the store, the payment code, the amount, the
// deadline and the steps at the counter, on one server-rendered page that works without JavaScript
// and follows the invoice live with it. Everything it needs is embedded in the binary and inlined in
// the page, so its Content-Security-Policy allows nothing but the page itself.
package paypage

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"fmt"
	"html/template"
	"io"
	"strconv"
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
	// Now is the server's clock when the page is rendered: the countdown's first text, and the clock
	// the page's script counts down on (a customer's phone may be minutes off).
	Now time.Time
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

// wib is Western Indonesia Time, in which DOKU states deadlines and customers read them. Indonesia
// has no daylight saving, so a fixed offset is exact (and needs no time zone database).
var wib = time.FixedZone("WIB", 7*60*60)

// model is what the template reads: the page, with everything worked out in Go so the template only
// places it.
type model struct {
	Page
	T      map[string]string
	State  string // the view shown: creating, pending, paid, expired, cancelled or failed
	Final  bool   // the invoice will not change again: no refresh, no stream
	Stores string // the stores that take the code, as a sentence
	Code   string // the payment code as issued
	Group  string // the code in groups of four, for reading aloud
	Amount string // Rp150.000

	Deadline   string // in WIB, in the page's language
	ExpiresISO string // the deadline for the script (RFC 3339, UTC)
	Left       string // the time left at Now, as the countdown first shows it
	NowMS      int64  // Now for the script, which counts down on the server's clock
	PaidAmount string
	PaidAt     string // in WIB
	Steps      []steps
	// FromDOKU (over Page's) is whether the steps shown are DOKU's: DOKU's empty answer is none.
	FromDOKU bool
	// StepsLang is the language of the steps when it is not the page's: DOKU's are shown as DOKU
	// words them, in Indonesian, on the English page too (they are what the cashier knows), and a
	// screen reader must read them as Indonesian.
	StepsLang   string
	Fee         bool   // DOKU's steps say the cashier may charge a fee
	OtherLang   string // the language the switch offers, and its name in that language
	OtherName   string
	StateTitles map[string]string // each state's status line, in the page's language
}

// dokuStepsLang is the language of DOKU's how_to_pay_api steps. DOKU documents neither their shape nor
// their wording; its counter instructions for Indonesian stores are in Indonesian, and so are the
// simulator's (api/DOKU.md, "How to pay").
const dokuStepsLang = "id"

// steps are one list of steps at the counter, with its heading when there are several.
type steps struct {
	Title string
	Steps []string
}

// Render writes the page.
func Render(w io.Writer, p Page) error {
	m, err := build(p)
	if err != nil {
		return err
	}
	var b bytes.Buffer
	if err := page.Execute(&b, m); err != nil {
		return err
	}
	_, err = w.Write(b.Bytes())
	return err
}

func build(p Page) (*model, error) {
	if text[p.Lang] == nil {
		p.Lang = "id"
	}
	if p.Now.IsZero() {
		p.Now = time.Now()
	}
	t := text[p.Lang]
	inv := p.Invoice
	m := &model{Page: p, T: t, Stores: storeList(inv.Channel, t["or"]), Amount: Rupiah(inv.Amount), NowMS: p.Now.UnixMilli(),
		FromDOKU: p.FromDOKU && len(p.Instructions) > 0}
	m.OtherLang, m.OtherName = "en", text["en"]["lang_name"]
	if p.Lang == "en" {
		m.OtherLang, m.OtherName = "id", text["id"]["lang_name"]
	}
	m.StateTitles = map[string]string{}
	for _, s := range []string{"creating", "pending", "paid", "expired", "cancelled", "failed"} {
		m.StateTitles[s] = t["status_"+s]
	}
	if inv.PaymentCode != nil {
		m.Code, m.Group = *inv.PaymentCode, GroupCode(*inv.PaymentCode)
	}
	var expires time.Time
	if inv.ExpiresAt != nil {
		e, err := time.Parse(time.RFC3339, *inv.ExpiresAt)
		if err != nil {
			return nil, fmt.Errorf("paypage: expires_at %q: %w", *inv.ExpiresAt, err)
		}
		expires = e
		m.ExpiresISO, m.Deadline = e.UTC().Format(time.RFC3339), FormatWIB(e, p.Lang)
		m.Left = Countdown(e.Sub(p.Now), p.Lang)
	}
	m.State = string(inv.Status)
	switch inv.Status {
	case invoice.StatusPending:
		// A code past its deadline cannot be paid at the counter, whatever the invoice says yet.
		if !expires.IsZero() && !p.Now.Before(expires) {
			m.State = "expired"
		}
	case invoice.StatusCreating:
	case invoice.StatusPaid, invoice.StatusExpired, invoice.StatusCancelled, invoice.StatusFailed:
		m.Final = true
	default:
		return nil, fmt.Errorf("paypage: status %q has no view", inv.Status)
	}
	paid := inv.TotalPaid
	if paid == 0 {
		paid = inv.Amount
	}
	m.PaidAmount = Rupiah(paid)
	if inv.PaidAt != nil {
		if at, err := time.Parse(time.RFC3339, *inv.PaidAt); err == nil {
			m.PaidAt = FormatWIB(at, p.Lang)
		}
	}
	if m.FromDOKU {
		if p.Lang != dokuStepsLang {
			m.StepsLang = dokuStepsLang
		}
		for _, in := range p.Instructions {
			title := in.Channel
			if len(p.Instructions) == 1 {
				title = ""
			}
			m.Steps = append(m.Steps, steps{Title: title, Steps: in.Steps})
			for _, s := range in.Steps {
				m.Fee = m.Fee || MentionsFee(s)
			}
		}
	} else if m.Code != "" {
		r := strings.NewReplacer("{stores}", m.Stores, "{code}", m.Group, "{amount}", m.Amount)
		var own []string
		for _, s := range ownSteps[p.Lang] {
			own = append(own, r.Replace(s))
		}
		m.Steps = []steps{{Steps: own}}
	}
	return m, nil
}

// storeList names a channel's stores as a sentence: "Alfamart, Alfamidi, Lawson atau Dan+Dan".
func storeList(ch invoice.Channel, or string) string {
	names := stores[ch]
	switch len(names) {
	case 0:
		return string(ch)
	case 1:
		return names[0]
	}
	return strings.Join(names[:len(names)-1], ", ") + " " + or + " " + names[len(names)-1]
}

// Rupiah formats an amount as Indonesians write it: Rp150.000 (a point between thousands, no
// decimals: the rupiah has no subunit in use).
func Rupiah(n int64) string {
	sign := ""
	if n < 0 {
		sign, n = "-", -n
	}
	digits := strconv.FormatInt(n, 10)
	var b strings.Builder
	for i, c := range digits {
		if i > 0 && (len(digits)-i)%3 == 0 {
			b.WriteByte('.')
		}
		b.WriteRune(c)
	}
	return sign + "Rp" + b.String()
}

// GroupCode splits a payment code into groups of four from the left, as it is read out to a cashier.
func GroupCode(code string) string {
	var b strings.Builder
	for i, c := range code {
		if i > 0 && i%4 == 0 {
			b.WriteByte(' ')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// FormatWIB is t in WIB as a customer reads it: "Senin, 2 Maret 2026 pukul 15.04 WIB" or
// "Monday, 2 March 2026 at 15:04 WIB", with no-break spaces around the time so that a narrow screen
// never puts "WIB" on a line of its own. page.js writes the same.
func FormatWIB(t time.Time, lang string) string {
	tx := text[lang]
	if tx == nil {
		tx = text["id"]
	}
	t = t.In(wib)
	days, months := strings.Split(tx["days"], ","), strings.Split(tx["months"], ",")
	return fmt.Sprintf("%s, %d %s %d %s\u00a0%02d%s%02d\u00a0WIB", days[t.Weekday()], t.Day(), months[t.Month()-1], t.Year(),
		tx["at"], t.Hour(), tx["time_sep"], t.Minute())
}

// Countdown is the time left as the page shows it: "1 jam 5 menit 9 detik", "2 d 3 h 4 min"; seconds
// are left out when days are shown. page.js writes the same.
func Countdown(d time.Duration, lang string) string {
	tx := text[lang]
	if tx == nil {
		tx = text["id"]
	}
	u := strings.Split(tx["units"], ",")
	s := int64(d / time.Second)
	if s < 0 {
		s = 0
	}
	days, hours, mins, secs := s/86400, s/3600%24, s/60%60, s%60
	switch {
	case days > 0:
		return fmt.Sprintf("%d %s %d %s %d %s", days, u[0], hours, u[1], mins, u[2])
	case hours > 0:
		return fmt.Sprintf("%d %s %d %s %d %s", hours, u[1], mins, u[2], secs, u[3])
	case mins > 0:
		return fmt.Sprintf("%d %s %d %s", mins, u[2], secs, u[3])
	}
	return fmt.Sprintf("%d %s", secs, u[3])
}

// feeWords are what DOKU's steps say when the cashier charges something on top: "biaya" (a cost),
// "admin" (an administration fee), "fee".
var feeWords = []string{"biaya", "fee", "admin"}

// MentionsFee reports whether a step of DOKU's speaks of a fee, so the page warns of it — only then:
// we know of no fee DOKU does not announce.
func MentionsFee(step string) bool {
	s := strings.ToLower(step)
	for _, w := range feeWords {
		if strings.Contains(s, w) {
			return true
		}
	}
	return false
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
	if text[lang] == nil {
		lang = "id"
	}
	msg := text[lang]["not_found"]
	if status != 404 {
		msg = text[lang]["unavailable"]
	}
	return errorPage.Execute(w, struct{ Lang, Message string }{lang, msg})
}

var errorPage = template.Must(template.New("error").Funcs(template.FuncMap{
	"css": func() template.CSS { return template.CSS(css) },
}).Parse(`<!doctype html><html lang="{{.Lang}}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><link rel="icon" href="data:,"><title>{{.Message}}</title><style>{{css}}</style></head><body><main class="card"><p class="error">{{.Message}}</p></main></body></html>`))
