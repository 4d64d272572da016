// Package app builds the whole service from its configuration — the database pool and store, the DOKU
// client, the application service, the HTTP handler, the workers, the metrics — and runs it. It is
// the one place where those pieces meet: cmd/o2o runs what New builds, and the tests and the
// benchmark build it the same way, so they run what production runs.
package app

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"github.com/merchant/o2o/internal/config"
	"github.com/merchant/o2o/internal/doku"
	"github.com/merchant/o2o/internal/httpapi"
	"github.com/merchant/o2o/internal/invoice"
	"github.com/merchant/o2o/internal/metrics"
	"github.com/merchant/o2o/internal/postgres"
	"github.com/merchant/o2o/internal/service"
	"github.com/merchant/o2o/internal/stream"
	"github.com/merchant/o2o/internal/worker"
)

// App is the service, assembled.
type App struct {
	Config     config.Config
	Log        zerolog.Logger
	Pool       *pgxpool.Pool
	Metrics    *metrics.Metrics
	Service    *service.Service
	Handler    http.Handler
	Resumer    *worker.Resumer
	Reconciler *worker.Reconciler
	Deliverer  *worker.Deliverer
	Purger     *worker.Purger
	// Hub wakes the status streams and the deliverer when events are committed; Listen feeds it.
	Hub *stream.Hub

	// Store is the store under the service, for tests that set up what no request could (a process
	// that died between DOKU's answer and the store step); nothing in the service uses it directly.
	Store *postgres.Store

	migrator *postgres.Migrator
	// session is how the listener and the migrator reach PostgreSQL: a session each, never through a
	// transaction-mode pooler (DATABASE_DIRECT_URL).
	session *pgx.ConnConfig
	closeDB func()
	// closing is closed when shutdown begins: the status streams end.
	closing     chan struct{}
	closingOnce sync.Once
}

// Options are what a caller may provide instead of what the configuration describes.
type Options struct {
	// Pool, when set, is the database to use (the tests' own); otherwise one is opened from
	// DATABASE_URL, waiting up to DB_STARTUP_TIMEOUT for it to answer.
	Pool *pgxpool.Pool
	// Gateway, when set, stands in for DOKU (the benchmark's database-only baseline).
	Gateway service.Gateway
	// Adjust, when set, changes what the service decides by before it is built: tests shorten the
	// leases the configuration derives from DOKU_TIMEOUT.
	Adjust func(*service.Config)
}

// New builds the service from cfg (already validated). Close it when done.
func New(ctx context.Context, cfg config.Config, log zerolog.Logger, o Options) (*App, error) {
	a := &App{Config: cfg, Log: log, Pool: o.Pool, closeDB: func() {}, closing: make(chan struct{})}
	var err error
	if a.Pool == nil {
		pool, err := OpenDatabase(ctx, cfg.Database, log)
		if err != nil {
			return nil, err
		}
		a.Pool, a.closeDB = pool, pool.Close
	}
	if a.session, err = postgres.SessionConfig(a.Pool, cfg.DatabaseDirectURL.Value()); err != nil {
		a.closeDB()
		return nil, err
	}
	m, err := postgres.NewMigratorVia(a.Pool, a.session)
	if err != nil {
		a.closeDB()
		return nil, err
	}
	a.migrator = m
	a.Metrics = metrics.New(a.Pool)
	a.Store = postgres.NewStore(a.Pool)
	a.Metrics.WatchAttention(a.Store.OpenAttention)

	gateway := o.Gateway
	if gateway == nil {
		gateway = newGateway(cfg, a.Metrics, log)
	}
	scfg := serviceConfig(cfg)
	if o.Adjust != nil {
		o.Adjust(&scfg)
	}
	a.Service = service.New(scfg, countingStore{Store: a.Store, m: a.Metrics}, gateway)
	a.Hub = stream.NewHub()
	// The committing replica wakes its own deliverer and streams at once; the others hear of a change
	// only when its invoice is watched (the listener), and otherwise poll.
	a.Store.OnPublished(a.Hub.Notify)
	a.Metrics.WatchDeliveries(a.Service.DeliveryBacklog, a.Service.FeedLag)
	a.Metrics.WatchTables(a.Store.TableSizes)
	a.Handler = a.newHandler()
	a.Resumer = &worker.Resumer{Service: a.Service, Log: log.With().Str("worker", "resumer").Logger(), Metrics: a.Metrics,
		Interval: cfg.ResumerInterval, Batch: cfg.ResumerBatch, Concurrency: cfg.ResumerConcurrency}
	a.Reconciler = &worker.Reconciler{Service: a.Service, Log: log.With().Str("worker", "reconciler").Logger(), Metrics: a.Metrics,
		Interval: cfg.ReconcileInterval, Batch: cfg.ReconcileBatch, Concurrency: cfg.ReconcileConcurrency}
	wake, _ := a.Hub.SubscribeAll() // for the process's life
	a.Deliverer = &worker.Deliverer{Service: a.Service, Endpoints: cfg.Endpoints(), Log: log.With().Str("worker", "deliverer").Logger(),
		Metrics: a.Metrics, Wake: wake, Interval: cfg.EventsInterval, Timeout: cfg.EventsTimeout, Concurrency: cfg.EventsConcurrency}
	a.Purger = &worker.Purger{Service: a.Service, Log: log.With().Str("worker", "purge").Logger(), Metrics: a.Metrics,
		Interval: cfg.PurgeInterval, Holder: replicaName()}
	return a, nil
}

// replicaName names this process among the replicas (in leases): its host, its pid and a random
// part, since two containers may share both.
func replicaName() string {
	host, _ := os.Hostname()
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s/%d/%x", host, os.Getpid(), b)
}

// RegisterEndpoints registers the configured webhook endpoints, so that every event from now on is
// queued for them, whichever replica makes it. Run does it before it serves.
func (a *App) RegisterEndpoints(ctx context.Context) error {
	return a.Service.RegisterEndpoints(ctx, a.Deliverer.Endpoints)
}

// Prepare is what Run does before it serves, each step logged when it fails (the service serves all
// the same; the workers retry what needs retrying): it registers the webhook endpoints, takes over the
// open invoices that record no DOKU environment yet or one of DOKU_ADOPT_ENVIRONMENTS, and says which
// open invoices belong to another DOKU and are left alone.
func (a *App) Prepare(ctx context.Context) {
	if err := a.RegisterEndpoints(ctx); err != nil {
		// The deliverer registers them when it can. An endpoint registered before (by this or another
		// replica) gets its events meanwhile; a new one gets them from its registration on.
		a.Log.Error().Err(err).Msg("cannot register the webhook endpoints before serving")
	}
	log := a.Log.With().Str("doku_environment", a.Service.Environment()).Logger()
	if n, err := a.Service.AdoptInvoices(ctx, a.Config.DokuAdoptEnvironments); err != nil {
		log.Error().Err(err).Msg("cannot take over the open invoices without a DOKU environment")
	} else if n > 0 {
		log.Info().Int("invoices", n).Strs("from", a.Config.DokuAdoptEnvironments).Msg("took over open invoices for this DOKU environment")
	}
	if notice, err := a.Notices(ctx); err == nil && len(notice) > 0 {
		log.Warn().Strs("notices", notice).Msg("open invoices of another DOKU environment are left alone")
	}
}

// Notices are what /readyz says beside "ready": open invoices another DOKU issued, left alone.
func (a *App) Notices(ctx context.Context) ([]string, error) {
	foreign, err := a.Service.ForeignInvoices(ctx)
	if err != nil {
		return nil, err
	}
	if n := service.ForeignNotice(a.Service.Environment(), foreign); n != "" {
		return []string{n}, nil
	}
	return nil, nil
}

// EndStreams ends every status stream (shutdown begins; clients reconnect to another replica).
func (a *App) EndStreams() { a.closingOnce.Do(func() { close(a.closing) }) }

// Listen feeds the hub from PostgreSQL's notifications until ctx ends (Run starts it; tests that
// open status streams start it themselves). connected, when not nil, is called each time the
// listener (re)connects.
func (a *App) Listen(ctx context.Context, connected func()) {
	postgres.Listen(ctx, a.session, a.Log.With().Str("worker", "listener").Logger(), func() {
		a.Hub.NotifyAll()
		if connected != nil {
			connected()
		}
	}, a.Hub.Notify)
}

// newGateway is DOKU as the configuration names it.
func newGateway(cfg config.Config, m *metrics.Metrics, log zerolog.Logger) *doku.Client {
	return doku.New(doku.Config{
		BaseURL: cfg.DokuBaseURL, ClientID: cfg.DokuClientID, SecretKey: cfg.DokuSecretKey.Value(), Timeout: cfg.DokuTimeout,
		// As many idle connections as the service can have calls in flight, or they are redialled.
		MaxConns: int(cfg.DBMaxConns) * 4, Metrics: m, Logger: log,
		Defaults: doku.BodyDefaults{Info: cfg.DokuDefaultInfo, CustomerEmail: cfg.DokuDefaultCustomerEmail,
			ReceiptFooter: cfg.DokuDefaultReceiptFooter},
	})
}

// newHandler is the HTTP API over the service.
func (a *App) newHandler() http.Handler {
	cfg := a.Config
	keys, _ := cfg.Keys() // validated
	apiKeys := make([]httpapi.APIKey, len(keys))
	for i, k := range keys {
		apiKeys[i] = httpapi.APIKey{Name: k.Name, Digest: k.Digest, Scopes: k.Scopes}
	}
	return httpapi.NewServer(httpapi.Config{
		APIKeys: apiKeys, NotificationPath: cfg.DokuNotificationPath, MaxBodyBytes: cfg.MaxBodyBytes,
		Webhook:      httpapi.WebhookConfig{AllowedNetworks: cfg.AllowedNetworks(), MaxAge: cfg.WebhookMaxAge},
		ServeMetrics: cfg.MetricsAddr == "",
		Stream: httpapi.StreamConfig{MaxConnections: cfg.StreamMaxConnections, MaxPerToken: cfg.StreamMaxPerToken,
			Heartbeat: cfg.StreamHeartbeat, MaxDuration: cfg.StreamMaxDuration, AllowedOrigins: cfg.AllowedOrigins(),
			PublicBaseURL: cfg.PublicBaseURL},
	}, httpapi.Deps{
		Service:       a.Service,
		Notifications: doku.Verifier{ClientID: cfg.DokuClientID, Secret: []byte(cfg.DokuSecretKey.Value()), Target: cfg.DokuNotificationPath},
		Ready:         a.Ready,
		Notices:       a.Notices,
		Logger:        a.Log,
		Metrics:       a.Metrics,
		Hub:           a.Hub,
		Closing:       a.closing,
	})
}

// serviceConfig is what the service decides by, from the configuration.
func serviceConfig(cfg config.Config) service.Config {
	// One DOKU call may hold an invoice this long: it must outlast the client's timeout, or a slow
	// call could overlap the next holder's.
	lease := cfg.DokuTimeout + 5*time.Second
	return service.Config{
		Limits: cfg.Limits(),
		Issue: invoice.IssuePolicy{Lease: lease, ResumeAfter: lease, BaseBackoff: cfg.ResumerBaseBackoff,
			MaxBackoff: cfg.ResumerMaxBackoff, MaxAttempts: cfg.ResumerMaxAttempts},
		Check: invoice.CheckPolicy{Schedule: cfg.ReconcileSchedule, Grace: cfg.ExpiryGrace, Window: cfg.ReconcileWindow},
		// A claimed check may take a DOKU call and its store step before it plans the next one.
		CheckLease:   lease + cfg.DBStatementTimeout,
		SyncInterval: cfg.SyncMinInterval,
		StoreTimeout: cfg.DBStatementTimeout,
		Delivery:     cfg.DeliveryPolicy(),
		// A claimed delivery is held through its POST and the recording of the attempt.
		DeliveryLease:       cfg.EventsTimeout + cfg.DBStatementTimeout + 5*time.Second,
		StreamTokenTTL:      cfg.StreamTokenTTL,
		PublicBaseURL:       cfg.PublicBaseURL,
		CustomerAccessGrace: cfg.CustomerAccessGrace,
		Retention:           cfg.Retention(),
		PurgeBatch:          cfg.PurgeBatch,
		// Renewed after every batch; a purging replica that dies holds it this long at most.
		PurgeLease: 2 * time.Minute,
	}
}

// Migrate applies every pending migration and returns the names of those it applied.
func (a *App) Migrate(ctx context.Context) ([]string, error) { return a.migrator.Up(ctx) }

// Ready reports whether the service can do its work: the database answers and its schema is current.
func (a *App) Ready(ctx context.Context) error { return a.Store.Ready(ctx, a.migrator) }

// Close releases the database; a hung database does not hold it past a second.
func (a *App) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if !within(ctx, func() { a.migrator.Close(); a.closeDB() }) {
		a.Log.Warn().Msg("database connections still busy at exit; leaving them")
	}
}

// OpenDatabase connects a pool and waits (bounded by DB_STARTUP_TIMEOUT) for the database to answer,
// so the service can start alongside its database (docker compose, a rolling deploy) instead of
// crashing on the first try. A failure that waiting cannot mend (no such database, refused
// credentials) ends the wait at once.
func OpenDatabase(ctx context.Context, db config.Database, log zerolog.Logger) (*pgxpool.Pool, error) {
	pool, err := postgres.Open(ctx, db.DatabaseURL.Value(), postgres.PoolOptions{MaxConns: db.DBMaxConns, ConnectTimeout: db.DBConnectTimeout,
		StatementTimeout: db.DBStatementTimeout, LockTimeout: db.DBLockTimeout, IdleInTxTimeout: db.DBIdleInTxTimeout})
	if err != nil {
		return nil, err
	}
	waitCtx, cancel := context.WithTimeout(ctx, db.DBStartupTimeout)
	defer cancel()
	var last error
	for {
		err = pool.Ping(waitCtx)
		if err == nil {
			return pool, nil
		}
		if why := postgres.Permanent(err); why != "" {
			pool.Close()
			return nil, fmt.Errorf("database: %s", why)
		}
		log.Warn().Err(err).Msg("database not answering yet")
		// An attempt the deadline cut short knows only that; the one before it may know why.
		if last == nil || waitCtx.Err() == nil {
			last = err
		}
		select {
		case <-waitCtx.Done():
			pool.Close()
			return nil, fmt.Errorf("database did not answer within DB_STARTUP_TIMEOUT (%s): %w", db.DBStartupTimeout, last)
		case <-time.After(time.Second):
		}
	}
}

// within runs fn and reports whether it returned before ctx ended; if not, fn is left running.
func within(ctx context.Context, fn func()) bool {
	done := make(chan struct{})
	go func() { fn(); close(done) }()
	select {
	case <-done:
		return true
	case <-ctx.Done():
		return false
	}
}
