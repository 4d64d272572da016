package paypage

import (
	"bytes"
	stdhtml "html"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/merchant/o2o/internal/invoice"
	"github.com/merchant/o2o/internal/view"
)

func ptr(s string) *string { return &s }

var now = time.Date(2026, 3, 2, 7, 4, 30, 0, time.UTC) // 14.04 WIB, a Monday

func pending(ch invoice.Channel) view.CustomerInvoice {
	return view.CustomerInvoice{InvoiceNumber: "INV-1", Channel: ch, Amount: 150000, Currency: "IDR", Status: invoice.StatusPending,
		PaymentCode: ptr("8888000000000001"), ExpiresAt: ptr("2026-03-02T08:04:00Z")}
}

func render(t *testing.T, p Page) string {
	t.Helper()
	if p.Now.IsZero() {
		p.Now = now
	}
	var b bytes.Buffer
	if err := Render(&b, p); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestFormats(t *testing.T) {
	for n, want := range map[int64]string{0: "Rp0", 999: "Rp999", 1000: "Rp1.000", 150000: "Rp150.000", 5000000: "Rp5.000.000", 999999999999: "Rp999.999.999.999"} {
		if got := Rupiah(n); got != want {
			t.Errorf("Rupiah(%d) = %q, want %q", n, got, want)
		}
	}
	for code, want := range map[string]string{"8888000000000001": "8888 0000 0000 0001", "777700000000012": "7777 0000 0000 012", "12": "12"} {
		if got := GroupCode(code); got != want {
			t.Errorf("GroupCode(%q) = %q, want %q", code, got, want)
		}
	}
	if got := FormatWIB(time.Date(2026, 3, 2, 8, 4, 0, 0, time.UTC), "id"); got != "Senin, 2 Maret 2026 pukul\u00a015.04\u00a0WIB" {
		t.Errorf("FormatWIB id: %q", got)
	}
	if got := FormatWIB(time.Date(2026, 3, 1, 17, 30, 0, 0, time.UTC), "en"); got != "Monday, 2 March 2026 at\u00a000:30\u00a0WIB" {
		t.Errorf("FormatWIB en (past midnight in Jakarta): %q", got)
	}
	for d, want := range map[time.Duration]string{
		59*time.Minute + 30*time.Second: "59 menit 30 detik", 2*time.Hour + 5*time.Second: "2 jam 0 menit 5 detik",
		49*time.Hour + 3*time.Minute: "2 hari 1 jam 3 menit", 9 * time.Second: "9 detik", -time.Minute: "0 detik",
	} {
		if got := Countdown(d, "id"); got != want {
			t.Errorf("Countdown(%s) = %q, want %q", d, got, want)
		}
	}
	if got := Countdown(90*time.Second, "en"); got != "1 min 30 s" {
		t.Errorf("Countdown en: %q", got)
	}
}

func TestLanguagesHaveTheSameStrings(t *testing.T) {
	id, en := slices.Sorted(maps.Keys(text["id"])), slices.Sorted(maps.Keys(text["en"]))
	if !slices.Equal(id, en) {
		t.Errorf("the languages' strings differ:\nid %v\nen %v", id, en)
	}
	for lang, m := range text {
		for k, v := range m {
			if v == "" {
				t.Errorf("%s: %s is empty", lang, k)
			}
		}
		if len(ownSteps[lang]) == 0 {
			t.Errorf("%s has no steps of our own", lang)
		}
	}
}

// The page holds to its CSP: the inline style and script are exactly the hashed ones, and nothing the
// CSP would block is on it (no inline handler, no style attribute, no other resource).
func TestPageHoldsToItsCSP(t *testing.T) {
	for _, st := range []invoice.Status{invoice.StatusCreating, invoice.StatusPending, invoice.StatusPaid, invoice.StatusExpired, invoice.StatusCancelled, invoice.StatusFailed} {
		for _, lang := range []string{"id", "en"} {
			inv := pending(invoice.ChannelAlfa)
			inv.Status = st
			if st == invoice.StatusCreating || st == invoice.StatusFailed {
				inv.PaymentCode, inv.ExpiresAt = nil, nil
			}
			if st == invoice.StatusPaid {
				inv.PaidAt, inv.TotalPaid = ptr("2026-03-02T07:10:00Z"), 150000
			}
			html := render(t, Page{Invoice: inv, Lang: lang, Path: "/pay/INV-1/tok", StreamPath: "/pay/INV-1/tok/events"})
			if len(html) > 50_000 {
				t.Errorf("%s %s: %d bytes, over the 50 KB budget", st, lang, len(html))
			}
			styles := regexp.MustCompile(`(?s)<style>(.*?)</style>`).FindAllStringSubmatch(html, -1)
			scripts := regexp.MustCompile(`(?s)<script>(.*?)</script>`).FindAllStringSubmatch(html, -1)
			if len(styles) != 1 || len(scripts) != 1 || !strings.Contains(CSP, hash(styles[0][1])) || !strings.Contains(CSP, hash(scripts[0][1])) {
				t.Fatalf("%s %s: the inline style and script are not the ones the CSP allows", st, lang)
			}
			if m := regexp.MustCompile(`(?i)\s(on[a-z]+|style)=|<(img|link rel="stylesheet"|iframe|object)|src=|https?://`).FindString(html); m != "" {
				t.Errorf("%s %s: the page has %q, which its CSP forbids or which leaves the page", st, lang, m)
			}
			if !strings.Contains(html, `<html lang="`+lang+`">`) || !strings.Contains(html, `data-state="`+string(st)+`"`) {
				t.Errorf("%s %s: language or state missing", st, lang)
			}
		}
	}
}

func TestPendingPage(t *testing.T) {
	html := stdhtml.UnescapeString(render(t, Page{Invoice: pending(invoice.ChannelAlfa), Lang: "id"}))
	for _, want := range []string{"Alfamart, Alfamidi, Lawson atau Dan+Dan", "8888 0000 0000 0001", `data-code="8888000000000001"`,
		"Rp150.000", "Senin, 2 Maret 2026 pukul\u00a015.04\u00a0WIB", "59 menit 30 detik", "Menunggu pembayaran",
		"Sebutkan atau tunjukkan kode pembayaran: 8888 0000 0000 0001.", `href="?lang=en"`, `http-equiv="refresh"`} {
		if !strings.Contains(html, want) {
			t.Errorf("the pending page lacks %q", want)
		}
	}
	if strings.Contains(html, text["id"]["fee"]) {
		t.Error("our own steps announce a fee DOKU did not")
	}
	en := render(t, Page{Invoice: pending(invoice.ChannelIndomaret), Lang: "en"})
	for _, want := range []string{"Payment at Indomaret", "Monday, 2 March 2026 at\u00a015:04\u00a0WIB", "Go to the cashier of any Indomaret store.", `href="?lang=id"`} {
		if !strings.Contains(en, want) {
			t.Errorf("the English page lacks %q", want)
		}
	}
}

func TestDOKUStepsAndTheFeeNote(t *testing.T) {
	ins := []invoice.Instruction{{Channel: "Alfamart", Steps: []string{"Datang ke gerai", "Kasir dapat mengenakan biaya administrasi"}}}
	html := render(t, Page{Invoice: pending(invoice.ChannelAlfa), Lang: "en", Instructions: ins, FromDOKU: true})
	if !strings.Contains(html, "<li>Datang ke gerai</li>") || !strings.Contains(html, text["en"]["fee"]) || strings.Contains(html, "Read out or show") {
		t.Errorf("DOKU's steps with a fee: the page shows DOKU's steps and the fee note only:\n%s", html)
	}
	// DOKU's steps are Indonesian: on the English page they say so, and carry their language for a
	// screen reader; on the Indonesian page they need neither.
	if !strings.Contains(html, `<ol lang="id">`) || !strings.Contains(html, "(in Indonesian)") {
		t.Errorf("the English page shows DOKU's Indonesian steps without their language:\n%s", html)
	}
	if id := render(t, Page{Invoice: pending(invoice.ChannelAlfa), Lang: "id", Instructions: ins, FromDOKU: true}); !strings.Contains(id, "<ol>") {
		t.Errorf("the Indonesian page marks DOKU's steps with a language of their own:\n%s", id)
	}
	if own := render(t, Page{Invoice: pending(invoice.ChannelAlfa), Lang: "en"}); strings.Contains(own, `<ol lang=`) {
		t.Errorf("our own English steps are marked as another language:\n%s", own)
	}
	ins[0].Steps = []string{"Datang ke gerai", "Bayar"}
	if html := render(t, Page{Invoice: pending(invoice.ChannelAlfa), Lang: "en", Instructions: ins, FromDOKU: true}); strings.Contains(html, text["en"]["fee"]) {
		t.Error("a fee note without DOKU mentioning one")
	}
	for s, want := range map[string]bool{"Biaya admin Rp2.500": true, "A convenience FEE applies": true, "Bayar tunai": false} {
		if MentionsFee(s) != want {
			t.Errorf("MentionsFee(%q) = %v", s, !want)
		}
	}
}

func TestStates(t *testing.T) {
	inv := pending(invoice.ChannelAlfa)
	late := render(t, Page{Invoice: inv, Lang: "id", Now: now.Add(2 * time.Hour)})
	if !strings.Contains(late, `data-state="expired"`) {
		t.Error("a pending invoice past its deadline is not shown expired")
	}
	inv.Status, inv.PaidAt = invoice.StatusPaid, ptr("2026-03-02T07:10:00Z")
	paid := render(t, Page{Invoice: inv, Lang: "en"})
	if !strings.Contains(paid, "Monday, 2 March 2026 at\u00a014:10\u00a0WIB") || strings.Contains(paid, `http-equiv="refresh"`) {
		t.Error("the paid page: its time, and no refresh")
	}
	var b bytes.Buffer
	if err := RenderError(&b, "en", 404); err != nil || !strings.Contains(b.String(), text["en"]["not_found"]) {
		t.Errorf("RenderError: %v %s", err, b.String())
	}
}
