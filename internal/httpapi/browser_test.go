package httpapi_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/merchant/o2o/internal/apitest"
	"github.com/merchant/o2o/internal/config"
	"github.com/merchant/o2o/internal/paypage"
)

// The payment page as a customer's browser shows it: headless Chromium (Debian's chromium package),
// driven over the DevTools protocol, against a whole stack — the service, its database and the DOKU
// simulator. One browser serves every check; each check opens a tab of its own.
//
// Screenshots of the four states in both languages go to $O2O_SCREENSHOTS when it is set (to look
// at), else to a temporary directory.

// chromium is the browser to drive: $CHROMIUM, else Debian's /usr/bin/chromium, else one on PATH.
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p
	}
	if _, err := os.Stat("/usr/bin/chromium"); err == nil {
		return "/usr/bin/chromium"
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	// A browser test that is not run must not pass: fail, and say how to get one.
	t.Fatal("no Chromium for the browser tests: install it (Debian: apt-get install -y chromium; .ci/run does) or set CHROMIUM to a Chrome or Chromium binary")
	return ""
}

// startBrowser starts one headless Chromium for the test, stopped when the test ends.
func startBrowser(t *testing.T) context.Context {
	t.Helper()
	path := chromium(t)
	profile := t.TempDir() // registered first, so it is removed after the browser has stopped
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.UserDataDir(profile),
		chromedp.NoSandbox, // the tests run as root in CI, where Chromium's sandbox refuses to start
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		// A phone in Indonesia: the page's default language must be what such a browser asks for.
		chromedp.Flag("accept-lang", "id-ID,id"),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	// The first action starts the browser and ties its life to the context it is given: ctx itself.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting %s: %v (Debian: apt-get install -y chromium)", path, err)
	}
	return ctx
}

// tab is one page open in the browser, with what it wrote to its console and the Content-Security-
// Policy violations it reported.
type tab struct {
	t   *testing.T
	ctx context.Context

	mu      sync.Mutex
	console []chromedp.ConsoleMessage
}

// cspProbe records every CSP violation in the page, before the page's own script runs.
const cspProbe = `window.__csp = []; document.addEventListener("securitypolicyviolation", function (e) { window.__csp.push(e.violatedDirective + " " + e.blockedURI); });`

// open opens rawURL in a new tab of the browser, on a phone-sized screen, and waits until it has
// loaded. The tab closes when the test ends, after its console has been checked.
func open(t *testing.T, bctx context.Context, rawURL string) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(bctx)
	tb := &tab{t: t, ctx: ctx}
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil { // opens the tab
		t.Fatal(err)
	}
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			tb.mu.Lock()
			tb.console = append(tb.console, m)
			tb.mu.Unlock()
		}
	}()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	origin := u.Scheme + "://" + u.Host
	// The page's copy button writes to the clipboard, and the test reads it back: a person would be
	// asked once; the test grants it. Focus is emulated so that every tab counts as the focused one.
	for _, name := range []string{"clipboard-read", "clipboard-write"} {
		if _, err := chromedp.CallBrowser(ctx, browser.SetPermission, browser.SetPermissionParams{
			Permission: &browser.PermissionDescriptor{Name: name}, Setting: "granted", Origin: origin}); err != nil {
			t.Fatalf("grant %s: %v", name, err)
		}
	}
	if _, err := chromedp.Call(ctx, emulation.SetFocusEmulationEnabled, emulation.SetFocusEmulationEnabledParams{Enabled: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: cspProbe}); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile), chromedp.Navigate(rawURL)); err != nil {
		t.Fatalf("open %s: %v", rawURL, err)
	}
	t.Cleanup(tb.checkConsole)
	return tb
}

// checkConsole fails the test on any error the page wrote to its console — an exception, a failed
// request, a CSP violation — or reported through securitypolicyviolation.
func (tb *tab) checkConsole() {
	tb.t.Helper()
	if csp, err := chromedp.Run(tb.ctx, chromedp.Evaluate[[]string](`window.__csp || []`)); err == nil && len(csp) > 0 {
		tb.t.Errorf("the page broke its Content-Security-Policy: %v", csp)
	}
	time.Sleep(50 * time.Millisecond) // the console's last messages are delivered from another goroutine
	tb.mu.Lock()
	defer tb.mu.Unlock()
	for _, m := range tb.console {
		switch m.Type {
		case chromedp.ConsoleError, chromedp.ConsoleException:
			tb.t.Errorf("console %s: %s (%s:%d)", m.Type, m.Text, m.URL, m.Line+1)
		case chromedp.ConsoleWarning:
			tb.t.Logf("console warning: %s", m.Text)
		}
	}
}

// eval evaluates a JavaScript expression in the page.
func eval[T any](tb *tab, expr string) T {
	tb.t.Helper()
	v, err := chromedp.Run(tb.ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		tb.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

func (tb *tab) do(actions ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	if err := chromedp.Do(tb.ctx, actions...); err != nil {
		tb.t.Fatal(err)
	}
}

// text is the visible text of the first element sel matches ("" when none or hidden).
func (tb *tab) text(sel string) string {
	tb.t.Helper()
	return eval[string](tb, fmt.Sprintf(`(function () { var e = document.querySelector(%q); return e && e.getClientRects().length ? e.innerText.trim() : ""; })()`, sel))
}

// waitState waits until the page shows state, and says how long that took.
func (tb *tab) waitState(state string, within time.Duration) time.Duration {
	tb.t.Helper()
	start := time.Now()
	for {
		got := eval[string](tb, `document.body.getAttribute("data-state")`)
		if got == state {
			return time.Since(start)
		}
		if time.Since(start) > within {
			tb.t.Fatalf("the page shows %q after %v, want %q", got, within, state)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// waitLive waits until the page follows its invoice through the stream: its script has had the
// stream's first message.
func (tb *tab) waitLive() {
	tb.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !eval[bool](tb, `document.body.hasAttribute("data-live")`) {
		if time.Now().After(deadline) {
			tb.t.Fatal("the page did not open its stream within 5 s")
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// shot saves a screenshot of the whole page as name.png in the screenshot directory.
func (tb *tab) shot(dir, name string) {
	tb.t.Helper()
	eval[bool](tb, `document.activeElement && document.activeElement.blur && (document.activeElement.blur(), true)`) // no focus ring in a picture of the state
	png, err := chromedp.Run(tb.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		tb.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		tb.t.Fatal(err)
	}
}

// shotDir is where the screenshots go: $O2O_SCREENSHOTS, else a temporary directory.
func shotDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("O2O_SCREENSHOTS")
	if dir == "" {
		return t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", dir)
	return dir
}

// contrastJS lists the text on the page whose colour has less than 4.5:1 contrast with the
// background behind it (WCAG's minimum for body text, held for all of the page's text).
const contrastJS = `(function () {
	function rgb(c) { var m = c.match(/[\d.]+/g).map(Number); return { r: m[0], g: m[1], b: m[2], a: m.length > 3 ? m[3] : 1 }; }
	function lum(c) {
		var w = [0.2126, 0.7152, 0.0722];
		return [c.r, c.g, c.b].reduce(function (s, v, i) { v /= 255; return s + w[i] * (v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4)); }, 0);
	}
	function behind(e) {
		for (; e; e = e.parentElement) { var c = rgb(getComputedStyle(e).backgroundColor); if (c.a > 0) return c; }
		return { r: 255, g: 255, b: 255, a: 1 };
	}
	var low = [];
	document.querySelectorAll("body *").forEach(function (e) {
		var own = Array.prototype.some.call(e.childNodes, function (n) { return n.nodeType === 3 && n.textContent.trim() !== ""; });
		if (!own || !e.getClientRects().length || getComputedStyle(e).visibility === "hidden") return;
		var a = lum(rgb(getComputedStyle(e).color)), b = lum(behind(e));
		var ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
		if (ratio < 4.5) low.push(e.tagName.toLowerCase() + " \"" + e.textContent.trim().slice(0, 40) + "\" " + ratio.toFixed(2) + ":1");
	});
	return low;
})()`

// contrast fails the test on text of too little contrast.
func (tb *tab) contrast() {
	tb.t.Helper()
	for _, low := range eval[[]string](tb, contrastJS) {
		tb.t.Errorf("low contrast: %s", low)
	}
}

// markPage leaves a mark in the page's window, which a reload would wipe: the page changed without one
// while noReload still finds it.
func markPage(tb *tab) { eval[bool](tb, `(window.__noReload = true)`) }
func noReload(tb *tab) {
	tb.t.Helper()
	if !eval[bool](tb, `window.__noReload === true`) {
		tb.t.Error("the page was reloaded")
	}
}

func TestBrowserPaymentPage(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, apitest.Options{})
	bctx := startBrowser(t)
	shots := shotDir(t)

	create := func(number, channel string) (apitest.InvoiceView, string) {
		t.Helper()
		inv := s.Create(apitest.NewInvoice(number, channel)).Invoice(t)
		return inv, s.URL + pagePath(t, inv)
	}

	// The page shows the store, the code in groups, the amount, the deadline in WIB with a countdown
	// that moves, and DOKU's steps with the fee note they call for.
	t.Run("shows the code, amount and deadline", func(t *testing.T) {
		inv, link := create("INV-BR-SHOW", "alfa")
		tb := open(t, bctx, link)
		code := inv.Code(t)
		expires, err := time.Parse(time.RFC3339, *inv.ExpiresAt)
		if err != nil {
			t.Fatal(err)
		}
		for sel, want := range map[string]string{
			"h1":                        "Pembayaran di Alfamart, Alfamidi, Lawson atau Dan+Dan",
			"#code":                     paypage.GroupCode(code),
			".pay .amount":              "Rp150.000",
			"time":                      paypage.FormatWIB(expires, "id"),
			"#status":                   "Menunggu pembayaran",
			".steps ol li:nth-child(3)": "Sampaikan kepada kasir bahwa Anda ingin melakukan pembayaran DOKU.",
			".fee":                      "Kasir dapat mengenakan biaya layanan di luar jumlah ini.",
		} {
			if got := tb.text(sel); got != want {
				t.Errorf("%s shows %q, want %q", sel, got, want)
			}
		}
		if got := tb.text("#code"); strings.ReplaceAll(got, " ", "") != code || len(strings.Fields(got)) != 4 {
			t.Errorf("the code %s is shown as %q, want four groups of four", code, got)
		}
		first := tb.text("#left")
		if !regexp.MustCompile(`^59 menit \d+ detik$`).MatchString(first) {
			t.Errorf("the countdown shows %q", first)
		}
		time.Sleep(1200 * time.Millisecond)
		if second := tb.text("#left"); second == first || second == "" {
			t.Errorf("the countdown did not move in 1.2 s: %q, then %q", first, second)
		}
		tb.contrast()
		tb.shot(shots, "pending-id")

		indo, link := create("INV-BR-INDO", "indomaret")
		ti := open(t, bctx, link)
		if got := ti.text("h1"); got != "Pembayaran di Indomaret" || ti.text("#code") != paypage.GroupCode(indo.Code(t)) {
			t.Errorf("the Indomaret page: %q, %q", got, ti.text("#code"))
		}
	})

	t.Run("copy puts the code on the clipboard", func(t *testing.T) {
		inv, link := create("INV-BR-COPY", "alfa")
		tb := open(t, bctx, link)
		tb.do(chromedp.Click(chromedp.ID("copy")))
		deadline := time.Now().Add(2 * time.Second)
		for tb.text("#copy-msg") != "Kode disalin." {
			if time.Now().After(deadline) {
				t.Fatalf("after copy the page says %q", tb.text("#copy-msg"))
			}
			time.Sleep(25 * time.Millisecond)
		}
		if got := eval[string](tb, `navigator.clipboard.readText()`); got != inv.Code(t) {
			t.Errorf("the clipboard holds %q, want the code %s without spaces", got, inv.Code(t))
		}
	})

	// Tab alone reaches every control, each with a visible focus ring, and Enter works the copy button.
	t.Run("keyboard only", func(t *testing.T) {
		_, link := create("INV-BR-KEYS", "alfa")
		tb := open(t, bctx, link)
		const describe = `(function (e) { return e === document.body || !e ? "" : (e.id || e.tagName.toLowerCase() + ":" + e.textContent.trim()); })`
		controls := eval[[]string](tb, `Array.from(document.querySelectorAll("a[href], button, input, select, textarea, [tabindex]"))
			.filter(function (e) { return e.getClientRects().length > 0; }).map(`+describe+`)`)
		if len(controls) < 3 {
			t.Fatalf("the page has %d controls (%v), want the language link, copy and print", len(controls), controls)
		}
		reached := map[string]bool{}
		for i := 0; i < len(controls)+1; i++ {
			tb.do(chromedp.KeyEvent(kb.Tab))
			el := eval[string](tb, describe+`(document.activeElement)`)
			if el == "" {
				continue
			}
			reached[el] = true
			if ring := eval[string](tb, `(function (s) { return s.outlineStyle + " " + s.outlineWidth; })(getComputedStyle(document.activeElement))`); strings.HasPrefix(ring, "none") || strings.HasSuffix(ring, " 0px") {
				t.Errorf("%s has no visible focus ring: outline %s", el, ring)
			}
		}
		for _, c := range controls {
			if !reached[c] {
				t.Errorf("Tab never reaches %s (reached %v)", c, reached)
			}
		}
		for i := 0; i < len(controls)+1 && eval[string](tb, `document.activeElement.id`) != "copy"; i++ {
			tb.do(chromedp.KeyEvent(kb.Tab))
		}
		tb.do(chromedp.KeyEvent(kb.Enter))
		deadline := time.Now().Add(2 * time.Second)
		for tb.text("#copy-msg") != "Kode disalin." {
			if time.Now().After(deadline) {
				t.Fatalf("Enter on the copy button: the page says %q", tb.text("#copy-msg"))
			}
			time.Sleep(25 * time.Millisecond)
		}
	})

	// Landmarks, headings, a live status line and labelled controls, for a screen reader.
	t.Run("screen reader", func(t *testing.T) {
		_, link := create("INV-BR-A11Y", "alfa")
		tb := open(t, bctx, link)
		for what, js := range map[string]string{
			"the language":                                         `document.documentElement.lang === "id"`,
			"one main, header, nav and footer":                     `["main", "header", "nav", "footer"].every(function (t) { return document.querySelectorAll(t).length === 1; })`,
			"one h1, then h2s":                                     `document.querySelectorAll("h1").length === 1 && document.querySelectorAll("main h2").length >= 2`,
			"the status in a live region":                          `document.getElementById("status").getAttribute("role") === "status"`,
			"the countdown as a timer (not read out every second)": `document.getElementById("left").getAttribute("role") === "timer"`,
			"the copy result announced":                            `document.getElementById("copy-msg").getAttribute("role") === "status"`,
			"every control named":                                  `Array.from(document.querySelectorAll("a, button")).every(function (e) { return e.textContent.trim() !== ""; })`,
			"sections labelled by their headings":                  `Array.from(document.querySelectorAll("section[aria-labelledby]")).every(function (e) { return document.getElementById(e.getAttribute("aria-labelledby")); })`,
			"the code's label":                                     `document.getElementById("code").closest("section").getAttribute("aria-labelledby") === "code-h"`,
		} {
			if !eval[bool](tb, js) {
				t.Errorf("the page lacks %s", what)
			}
		}
	})

	t.Run("English", func(t *testing.T) {
		inv, link := create("INV-BR-EN", "alfa")
		tb := open(t, bctx, link)
		if _, err := chromedp.RunResponse(tb.ctx, chromedp.Click(chromedp.CSS(`nav a[hreflang="en"]`))); err != nil {
			t.Fatal(err)
		}
		expires, _ := time.Parse(time.RFC3339, *inv.ExpiresAt)
		if got := eval[string](tb, `document.documentElement.lang`); got != "en" {
			t.Errorf("after the switch the page's language is %q", got)
		}
		for sel, want := range map[string]string{
			"h1": "Payment at Alfamart, Alfamidi, Lawson or Dan+Dan", "#status": "Waiting for payment", "time": paypage.FormatWIB(expires, "en"),
			"#copy": "Copy code", "#print": "Print", `nav a[hreflang="id"]`: "Bahasa Indonesia",
		} {
			if got := tb.text(sel); got != want {
				t.Errorf("%s shows %q, want %q", sel, got, want)
			}
		}
		if left := tb.text("#left"); !regexp.MustCompile(`^59 min \d+ s$`).MatchString(left) {
			t.Errorf("the English countdown shows %q", left)
		}
		// DOKU's steps stay as DOKU words them, in Indonesian: the page says so, and a screen reader
		// reads them as Indonesian.
		if note, lang := tb.text(".steps .note"), eval[string](tb, `document.querySelector(".steps ol").lang`); note != "Instructions from DOKU (in Indonesian):" || lang != "id" {
			t.Errorf("DOKU's steps on the English page: note %q, list language %q", note, lang)
		}
		tb.shot(shots, "pending-en")

		// A browser that prefers English gets English without the switch.
		_, _, body := getPage(t, s, pagePath(t, inv), http.Header{"Accept-Language": {"en-GB,en;q=0.9"}})
		if !bytes.Contains(body, []byte(`<html lang="en">`)) {
			t.Error("Accept-Language: en-GB does not give the English page")
		}
	})

	// The print view is the code, amount, deadline and steps — no buttons, no countdown, no links —
	// on one A4 page.
	t.Run("print view", func(t *testing.T) {
		_, link := create("INV-BR-PRINT", "alfa")
		tb := open(t, bctx, link)
		if _, err := chromedp.Call(tb.ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{Media: "print"}); err != nil {
			t.Fatal(err)
		}
		for _, sel := range []string{"h1", "#code", ".pay .amount", "time", ".steps ol", ".fee"} {
			if tb.text(sel) == "" {
				t.Errorf("the print view leaves out %s", sel)
			}
		}
		for _, sel := range []string{"nav", "#copy", "#print", "#left", "#status", "footer"} {
			if got := tb.text(sel); got != "" {
				t.Errorf("the print view shows %s: %q", sel, got)
			}
		}
		tb.do(chromedp.EmulateViewport(794, 1123)) // A4 at 96 dpi, for the picture
		tb.shot(shots, "print-id")
		pdf, err := chromedp.Run(tb.ctx, chromedp.PrintToPDF(chromedp.PDFPaper(chromedp.PaperA4)))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(shots, "print-id.pdf"), pdf, 0o644); err != nil {
			t.Fatal(err)
		}
		if n := len(regexp.MustCompile(`/Type\s*/Page\b`).FindAll(pdf, -1)); n != 1 {
			t.Errorf("the print view takes %d A4 pages, want 1", n)
		}
		if _, err := chromedp.Call(tb.ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{}); err != nil {
			t.Fatal(err)
		}
	})

	// Paid at the counter: the page says so within 2 s, through its stream, without a reload.
	t.Run("paid", func(t *testing.T) {
		inv, link := create("INV-BR-PAID", "alfa")
		tb := open(t, bctx, link)
		tb.waitLive()
		markPage(tb)
		start := time.Now()
		s.Pay(inv.Code(t), inv.Amount)
		tb.waitState("paid", 2*time.Second-time.Since(start))
		t.Logf("payment received shown %v after the payment", time.Since(start).Round(time.Millisecond))
		noReload(tb)
		if got := tb.text("#status"); got != "Pembayaran diterima" {
			t.Errorf("the status says %q", got)
		}
		if got := tb.text("#paid-amount"); got != "Rp150.000" {
			t.Errorf("the amount received is shown as %q", got)
		}
		if tb.text("#code") != "" || tb.text(".steps") != "" {
			t.Error("a paid page still asks for the payment")
		}
		if !regexp.MustCompile(`^\w+, \d+ \w+ \d{4} pukul\x{a0}\d{2}\.\d{2}\x{a0}WIB$`).MatchString(tb.text("#paid-at")) {
			t.Errorf("the time of payment is shown as %q", tb.text("#paid-at"))
		}
		tb.contrast()
		tb.shot(shots, "paid-id")
		tb.do(chromedp.Navigate(link + "?lang=en"))
		if got := tb.text("#status"); got != "Payment received" {
			t.Errorf("the English paid page says %q", got)
		}
		tb.shot(shots, "paid-en")
	})

	// Expired by DOKU: the reconciliation's answer reaches the open page through its stream.
	t.Run("expired", func(t *testing.T) {
		inv, link := create("INV-BR-EXP", "alfa")
		tb := open(t, bctx, link)
		tb.waitLive()
		markPage(tb)
		s.Sim.Advance(2 * time.Hour) // DOKU's clock passes the code's deadline
		r := s.Sync(inv.InvoiceNumber)
		s.Sim.Advance(-2 * time.Hour)
		if r.Status != http.StatusOK || r.Invoice(t).Status != "expired" {
			t.Fatalf("sync after DOKU expired the code: HTTP %d %s", r.Status, r.Body)
		}
		tb.waitState("expired", 2*time.Second)
		noReload(tb)
		if got := tb.text("#status"); got != "Kode pembayaran kedaluwarsa" || tb.text("#code") != "" {
			t.Errorf("the expired page: status %q, code %q", got, tb.text("#code"))
		}
		tb.contrast()
		tb.shot(shots, "expired-id")
		tb.do(chromedp.Navigate(link + "?lang=en"))
		if got := tb.text("#status"); got != "Payment code expired" {
			t.Errorf("the English expired page says %q", got)
		}
		tb.shot(shots, "expired-en")
	})

	// Expired on the page's own clock: when the countdown reaches zero the page stops offering the
	// code, before any word from DOKU. The page counts on the clock it read from the server when it
	// loaded, plus the time the browser sees passing; the test moves the browser's clock past the
	// deadline, as an hour of waiting would.
	t.Run("expired by the countdown", func(t *testing.T) {
		_, link := create("INV-BR-CLOCK", "indomaret")
		tb := open(t, bctx, link)
		tb.waitLive()
		eval[bool](tb, `(function () { var real = Date.now; Date.now = function () { return real() + 61 * 60 * 1000; }; return true; })()`)
		tb.waitState("expired", 2*time.Second)
		if got := tb.text("#left"); got != "" {
			t.Errorf("an expired page still counts down: %q", got)
		}
	})

	t.Run("cancelled", func(t *testing.T) {
		inv, link := create("INV-BR-CAN", "alfa")
		tb := open(t, bctx, link)
		tb.waitLive()
		markPage(tb)
		if r := s.POST("/v1/invoices/"+inv.InvoiceNumber+"/cancel", []byte(`{"reason":"stok habis di gudang"}`)); r.Status != http.StatusOK {
			t.Fatalf("cancel: HTTP %d %s", r.Status, r.Body)
		}
		tb.waitState("cancelled", 2*time.Second)
		noReload(tb)
		if got := tb.text("#status"); got != "Tagihan dibatalkan" || tb.text("#code") != "" {
			t.Errorf("the cancelled page: status %q, code %q", got, tb.text("#code"))
		}
		if strings.Contains(eval[string](tb, `document.documentElement.outerHTML`), "stok habis") {
			t.Error("the page shows the merchant's reason for cancelling")
		}
		tb.contrast()
		tb.shot(shots, "cancelled-id")
		tb.do(chromedp.Navigate(link + "?lang=en"))
		if got := tb.text("#status"); got != "Invoice cancelled" {
			t.Errorf("the English cancelled page says %q", got)
		}
		tb.shot(shots, "cancelled-en")
	})

	t.Run("a reconnection misses nothing", func(t *testing.T) { reconnects(t, bctx) })
}

// A payment made while the page's stream is down reaches the page when it reconnects: the browser
// sends Last-Event-ID, and the stream starts with the invoice as it stands. Streams here last a
// second, and the test holds the page's reconnection until the payment has been made.
func reconnects(t *testing.T, bctx context.Context) {
	s := apitest.New(t, apitest.Options{Config: func(c *config.Config) {
		c.StreamMaxDuration, c.StreamHeartbeat = time.Second, 500*time.Millisecond
	}})
	inv := s.Create(apitest.NewInvoice("INV-BR-RECONNECT", "alfa")).Invoice(t)
	tb := open(t, bctx, s.URL+pagePath(t, inv))
	tb.waitLive()
	markPage(tb)

	// From now on the page's requests for its stream wait for the test. The stream open now ends
	// within a second; the browser's reconnection is held. (The headers a held request shows lack
	// what the network stack adds, Last-Event-ID among them: those come with the request as sent.)
	wait, cancel := context.WithTimeout(tb.ctx, 10*time.Second)
	defer cancel()
	if _, err := chromedp.Call(tb.ctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	sent := chromedp.Events(wait, network.RequestWillBeSentExtraInfo)
	paused := chromedp.Events(wait, fetch.RequestPaused)
	if _, err := chromedp.Call(tb.ctx, fetch.Enable, fetch.EnableParams{Patterns: []*fetch.RequestPattern{{URLPattern: "*/events"}}}); err != nil {
		t.Fatal(err)
	}
	var held fetch.EventRequestPaused
	for ev, err := range paused {
		if err != nil {
			t.Fatalf("the page did not reconnect its stream: %v", err)
		}
		held = ev
		break
	}

	s.Pay(inv.Code(t), inv.Amount) // while the page has no stream
	time.Sleep(300 * time.Millisecond)
	if got := eval[string](tb, `document.body.getAttribute("data-state")`); got != "pending" {
		t.Fatalf("the page learnt of the payment without its stream: %s", got)
	}
	if _, err := chromedp.Call(tb.ctx, fetch.ContinueRequest, fetch.ContinueRequestParams{RequestID: held.RequestID}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(tb.ctx, fetch.Disable, cdp.Empty{}); err != nil {
		t.Fatal(err)
	}
	for ev, err := range sent {
		if err != nil {
			t.Fatalf("the held reconnection was never sent: %v", err)
		}
		if ev.RequestID != held.NetworkID {
			continue
		}
		if id, _ := ev.Headers["Last-Event-ID"].(string); !regexp.MustCompile(`^evt_[0-9a-f]{32}$`).MatchString(id) {
			t.Errorf("the reconnection carries Last-Event-ID %q, want the last event the page saw", id)
		}
		break
	}
	tb.waitState("paid", 2*time.Second)
	noReload(tb)
}
