// Package workercmd is the worker command: configuration from the
// environment and flags, wiring of the backends, the health and metrics
// server, and the run until a signal.
package workercmd

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sixpotify/top-tracks/internal/backend"
	"github.com/sixpotify/top-tracks/internal/envflag"
	"github.com/sixpotify/top-tracks/internal/gate"
	"github.com/sixpotify/top-tracks/internal/logging"
	"github.com/sixpotify/top-tracks/internal/message"
	"github.com/sixpotify/top-tracks/internal/spotify"
	"github.com/sixpotify/top-tracks/internal/store/dynamostore"
	"github.com/sixpotify/top-tracks/worker"
)

// Defaults the contract leaves to the project; the README documents them.
const (
	DefaultQueueURL    = "sqlite:sixpotify.db"
	DefaultStoreURL    = "sqlite:sixpotify.db"
	DefaultRate        = 10 // requests per second per process
	DefaultConcurrency = 16
	DefaultFreshFor    = time.Hour
)

// ShutdownTimeout bounds the health server's shutdown at the end of a stop.
const ShutdownTimeout = 2 * time.Second

// Config is the worker's configuration, read from the environment and flags.
type Config struct {
	QueueURL, BulkQueueURL, StoreURL, ArtistsTable string
	CreateTables                                   bool

	ClientID, ClientSecret, APIURL, TokenURL, Market string
	Rate                                             float64
	Adaptive                                         bool

	HTTPAddr, LogFormat, LogLevel string
	Options                       worker.Options
	VisibilityTimeout             time.Duration // the embedded queue's
}

const usageText = `Usage: worker [flags]
       worker healthcheck

Drains the artist queue: fetches each artist's top tracks from Spotify and
writes them to the store, until SIGTERM or SIGINT. Every flag can be given
as the environment variable named beside it; a flag overrides its variable.

'worker healthcheck' exits 0 when the local /healthz answers 200.

Flags:
`

// Load reads the configuration. It returns flag.ErrHelp for --help (the
// usage is then written to out), and otherwise every problem at once, each
// on a line naming the variable.
func Load(args []string, getenv func(string) string, out io.Writer) (Config, error) {
	s := envflag.New("worker", getenv, out)
	s.FS.Usage = func() {
		fmt.Fprint(out, usageText)
		s.FS.PrintDefaults()
	}
	queueURL := s.Var("QUEUE_URL", DefaultQueueURL, "the chatbot's lane: an SQS queue URL, or sqlite:PATH[?queue=NAME] for the embedded queue")
	bulkURL := s.Var("BULK_QUEUE_URL", "", "the bulk lane, same forms as QUEUE_URL; served with what the chatbot's lane leaves")
	storeURL := s.Var("STORE_URL", DefaultStoreURL, "dynamodb:TABLE (the tracks table) or sqlite:PATH")
	artists := s.Var("ARTISTS_TABLE", "artists", "the DynamoDB artists table beside the tracks table")
	createTables := s.Var("CREATE_TABLES", "false", "create the DynamoDB tables if they are missing (for development)")
	freshFor := s.Var("FRESH_FOR", DefaultFreshFor.String(), "skip an artist fetched less than this long ago unless the message says force (0: never skip)")
	clientID := s.Var("SPOTIFY_CLIENT_ID", "", "client ID of the Spotify app (required)")
	clientSecret := s.Var("SPOTIFY_CLIENT_SECRET", "", "client secret of the Spotify app (required; never logged)")
	apiURL := s.Var("SPOTIFY_API_URL", "https://api.spotify.com/v1", "base of the Spotify Web API")
	tokenURL := s.Var("SPOTIFY_TOKEN_URL", "https://accounts.spotify.com/api/token", "Spotify's token endpoint")
	market := s.Var("SPOTIFY_MARKET", "US", "market (ISO 3166-1 alpha-2) used when a message names none")
	rate := s.Var("SPOTIFY_RATE", fmt.Sprint(DefaultRate), "most Spotify API requests per second from this process (token calls excluded)")
	adaptive := s.Var("SPOTIFY_ADAPTIVE", "true", "learn the rate Spotify admits from its 429s (false: always SPOTIFY_RATE)")
	concurrency := s.Var("WORKER_CONCURRENCY", fmt.Sprint(DefaultConcurrency), "artists in flight at once in this process")
	httpAddr := s.Var("HTTP_ADDR", ":9090", "address of the /healthz, /readyz and /metrics server (empty: none)")
	wait := s.Var("RECEIVE_WAIT_TIME", "20s", "long-poll wait of one receive (0s to 20s)")
	drain := s.Var("DRAIN_TIMEOUT", "15s", "on SIGTERM, how long in-flight work may finish before it is given back (at most 15s)")
	visibility := s.Var("VISIBILITY_TIMEOUT", "30s", "visibility timeout of the embedded queue (SQS queues keep their own)")
	maxReceives := s.Var("MAX_RECEIVES", "5", "deliveries after which a failing message is dropped, on a queue with no dead-letter queue")
	untilEmpty := s.Var("UNTIL_EMPTY", "false", "exit once the queues are empty and nothing is in flight")
	logFormat := s.Var("LOG_FORMAT", "", "json or text (default: text on a terminal, JSON otherwise)")
	logLevel := s.Var("LOG_LEVEL", "info", "debug, info, warn or error")
	if err := s.Parse(args); err != nil {
		return Config{}, err
	}
	if s.FS.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected argument %q (see --help)", s.FS.Arg(0))
	}

	c := Config{
		QueueURL: *queueURL, BulkQueueURL: *bulkURL, StoreURL: *storeURL, ArtistsTable: *artists,
		ClientID: *clientID, ClientSecret: *clientSecret, APIURL: *apiURL, TokenURL: *tokenURL,
		Market: strings.ToUpper(*market), HTTPAddr: *httpAddr, LogFormat: *logFormat, LogLevel: *logLevel,
	}
	if err := backend.ValidateQueueURL(c.QueueURL); err != nil {
		s.Fail("QUEUE_URL", "%v", err)
	}
	if c.BulkQueueURL != "" {
		if err := backend.ValidateQueueURL(c.BulkQueueURL); err != nil {
			s.Fail("BULK_QUEUE_URL", "%v", err)
		} else if c.BulkQueueURL == c.QueueURL {
			s.Fail("BULK_QUEUE_URL", "is the same queue as QUEUE_URL")
		}
	}
	if err := backend.ValidateStoreURL(c.StoreURL); err != nil {
		s.Fail("STORE_URL", "%v", err)
	}
	if strings.TrimSpace(c.ArtistsTable) == "" {
		s.Fail("ARTISTS_TABLE", "must not be empty")
	}
	c.CreateTables = parseBool(s, "CREATE_TABLES", *createTables)
	s.Required("SPOTIFY_CLIENT_ID", c.ClientID)
	s.Required("SPOTIFY_CLIENT_SECRET", c.ClientSecret)
	for env, u := range map[string]string{"SPOTIFY_API_URL": c.APIURL, "SPOTIFY_TOKEN_URL": c.TokenURL} {
		if !strings.HasPrefix(u, "https://") && !strings.HasPrefix(u, "http://") {
			s.Fail(env, "%q is not an http(s) URL", redactURL(u))
		}
	}
	if !message.ValidMarket(c.Market) {
		s.Fail("SPOTIFY_MARKET", "%q is not an ISO 3166-1 alpha-2 code such as US", *market)
	}
	c.Rate = s.Float("SPOTIFY_RATE", *rate)
	if math.IsInf(c.Rate, 0) {
		s.Fail("SPOTIFY_RATE", "must be finite")
	}
	c.Adaptive = parseBool(s, "SPOTIFY_ADAPTIVE", *adaptive)
	o := &c.Options
	o.Concurrency = s.Int("WORKER_CONCURRENCY", *concurrency, 1)
	o.Market = c.Market
	if o.FreshFor = s.Duration("FRESH_FOR", *freshFor); o.FreshFor == 0 {
		o.FreshFor = -1 // 0 means never skip
	}
	if o.WaitTime = s.Duration("RECEIVE_WAIT_TIME", *wait); o.WaitTime < 0 || o.WaitTime > 20*time.Second {
		s.Fail("RECEIVE_WAIT_TIME", "must be between 0s and 20s")
	} else if o.WaitTime == 0 {
		o.WaitTime = time.Millisecond // a short poll
	}
	if o.DrainTimeout = s.Duration("DRAIN_TIMEOUT", *drain); o.DrainTimeout <= 0 || o.DrainTimeout > 15*time.Second {
		s.Fail("DRAIN_TIMEOUT", "must be more than 0s and at most 15s, so that a stop ends within 25s")
	}
	if c.VisibilityTimeout = s.Duration("VISIBILITY_TIMEOUT", *visibility); c.VisibilityTimeout < time.Second {
		s.Fail("VISIBILITY_TIMEOUT", "must be at least 1s")
	}
	o.MaxReceives = s.Int("MAX_RECEIVES", *maxReceives, 1)
	o.StopWhenIdle = parseBool(s, "UNTIL_EMPTY", *untilEmpty)
	if _, err := logging.New(io.Discard, c.LogFormat, c.LogLevel); err != nil {
		env := "LOG_LEVEL"
		if strings.Contains(err.Error(), "format") {
			env = "LOG_FORMAT"
		}
		s.Fail(env, "%v", err)
	}
	return c, s.Err()
}

func parseBool(s *envflag.Set, env, v string) bool {
	switch strings.ToLower(v) {
	case "1", "true", "yes", "on":
		return true
	case "", "0", "false", "no", "off":
		return false
	}
	s.Fail(env, "%q is not true or false", v)
	return false
}

// Run is the worker command. It returns the process's exit code.
func Run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "healthcheck" {
		s := envflag.New("worker healthcheck", getenv, stderr)
		addr := s.Var("HTTP_ADDR", ":9090", "address of the worker's health server")
		s.FS.Usage = func() {
			fmt.Fprint(stderr, "Usage: worker healthcheck [flags]\n\nExits 0 when /healthz on the local HTTP_ADDR answers 200, for container health checks.\n\nFlags:\n")
			s.FS.PrintDefaults()
		}
		if err := s.Parse(args[1:]); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			return 2
		}
		return healthcheck(ctx, *addr, stderr)
	}
	cfg, err := Load(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			fmt.Fprintln(stderr, "worker: "+line)
		}
		return 2
	}
	log, _ := logging.New(stderr, cfg.LogFormat, cfg.LogLevel)
	if err := run(ctx, cfg, log); err != nil {
		log.Error("worker failed", "err", err)
		return 1
	}
	return 0
}

func run(ctx context.Context, cfg Config, log *slog.Logger) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	parts, err := Build(ctx, cfg, log, reg)
	if err != nil {
		return err
	}
	defer parts.Close()
	if cfg.HTTPAddr != "" {
		srv, err := serve(cfg.HTTPAddr, parts.Worker, reg, log)
		if err != nil {
			return fmt.Errorf("HTTP_ADDR: %w", err)
		}
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
			defer cancel()
			_ = srv.Shutdown(sctx)
		}()
	}
	return parts.Worker.Run(ctx)
}

// Parts is a wired worker and the backends it uses.
type Parts struct {
	Worker  *worker.Worker
	Store   backend.Store
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
	qopts := backend.QueueOptions{VisibilityTimeout: cfg.VisibilityTimeout}
	q, closeQ, err := backend.OpenQueue(ctx, cfg.QueueURL, qopts)
	if err != nil {
		return nil, fmt.Errorf("QUEUE_URL: %w", err)
	}
	p.closers = append(p.closers, closeQ)
	var bulk worker.Queue
	if cfg.BulkQueueURL != "" {
		b, closeB, err := backend.OpenQueue(ctx, cfg.BulkQueueURL, qopts)
		if err != nil {
			return nil, fmt.Errorf("BULK_QUEUE_URL: %w", err)
		}
		p.closers = append(p.closers, closeB)
		bulk = b
	}
	st, closeS, err := backend.OpenStore(ctx, cfg.StoreURL, cfg.ArtistsTable)
	if err != nil {
		return nil, fmt.Errorf("STORE_URL: %w", err)
	}
	p.closers = append(p.closers, closeS)
	p.Store = st
	if cfg.CreateTables {
		if c, ok := st.(interface{ CreateTables(context.Context) error }); ok {
			if err := c.CreateTables(ctx); err != nil {
				return nil, fmt.Errorf("create tables: %w", err)
			}
		}
	}

	g := gate.New(gate.Options{Rate: cfg.Rate, Fixed: !cfg.Adaptive})
	opts := cfg.Options
	opts.Logger, opts.Registerer, opts.Gate = log, reg, g
	// The Spotify client reports to the worker's metrics, which exist once
	// the worker does: the hooks read them through this variable.
	var w *worker.Worker
	client, err := spotify.New(spotify.Config{
		APIURL: cfg.APIURL, TokenURL: cfg.TokenURL, ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret,
		Gate:       g,
		OnResponse: func(status int, elapsed time.Duration) { w.Metrics().ObserveSpotify(status, elapsed) },
		OnToken:    func(err error) { w.Metrics().ObserveToken(err) },
	})
	if err != nil {
		return nil, err
	}
	w, err = worker.New(q, bulk, st, client, opts)
	if err != nil {
		return nil, err
	}
	if d, ok := st.(*dynamostore.Store); ok {
		reg.MustRegister(dynamoCollector{d})
	}
	p.Worker = w
	return p, nil
}

// dynamoCollector exposes the DynamoDB store's counters, read at scrape time.
type dynamoCollector struct{ s *dynamostore.Store }

var dynamoDescs = struct{ batchCalls, itemsPut, itemsDeleted, unprocessed, throttled, unchanged *prometheus.Desc }{
	batchCalls:   prometheus.NewDesc("sixpotify_dynamodb_batch_write_calls_total", "BatchWriteItem calls.", nil, nil),
	itemsPut:     prometheus.NewDesc("sixpotify_dynamodb_items_put_total", "Track rows written.", nil, nil),
	itemsDeleted: prometheus.NewDesc("sixpotify_dynamodb_items_deleted_total", "Track rows deleted because they left the top list.", nil, nil),
	unprocessed:  prometheus.NewDesc("sixpotify_dynamodb_unprocessed_items_total", "Items DynamoDB handed back as UnprocessedItems (then retried).", nil, nil),
	throttled:    prometheus.NewDesc("sixpotify_dynamodb_throttled_total", "Throttling errors from DynamoDB (then retried).", nil, nil),
	unchanged:    prometheus.NewDesc("sixpotify_dynamodb_unchanged_saves_total", "Saves whose answer equalled the stored one: only fetched_at written.", nil, nil),
}

func (dynamoCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{dynamoDescs.batchCalls, dynamoDescs.itemsPut, dynamoDescs.itemsDeleted,
		dynamoDescs.unprocessed, dynamoDescs.throttled, dynamoDescs.unchanged} {
		ch <- d
	}
}

func (c dynamoCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.Stats()
	for d, v := range map[*prometheus.Desc]int64{
		dynamoDescs.batchCalls: st.BatchWriteCalls, dynamoDescs.itemsPut: st.ItemsPut, dynamoDescs.itemsDeleted: st.ItemsDeleted,
		dynamoDescs.unprocessed: st.Unprocessed, dynamoDescs.throttled: st.Throttled, dynamoDescs.unchanged: st.Unchanged,
	} {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
}

// serve starts the health and metrics server.
func serve(addr string, w *worker.Worker, reg *prometheus.Registry, log *slog.Logger) (*http.Server, error) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(rw http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(rw, "ok")
	})
	mux.HandleFunc("GET /readyz", func(rw http.ResponseWriter, _ *http.Request) {
		if err := w.Ready(); err != nil {
			http.Error(rw, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(rw, "ready")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("health server stopped", "err", err)
		}
	}()
	log.Info("health and metrics server listening", "addr", l.Addr().String())
	return srv, nil
}

// healthcheck asks the local /healthz, for container health checks in
// images with no shell.
func healthcheck(ctx context.Context, addr string, stderr io.Writer) int {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		fmt.Fprintf(stderr, "healthcheck: HTTP_ADDR %q: %v\n", addr, err)
		return 1
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort(host, port)+"/healthz", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "healthcheck: %v\n", err)
		return 1
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "healthcheck: /healthz answered %s\n", resp.Status)
		return 1
	}
	return 0
}

// redactURL hides a password in u, so that a configuration error never
// prints one.
func redactURL(u string) string {
	p, err := url.Parse(u)
	if err != nil || p.User == nil {
		if i := strings.LastIndex(u, "@"); i >= 0 {
			return "…" + u[i:]
		}
		return u
	}
	return p.Redacted()
}
