package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"
)

// Listen holds a connection of its own (outside the pool, which it would otherwise hold a slot of, and
// to PostgreSQL itself: LISTEN needs a session, which a transaction-mode pooler does not keep)
// LISTENing to the events channel, and calls onEvent with the invoice number of every event committed
// — by any replica — until ctx ends. Whenever it (re)connects it calls onConnected: notifications sent
// while it was away are lost, so whoever waits must look for themselves.
func Listen(ctx context.Context, session *pgx.ConnConfig, log zerolog.Logger, onConnected func(), onEvent func(number string)) {
	const retry = time.Second
	for ctx.Err() == nil {
		err := listenOnce(ctx, session, onConnected, onEvent)
		if ctx.Err() != nil {
			return
		}
		log.Warn().Err(err).Dur("retry_in", retry).Msg("event listener lost its connection; reconnecting")
		select {
		case <-ctx.Done():
			return
		case <-time.After(retry):
		}
	}
}

func listenOnce(ctx context.Context, session *pgx.ConnConfig, onConnected func(), onEvent func(string)) error {
	conn, err := pgx.ConnectConfig(ctx, session.Copy())
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+eventsChannel); err != nil {
		return err
	}
	onConnected()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		onEvent(n.Payload)
	}
}
