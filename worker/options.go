package worker

import (
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sixpotify/top-tracks/internal/gate"
	"github.com/sixpotify/top-tracks/internal/metrics"
	"github.com/sixpotify/top-tracks/internal/store"
)

// Defaults of Options, which the worker command's flags show as theirs.
const (
	DefaultConcurrency  = 16
	DefaultMarket       = "US"
	DefaultFreshFor     = store.DefaultFreshFor
	DefaultWaitTime     = 20 * time.Second
	DefaultDrainTimeout = 15 * time.Second
	DefaultMaxReceives  = 5
	// DefaultMaxPostpones covers at least 38 hours of pauses (a day-long
	// penalty and a long outage besides): postponements wait 10 s longer
	// each, up to 15 minutes.
	DefaultMaxPostpones = 200
)

// Options tune a Worker. The zero value of each field means its default.
type Options struct {
	// Concurrency is the most artists in flight at once (default 16).
	Concurrency int
	// Market is used when a message names none (default "US").
	Market string
	// FreshFor: an artist fetched less than this long ago is skipped unless
	// the message says force (default 1h; negative: never skip).
	FreshFor time.Duration
	// WaitTime is the long-poll wait of one receive (default 20s).
	WaitTime time.Duration
	// DrainTimeout bounds how long a stop waits for in-flight work before
	// cancelling it and giving the messages back (default 15s). The rest of
	// the stop ends within StopMargin more.
	DrainTimeout time.Duration
	// MaxReceives: on a queue with no dead-letter queue, a message that has
	// failed this many deliveries is deleted and logged (default 5).
	MaxReceives int
	// MaxPostpones is how often a message may be postponed (sent again with
	// a delay, without spending a delivery) during pauses that are not its
	// own; past it, it spends its deliveries as a failure does (default 200).
	MaxPostpones int
	// MaxRetries is how many times one delivery retries a transient Spotify
	// failure (default 4); throttled attempts are not counted.
	MaxRetries int
	// RetryBase and RetryCap shape the exponential backoff between retries
	// (defaults 250ms and 10s).
	RetryBase, RetryCap time.Duration
	// StopWhenIdle makes Run return by itself once a receive on every lane
	// came back empty with nothing in flight (for batch runs such as make run).
	StopWhenIdle bool
	// Logger receives the worker's logs (default: discard).
	Logger *slog.Logger
	// Metrics are where the worker counts; the command creates them once
	// and hands the same to the Spotify client's hooks (default: created on
	// Registerer, with the Gate's cooldown and rate).
	Metrics *Metrics
	// Registerer receives the metrics the worker creates when Metrics is
	// nil (default: a private registry).
	Registerer prometheus.Registerer
	// Gate decides whether this process may call Spotify now; the Fetcher
	// must wait on the same one. The worker asks it before receiving, tells
	// it how store calls went (for its outage breaker), and gives back
	// without spending a delivery what a pause meets; the bulk lane takes at
	// most its BulkShare of the slots (default: an unlimited gate).
	Gate *Gate
	// Clock returns the time (default time.Now).
	Clock func() time.Time
}

func (o *Options) setDefaults() {
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.Market == "" {
		o.Market = DefaultMarket
	}
	if o.FreshFor == 0 {
		o.FreshFor = DefaultFreshFor
	}
	if o.WaitTime <= 0 {
		o.WaitTime = DefaultWaitTime
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = DefaultDrainTimeout
	}
	if o.MaxReceives <= 0 {
		o.MaxReceives = DefaultMaxReceives
	}
	if o.MaxPostpones <= 0 {
		o.MaxPostpones = DefaultMaxPostpones
	}
	if o.MaxRetries <= 0 {
		o.MaxRetries = 4
	}
	if o.RetryBase <= 0 {
		o.RetryBase = 250 * time.Millisecond
	}
	if o.RetryCap <= 0 {
		o.RetryCap = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Registerer == nil {
		o.Registerer = prometheus.NewRegistry()
	}
	if o.Gate == nil {
		o.Gate = gate.New(gate.Options{})
	}
	if o.Metrics == nil {
		o.Metrics = metrics.New(o.Registerer, o.Gate.CooldownLeft, o.Gate.Rate)
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
}

// Timeouts of the calls a delivery's settling makes to its queue. A stop
// takes at most StopMargin past DrainTimeout: the give-backs of what was
// cancelled run in parallel, then the last deletes, which the deleter holds
// to the stop's deadline.
const (
	giveBackTimeout    = 3 * time.Second // one release, or one postponing send
	deleteTimeout      = 5 * time.Second // one batch delete (less when a stop's deadline comes first)
	heartbeatTimeout   = 5 * time.Second // one extension of a delivery's visibility
	lastDeletesTimeout = 4 * time.Second // the last deletes of a stop, after the give-backs
)

// StopMargin is the most a stop takes past DrainTimeout: giving back the
// unfinished messages, then the last deletes. With the largest DrainTimeout
// the worker command accepts (15s) and its health server's shutdown, a stop
// ends within 25s.
const StopMargin = giveBackTimeout + lastDeletesTimeout
