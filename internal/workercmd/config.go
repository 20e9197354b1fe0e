package workercmd

import (
	"errors"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/alecthomas/kong"

	"github.com/sixpotify/top-tracks/internal/backend"
	"github.com/sixpotify/top-tracks/internal/backend/queues"
	"github.com/sixpotify/top-tracks/internal/backend/stores"
	"github.com/sixpotify/top-tracks/internal/cli"
	"github.com/sixpotify/top-tracks/internal/logging"
	"github.com/sixpotify/top-tracks/internal/market"
	"github.com/sixpotify/top-tracks/internal/queue/sqlitequeue"
	"github.com/sixpotify/top-tracks/internal/store"
	"github.com/sixpotify/top-tracks/worker"
)

// Defaults the contract leaves to the project; the README documents them.
// Each is declared once, where it belongs; the flags show them through
// defaults.
const (
	DefaultQueueURL    = backend.EmbeddedURL
	DefaultStoreURL    = backend.EmbeddedURL
	DefaultRate        = 10 // requests per second per process
	DefaultConcurrency = worker.DefaultConcurrency
	DefaultFreshFor    = worker.DefaultFreshFor
	DefaultRetainFor   = store.DefaultRetainFor
)

// defaults are the values the flags' default tags name.
var defaults = map[string]string{
	"embedded_url":          backend.EmbeddedURL,
	"artists_table":         backend.DefaultArtistsTable,
	"default_rate":          strconv.Itoa(DefaultRate),
	"default_concurrency":   strconv.Itoa(worker.DefaultConcurrency),
	"default_market":        worker.DefaultMarket,
	"default_fresh_for":     cli.Duration(worker.DefaultFreshFor),
	"default_retain_for":    cli.Duration(store.DefaultRetainFor),
	"default_wait_time":     cli.Duration(worker.DefaultWaitTime),
	"default_drain_timeout": cli.Duration(worker.DefaultDrainTimeout),
	"default_max_receives":  strconv.Itoa(worker.DefaultMaxReceives),
	"default_visibility":    cli.Duration(sqlitequeue.DefaultVisibilityTimeout),
	"default_check_artist":  DefaultCheckArtist,
}

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
	// RetainFor is how long a fetched artist's rows are kept after its
	// last fetch (RETAIN_FOR).
	RetainFor         time.Duration
	VisibilityTimeout time.Duration // the embedded queue's

	// QueueDefaulted and StoreDefaulted tell that QUEUE_URL or STORE_URL
	// was not set and the embedded default is served.
	QueueDefaulted, StoreDefaulted bool
}

const description = `Drains the artist queue: fetches each artist's top tracks from Spotify and
writes them to the store, until SIGTERM or SIGINT. Every flag can be given as
the environment variable named beside it; a flag overrides its variable.
SPOTIFY_CLIENT_SECRET is read only from the environment (or the file
SPOTIFY_CLIENT_SECRET_FILE names), never from a flag.`

// grammar is the worker's command line.
type grammar struct {
	Version     kong.VersionFlag `help:"Print the version and exit."`
	Flags       runFlags         `embed:""`
	Run         struct{}         `cmd:"" default:"withargs" help:"Drain the queues until SIGTERM or SIGINT (the default command)."`
	Healthcheck struct{}         `cmd:"" help:"Exit 0 when /healthz on the local HTTP_ADDR answers 200, for container health checks."`
	Check       checkCmd         `cmd:"" help:"Check, one line each, the Spotify credentials, top-tracks for one artist, the queues and the store; exit 0 only when all pass."`
	Help        cli.Help         `cmd:"" help:"Show help for a command."`
}

// runFlags are the worker's settings; the README's configuration table
// lists the same.
type runFlags struct {
	QueueURL          string        `name:"queue-url" envvar:"QUEUE_URL" default:"${embedded_url}" help:"The chatbot's lane: an SQS queue URL, or sqlite:PATH[?queue=NAME] for the embedded queue."`
	BulkQueueURL      string        `name:"bulk-queue-url" envvar:"BULK_QUEUE_URL" help:"The bulk lane, same forms as QUEUE_URL; served with what the chatbot's lane leaves (empty: one lane)."`
	StoreURL          string        `name:"store-url" envvar:"STORE_URL" default:"${embedded_url}" help:"dynamodb:TABLE (the tracks table) or sqlite:PATH."`
	ArtistsTable      string        `name:"artists-table" envvar:"ARTISTS_TABLE" default:"${artists_table}" help:"The DynamoDB artists table beside the tracks table."`
	CreateTables      bool          `name:"create-tables" envvar:"CREATE_TABLES" help:"Create the DynamoDB tables if they are missing (for development)."`
	FreshFor          time.Duration `name:"fresh-for" envvar:"FRESH_FOR" default:"${default_fresh_for}" help:"Skip an artist fetched less than this long ago unless the message says force (0: never skip)."`
	RetainFor         time.Duration `name:"retain-for" envvar:"RETAIN_FOR" default:"${default_retain_for}" help:"Keep a fetched artist's rows this long after its last fetch, then delete them (Spotify's terms: not indefinitely)."`
	ClientID          string        `name:"spotify-client-id" envvar:"SPOTIFY_CLIENT_ID" help:"Client ID of the Spotify app (required)."`
	ClientSecretFile  string        `name:"spotify-client-secret-file" envvar:"SPOTIFY_CLIENT_SECRET_FILE" placeholder:"FILE" help:"File holding the client secret, instead of SPOTIFY_CLIENT_SECRET."`
	APIURL            string        `name:"spotify-api-url" envvar:"SPOTIFY_API_URL" default:"https://api.spotify.com/v1" help:"Base of the Spotify Web API."`
	TokenURL          string        `name:"spotify-token-url" envvar:"SPOTIFY_TOKEN_URL" default:"https://accounts.spotify.com/api/token" help:"Spotify's token endpoint."`
	Market            string        `name:"spotify-market" envvar:"SPOTIFY_MARKET" default:"${default_market}" help:"Market (ISO 3166-1 alpha-2) used when a message names none."`
	Rate              float64       `name:"spotify-rate" envvar:"SPOTIFY_RATE" default:"${default_rate}" help:"Most Spotify API requests per second from this process (token calls excluded)."`
	Adaptive          bool          `name:"spotify-adaptive" envvar:"SPOTIFY_ADAPTIVE" default:"true" negatable:"" help:"Learn the rate Spotify admits from its 429s, under SPOTIFY_RATE (false: always SPOTIFY_RATE)."`
	Concurrency       int           `name:"worker-concurrency" envvar:"WORKER_CONCURRENCY" default:"${default_concurrency}" help:"Artists in flight at once in this process."`
	HTTPAddr          string        `name:"http-addr" envvar:"HTTP_ADDR" default:":9090" help:"Address of the /healthz, /readyz and /metrics server (empty: none)."`
	WaitTime          time.Duration `name:"receive-wait-time" envvar:"RECEIVE_WAIT_TIME" default:"${default_wait_time}" help:"Long-poll wait of one receive (0s to 20s)."`
	DrainTimeout      time.Duration `name:"drain-timeout" envvar:"DRAIN_TIMEOUT" default:"${default_drain_timeout}" help:"On SIGTERM, how long in-flight work may finish before it is given back (at most 15s)."`
	VisibilityTimeout time.Duration `name:"visibility-timeout" envvar:"VISIBILITY_TIMEOUT" default:"${default_visibility}" help:"Visibility timeout of the embedded queue (SQS queues keep their own)."`
	MaxReceives       int           `name:"max-receives" envvar:"MAX_RECEIVES" default:"${default_max_receives}" help:"Deliveries after which a failing message is dropped, on a queue with no dead-letter queue."`
	UntilEmpty        bool          `name:"until-empty" envvar:"UNTIL_EMPTY" help:"Exit once the queues are empty and nothing is in flight."`
	LogFormat         string        `name:"log-format" envvar:"LOG_FORMAT" enum:",json,text" default:"" help:"json or text (empty: text on a terminal, JSON otherwise)."`
	LogLevel          string        `name:"log-level" envvar:"LOG_LEVEL" default:"info" help:"debug, info, warn or error."`
}

// secrets are the variables never taken from a flag.
var secrets = []string{"SPOTIFY_CLIENT_SECRET"}

// ErrHelp is returned by Load when help or the version was printed.
var ErrHelp = cli.ErrHelp

// Load reads the configuration from args and the environment (lookup, as
// os.LookupEnv). It returns ErrHelp after printing help to out, and
// otherwise every problem at once, each on a line naming the variable.
func Load(args []string, lookup cli.Lookup, out io.Writer) (Config, error) {
	var g grammar
	p, err := cli.Parse("worker", description, &g, defaults, args, lookup, secrets, out, out)
	if err != nil {
		return Config{}, err
	}
	if p.Ctx.Command() == "healthcheck" {
		return Config{}, errors.New("worker healthcheck has no configuration to load")
	}
	return g.Flags.config(p, lookup)
}

func (f runFlags) config(s *cli.Parsed, lookup cli.Lookup) (Config, error) {
	c := Config{
		QueueURL: f.QueueURL, BulkQueueURL: f.BulkQueueURL, StoreURL: f.StoreURL, ArtistsTable: f.ArtistsTable,
		CreateTables: f.CreateTables,
		ClientID:     f.ClientID, APIURL: f.APIURL, TokenURL: f.TokenURL,
		Market: strings.ToUpper(f.Market), Rate: f.Rate, Adaptive: f.Adaptive,
		HTTPAddr: f.HTTPAddr, LogFormat: f.LogFormat, LogLevel: f.LogLevel,
		VisibilityTimeout: f.VisibilityTimeout, RetainFor: f.RetainFor,
		QueueDefaulted: !s.Given("QUEUE_URL"), StoreDefaulted: !s.Given("STORE_URL"),
	}
	c.ClientSecret = cli.Secret(s, lookup, "SPOTIFY_CLIENT_SECRET", f.ClientSecretFile)
	c.checkBackends(s)
	f.checkSpotify(s, lookup, c)
	c.Options = f.options(s, c)
	if _, err := logging.New(io.Discard, c.LogFormat, c.LogLevel); err != nil {
		env := "LOG_LEVEL"
		if errors.Is(err, logging.ErrFormat) {
			env = "LOG_FORMAT"
		}
		s.Fail(env, "%v", err)
	}
	return c, s.Err()
}

// checkBackends checks the queues' and the store's settings.
func (c Config) checkBackends(s *cli.Parsed) {
	for env, u := range map[string]string{"QUEUE_URL": c.QueueURL, "BULK_QUEUE_URL": c.BulkQueueURL} {
		if u == "" {
			if env == "QUEUE_URL" {
				s.Fail(env, "is empty; unset it for the embedded default %s", DefaultQueueURL)
			}
			continue
		}
		if err := queues.ValidateURL(u); err != nil {
			s.Fail(env, "%v", err)
		}
	}
	if c.BulkQueueURL != "" && c.BulkQueueURL == c.QueueURL {
		s.Fail("BULK_QUEUE_URL", "is the same queue as QUEUE_URL")
	}
	if c.StoreURL == "" {
		s.Fail("STORE_URL", "is empty; unset it for the embedded default %s", DefaultStoreURL)
	} else if err := stores.ValidateURL(c.StoreURL); err != nil {
		s.Fail("STORE_URL", "%v", err)
	}
	if strings.TrimSpace(c.ArtistsTable) == "" {
		s.Fail("ARTISTS_TABLE", "must not be empty")
	}
}

// checkSpotify checks the Spotify app's settings: credentials, URLs,
// market and rate.
func (f runFlags) checkSpotify(s *cli.Parsed, lookup cli.Lookup, c Config) {
	if strings.TrimSpace(c.ClientID) == "" {
		s.Fail("SPOTIFY_CLIENT_ID", "is required")
	}
	if c.ClientSecret == "" && f.ClientSecretFile == "" {
		if v, _ := lookup("SPOTIFY_CLIENT_SECRET"); strings.TrimSpace(v) == "" {
			s.Failf("SPOTIFY_CLIENT_SECRET (--spotify-client-secret-file): is required: set it, or SPOTIFY_CLIENT_SECRET_FILE to a file that holds it")
		}
	}
	for env, u := range map[string]string{"SPOTIFY_API_URL": c.APIURL, "SPOTIFY_TOKEN_URL": c.TokenURL} {
		if !strings.HasPrefix(u, "https://") && !strings.HasPrefix(u, "http://") {
			s.Fail(env, "%q is not an http(s) URL", redactURL(u))
		}
	}
	if !market.Valid(c.Market) {
		s.Fail("SPOTIFY_MARKET", "%q is not an ISO 3166-1 alpha-2 code such as US", f.Market)
	}
	if c.Rate <= 0 || math.IsInf(c.Rate, 0) || math.IsNaN(c.Rate) {
		s.Fail("SPOTIFY_RATE", "%v is not a positive, finite number of requests a second", c.Rate)
	}
}

// options are the worker's options from the flags, checked; RETAIN_FOR
// and VISIBILITY_TIMEOUT are checked here too, against them.
func (f runFlags) options(s *cli.Parsed, c Config) worker.Options {
	o := c.Options
	if o.Concurrency = f.Concurrency; o.Concurrency < 1 {
		s.Fail("WORKER_CONCURRENCY", "%d: must be at least 1", f.Concurrency)
	}
	o.Market = c.Market
	if o.FreshFor = f.FreshFor; o.FreshFor == 0 {
		o.FreshFor = -1 // 0 means never skip
	} else if o.FreshFor < 0 {
		s.Fail("FRESH_FOR", "must not be negative")
	}
	if c.RetainFor < time.Hour {
		s.Fail("RETAIN_FOR", "%s: must be at least 1h (rows younger than that would be deleted before they are read)", cli.Duration(f.RetainFor))
	} else if c.RetainFor <= o.FreshFor {
		s.Fail("RETAIN_FOR", "%s: must be longer than FRESH_FOR (%s), or rows would expire while still fresh", cli.Duration(f.RetainFor), cli.Duration(o.FreshFor))
	}
	if o.WaitTime = f.WaitTime; o.WaitTime < 0 || o.WaitTime > 20*time.Second {
		s.Fail("RECEIVE_WAIT_TIME", "must be between 0s and 20s")
	} else if o.WaitTime == 0 {
		o.WaitTime = time.Millisecond // a short poll
	}
	if o.DrainTimeout = f.DrainTimeout; o.DrainTimeout <= 0 || o.DrainTimeout > 15*time.Second {
		s.Fail("DRAIN_TIMEOUT", "must be more than 0s and at most 15s, so that a stop ends within 25s")
	}
	if c.VisibilityTimeout < time.Second {
		s.Fail("VISIBILITY_TIMEOUT", "must be at least 1s")
	}
	if o.MaxReceives = f.MaxReceives; o.MaxReceives < 1 {
		s.Fail("MAX_RECEIVES", "%d: must be at least 1", f.MaxReceives)
	}
	o.StopWhenIdle = f.UntilEmpty
	return o
}
