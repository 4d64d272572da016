package main

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/merchant/o2o/internal/invoice"
	"github.com/merchant/o2o/internal/postgres"
)

// The raw baseline runs the database work of each operation by calling the service's own store — the
// very statements and transactions the service runs, through the same pgx pool code — but without
// HTTP, JSON, signatures, logging or DOKU. Service ÷ raw is how much of the database's capacity the
// service turns into requests.

func rawCreateOp(st *stack) func(context.Context, int) error {
	store := postgres.NewStore(st.pool)
	var seq atomic.Int64
	return func(ctx context.Context, _ int) error {
		number := fmt.Sprintf("RC-%d", seq.Add(1))
		inv := &invoice.Invoice{Number: number, Channel: invoice.ChannelAlfa, Amount: 150000, Status: invoice.StatusCreating,
			Customer: invoice.Customer{Name: "Bench Customer", Email: "bench@example.com"}, ExpiresInMinutes: 60, Info: "bench",
			DokuRequestID: number + "-req", DokuRequestBody: []byte(`{}`)}
		if _, _, err := store.Create(ctx, inv, 20*time.Second); err != nil {
			return err
		}
		_, err := store.Update(ctx, number, func(inv *invoice.Invoice) error {
			inv.Record(invoice.Event{Source: invoice.SourceAPI, Kind: invoice.EventDokuGenerate, Detail: map[string]any{"result": "issued"}})
			inv.MarkIssued(invoice.Issued{PaymentCode: "8888" + number, HowToPayPage: "p", HowToPayAPI: "a",
				ExpiresAt: time.Now().Add(time.Hour)}, invoice.SourceAPI)
			return nil
		})
		return err
	}
}

func rawWebhookOp(st *stack, invs []seeded) func(context.Context, int) error {
	store := postgres.NewStore(st.pool)
	var next atomic.Int64
	return func(ctx context.Context, _ int) error {
		i := int(next.Add(1)) - 1
		if i >= len(invs) {
			return errExhausted
		}
		s := invs[i]
		n := &invoice.Notification{RequestID: "raw-" + s.number, InvoiceNumber: s.number,
			Headers: map[string]string{"Client-Id": benchClientID}, Body: []byte(`{}`)}
		r := invoice.PaymentReport{InvoiceNumber: s.number, Channel: s.channel, PaymentCode: s.code, Amount: 150000,
			DokuStatus: invoice.DokuSuccess, PaidAt: time.Now(), RequestID: n.RequestID, Source: invoice.SourceWebhook,
			Identifiers: map[string]string{"AGENT_TRX_ID": "TRX-" + s.number}}
		outcome, _, _, err := store.RecordNotification(ctx, n, func(inv *invoice.Invoice) invoice.Outcome {
			o := inv.ApplyPayment(r, time.Now())
			inv.Record(invoice.Event{Source: invoice.SourceWebhook, Kind: invoice.EventNotification, Detail: map[string]any{"outcome": o}})
			return o
		})
		if err == nil && outcome != invoice.OutcomeApplied {
			err = fmt.Errorf("outcome %s", outcome)
		}
		return err
	}
}
