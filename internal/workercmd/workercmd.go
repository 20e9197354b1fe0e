// Package workercmd is the worker command: configuration from the
// environment and flags, wiring of the backends, the health and metrics
// server, and the run until a signal.
package workercmd

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/sixpotify/top-tracks/internal/cli"
	"github.com/sixpotify/top-tracks/internal/logging"
	"github.com/sixpotify/top-tracks/internal/telemetry"
)

// Run is the worker command. lookup reads the environment (os.LookupEnv).
// It returns the process's exit code: 0, 1 for a failure at run time, 2
// for a usage or configuration error.
func Run(ctx context.Context, args []string, lookup cli.Lookup, stdout, stderr io.Writer) int {
	var g grammar
	p, err := cli.Parse("worker", description, &g, defaults, args, lookup, secrets, stdout, stderr)
	if errors.Is(err, cli.ErrHelp) {
		return 0
	}
	if err == nil && p.Ctx.Command() == "healthcheck" {
		// The check needs HTTP_ADDR only: the container's other settings
		// are the worker's to judge.
		return healthcheck(ctx, g.Flags.HTTPAddr, stderr)
	}
	var cfg Config
	if err == nil {
		cfg, err = g.Flags.config(p, lookup)
	}
	if err != nil {
		return cli.Fail(stderr, "worker", cli.Usage(err))
	}
	if strings.HasPrefix(p.Ctx.Command(), "check") {
		return check(ctx, cfg, g.Check.Artist, stdout)
	}
	log, _ := logging.New(stderr, cfg.LogFormat, cfg.LogLevel)
	stopTracing, err := telemetry.Start(ctx, "sixpotify-worker")
	if err != nil {
		return cli.Fail(stderr, "worker", cli.Usage(err))
	}
	defer stopTracing(log)
	if err := run(ctx, cfg, log); err != nil {
		log.Error("worker failed", "err", err)
		if cli.IsUsage(err) {
			return cli.ExitUsage
		}
		return 1
	}
	return 0
}

// ProgressEvery is how often the worker logs its counts at info, when
// something happened.
const ProgressEvery = time.Minute

func run(ctx context.Context, cfg Config, log *slog.Logger) error {
	if cfg.QueueDefaulted {
		log.Warn("QUEUE_URL is not set: serving the embedded queue", "queue_url", DefaultQueueURL)
	}
	if cfg.StoreDefaulted {
		log.Warn("STORE_URL is not set: writing to the embedded store", "store_url", DefaultStoreURL)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	parts, err := Build(ctx, cfg, log, reg)
	if err != nil {
		return err
	}
	defer parts.Close()
	log.Info("worker configured", "version", cli.Version(),
		"queue_url", redactURL(cfg.QueueURL), "bulk_queue_url", redactURL(cfg.BulkQueueURL),
		"store_url", cfg.StoreURL, "artists_table", cfg.ArtistsTable,
		"spotify_api_url", redactURL(cfg.APIURL), "spotify_rate", cfg.Rate, "spotify_adaptive", cfg.Adaptive,
		"concurrency", cfg.Options.Concurrency, "market", cfg.Market, "fresh_for", cfg.Options.FreshFor,
		"retain_for", cfg.RetainFor,
		"http_addr", cfg.HTTPAddr)
	if cfg.HTTPAddr != "" {
		srv, err := serve(cfg.HTTPAddr, parts.Worker, reg, log)
		if err != nil {
			return cli.VarError("HTTP_ADDR", err)
		}
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
			defer cancel()
			_ = srv.Shutdown(sctx)
		}()
	}
	// A token at once: wrong credentials fail /readyz and say so in the log
	// (through the gate's refusal) before the first message arrives.
	go func() {
		if err := parts.Spotify.Warm(ctx); err != nil && ctx.Err() == nil {
			log.Warn("could not fetch a Spotify token at start; the worker keeps trying as messages arrive", "err", err)
		}
	}()
	ticker := time.NewTicker(ProgressEvery)
	stopProgress := logProgress(parts.Worker.Metrics().Totals, log, ticker.C)
	err = parts.Worker.Run(ctx)
	stopProgress()
	ticker.Stop()
	log.Info("worker counts at stop", attrs(parts.Worker.Metrics().Totals())...)
	return err
}
