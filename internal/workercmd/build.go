package workercmd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"

	"github.com/sixpotify/top-tracks/internal/backend/queues"
	"github.com/sixpotify/top-tracks/internal/backend/stores"
	"github.com/sixpotify/top-tracks/internal/cli"
	"github.com/sixpotify/top-tracks/internal/gate"
	"github.com/sixpotify/top-tracks/internal/metrics"
	"github.com/sixpotify/top-tracks/internal/spotify"
	"github.com/sixpotify/top-tracks/internal/store"
	"github.com/sixpotify/top-tracks/internal/store/dynamostore"
	"github.com/sixpotify/top-tracks/internal/tracing"
	"github.com/sixpotify/top-tracks/worker"
)

// Parts is a wired worker and the backends it uses.
type Parts struct {
	Worker  *worker.Worker
	Spotify *spotify.Client
	Store   store.Store
	closers []func() error
}

// Close closes the backends, last opened first.
func (p *Parts) Close() error {
	var errs []error
	for i := len(p.closers) - 1; i >= 0; i-- {
		errs = append(errs, p.closers[i]())
	}
	return errors.Join(errs...)
}

// Build opens the backends cfg names and wires a worker to them, with its
// metrics on reg.
func Build(ctx context.Context, cfg Config, log *slog.Logger, reg prometheus.Registerer) (_ *Parts, err error) {
	p := &Parts{}
	defer func() {
		if err != nil {
			_ = p.Close()
		}
	}()
	q, bulk, err := p.open(ctx, cfg)
	if err != nil {
		return nil, err
	}
	// The gate and the metrics are made once, here, and handed to the
	// Spotify client and the worker alike.
	g := gate.New(gate.Options{Rate: cfg.Rate, Fixed: !cfg.Adaptive})
	m := metrics.New(reg, g.CooldownLeft, g.Rate)
	lanes := []string{worker.LaneChatbot}
	if bulk != nil {
		lanes = append(lanes, worker.LaneBulk)
	}
	m.InitLanes(lanes...)
	if p.Spotify, err = newSpotify(cfg, g, m); err != nil {
		return nil, err
	}
	opts := cfg.Options
	opts.Logger, opts.Gate, opts.Metrics = log, g, m
	if p.Worker, err = worker.New(q, bulk, p.Store, p.Spotify, opts); err != nil {
		return nil, err
	}
	metrics.RegisterBuildInfo(reg, cli.Version(), runtime.Version())
	if d, ok := p.Store.(*dynamostore.Store); ok {
		reg.MustRegister(dynamostore.NewCollector(d))
	}
	return p, nil
}

// open opens the lanes' queues (bulk is nil without a bulk lane) and the
// store, creating its tables when cfg asks; p closes what it opened.
func (p *Parts) open(ctx context.Context, cfg Config) (q, bulk worker.Queue, err error) {
	qopts := queues.Options{VisibilityTimeout: cfg.VisibilityTimeout}
	q, closeQ, err := queues.Open(ctx, cfg.QueueURL, qopts)
	if err != nil {
		return nil, nil, cli.VarError("QUEUE_URL", err)
	}
	p.closers = append(p.closers, closeQ)
	if cfg.BulkQueueURL != "" {
		b, closeB, err := queues.Open(ctx, cfg.BulkQueueURL, qopts)
		if err != nil {
			return nil, nil, cli.VarError("BULK_QUEUE_URL", err)
		}
		p.closers = append(p.closers, closeB)
		bulk = b
	}
	st, closeS, err := stores.OpenRetaining(ctx, cfg.StoreURL, cfg.ArtistsTable, cfg.RetainFor)
	if err != nil {
		return nil, nil, cli.VarError("STORE_URL", err)
	}
	p.closers = append(p.closers, closeS)
	p.Store = st
	if cfg.CreateTables {
		if c, ok := st.(interface{ CreateTables(context.Context) error }); ok {
			if err := c.CreateTables(ctx); err != nil {
				return nil, nil, fmt.Errorf("create tables: %w", err)
			}
		}
	}
	return q, bulk, nil
}

// newSpotify is the Spotify client behind gate g, observed by m, its calls
// traced when tracing is on.
func newSpotify(cfg Config, g *gate.Gate, m *metrics.Metrics) (*spotify.Client, error) {
	var hc *http.Client
	if tracing.Enabled() {
		hc = spotify.DefaultHTTPClient()
		hc.Transport = otelhttp.NewTransport(hc.Transport)
	}
	return spotify.New(spotify.Config{
		APIURL: cfg.APIURL, TokenURL: cfg.TokenURL, ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret,
		Gate: g, OnResponse: m.ObserveSpotify, OnToken: m.ObserveToken, HTTPClient: hc,
	})
}
