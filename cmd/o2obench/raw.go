package main

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/merchant/o2o/internal/app"
	"github.com/merchant/o2o/internal/config"
	"github.com/merchant/o2o/internal/invoice"
	"github.com/merchant/o2o/internal/service"
)

// The raw baseline runs each operation through the service exactly as production builds it (app.New,
// over the bench's database), but called directly — no HTTP, JSON, signatures or logging — and with
// DOKU answering at once: what remains is the service's own database work. Service ÷ raw is how much
// of the database's capacity the service turns into requests.

// instantDoku answers every generate request at once with a fresh code.
type instantDoku struct{ seq atomic.Int64 }

func (g *instantDoku) RequestBody(*invoice.Invoice) ([]byte, error) { return []byte(`{}`), nil }

func (g *instantDoku) Environment() string { return "env_instant" }

func (g *instantDoku) HowToPay(context.Context, string) ([]invoice.Instruction, error) {
	return nil, nil
}

func (g *instantDoku) Issue(_ context.Context, inv *invoice.Invoice) (invoice.Issued, error) {
	return invoice.Issued{PaymentCode: fmt.Sprintf("8888%012d", g.seq.Add(1)), HowToPayPage: "p", HowToPayAPI: "a",
		ExpiresAt: time.Now().Add(time.Hour)}, nil
}

func (g *instantDoku) Check(context.Context, string) (invoice.PaymentReport, error) {
	return invoice.PaymentReport{}, invoice.Errorf(invoice.ErrDokuUnavailable, "not in the baseline")
}

// rawService is the service over the bench database with instantDoku for DOKU.
func rawService(ctx context.Context, st *stack) (*service.Service, func(), error) {
	cfg := config.Defaults()
	cfg.DatabaseURL, cfg.APIKeys = config.Secret(st.dbURL), []config.Secret{benchAPIKey}
	cfg.DokuBaseURL, cfg.DokuClientID, cfg.DokuSecretKey = "http://127.0.0.1:1", benchClientID, benchSecret
	cfg.DokuDefaultCustomerEmail = "bench@example.com"
	// As the service process is configured: no status check falls due during the bench (the
	// simulator has never heard of these invoices, and the checks would load the later rows).
	cfg.ReconcileSchedule = []time.Duration{st.reconcileAfter}
	if err := cfg.Validate(); err != nil {
		return nil, nil, err
	}
	a, err := app.New(ctx, cfg, zerolog.Nop(), app.Options{Pool: st.pool, Gateway: &instantDoku{}})
	if err != nil {
		return nil, nil, err
	}
	return a.Service, a.Close, nil
}

func rawCreateOp(svc *service.Service, prefix string) func(context.Context, int) error {
	var seq atomic.Int64
	amount := int64(150000)
	return func(ctx context.Context, _ int) error {
		d := invoice.Draft{Number: fmt.Sprintf("%s-%d", prefix, seq.Add(1)), Channel: "alfa", Amount: &amount,
			Customer: &invoice.Customer{Name: "Bench Customer", Email: "bench@example.com"}, Info: "bench"}
		_, _, err := svc.Create(ctx, d)
		return err
	}
}

func rawWebhookOp(svc *service.Service, invs []seeded) func(context.Context, int) error {
	var next atomic.Int64
	return func(ctx context.Context, _ int) error {
		i := int(next.Add(1)) - 1
		if i >= len(invs) {
			return errExhausted
		}
		s := invs[i]
		n := &invoice.Notification{RequestID: requestID("raw:"+s.number, 0), InvoiceNumber: s.number,
			Headers: map[string]string{"Client-Id": benchClientID}, Body: []byte(`{"raw":"` + s.number + `"}`)}
		r := invoice.PaymentReport{InvoiceNumber: s.number, Channel: s.channel, PaymentCode: s.code, Amount: 150000,
			AmountText: "150000", DokuStatus: invoice.DokuSuccess, PaidAt: time.Now(), RequestID: n.RequestID,
			Source: invoice.SourceWebhook, Identifiers: map[string]string{"AGENT_TRX_ID": "TRX-" + s.number}}
		outcome, _, _, err := svc.ReceiveNotification(ctx, n, &r)
		if err == nil && outcome != invoice.OutcomeApplied {
			err = fmt.Errorf("outcome %s", outcome)
		}
		return err
	}
}
