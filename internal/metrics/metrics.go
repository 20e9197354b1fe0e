// Package metrics defines the worker's Prometheus metrics. They are registered
// on an injected prometheus.Registerer, never on the global registry, and are
// updated with atomic operations that never block the hot path.
package metrics

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Outcomes of a processed message (label "outcome").
const (
	OutcomeOK       = "ok" // rows written, message deleted
	OutcomeFresh    = "skipped_fresh"
	OutcomeNotFound = "not_found" // Spotify does not know the artist
	OutcomeStale    = "stale"     // a newer fetch was already stored
	OutcomePoison   = "poison"    // the message can never be processed
	OutcomeReleased = "released"  // given back to the queue to be tried again
)

// Metrics is the set of the worker's metrics. A nil *Metrics is not valid; use New.
type Metrics struct {
	Received         *prometheus.CounterVec   // lane
	ReceiveCalls     *prometheus.CounterVec   // lane
	DeleteCalls      *prometheus.CounterVec   // lane
	EmptyReceives    *prometheus.CounterVec   // lane
	Processed        *prometheus.CounterVec   // lane, outcome
	Deleted          *prometheus.CounterVec   // lane
	DeleteFailures   *prometheus.CounterVec   // lane
	ReceiveErrors    *prometheus.CounterVec   // lane
	InFlight         *prometheus.GaugeVec     // lane
	SpotifyRequests  *prometheus.CounterVec   // code
	SpotifyLatency   prometheus.Histogram     //
	TokenRequests    *prometheus.CounterVec   // result
	Retries          *prometheus.CounterVec   // cause
	Cooldowns        prometheus.Counter       //
	CooldownSeconds  prometheus.GaugeFunc     // set by the worker
	RateLimit        prometheus.GaugeFunc     // set by the worker
	ProcessSeconds   *prometheus.HistogramVec // lane
	StoreSaveSeconds prometheus.Histogram
	BreakerOpened    *prometheus.CounterVec // cause
	BreakerClosed    *prometheus.CounterVec // cause
	Postponed        *prometheus.CounterVec // lane, reason
	Refusals         *prometheus.CounterVec // refusal
}

// Refusal labels of Refusals: spotify.Refusal's values for a 403 of
// top-tracks, and RefusalCredentials for rejected credentials.
const (
	RefusalDevelopmentMode = "development_mode"
	RefusalPremiumLapsed   = "premium_lapsed"
	RefusalOther           = "other"
	RefusalCredentials     = "credentials"
)

// New creates the metrics and registers them on reg. cooldownLeft and rate are
// read at scrape time.
func New(reg prometheus.Registerer, cooldownLeft func() time.Duration, rate func() float64) *Metrics {
	const ns = "sixpotify"
	m := &Metrics{
		Received: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "messages_received_total",
			Help: "Messages received from the queue."}, []string{"lane"}),
		ReceiveCalls: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "receive_calls_total",
			Help: "Receive calls made to the queue."}, []string{"lane"}),
		DeleteCalls: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "delete_batch_calls_total",
			Help: "Batch-delete calls made to the queue."}, []string{"lane"}),
		EmptyReceives: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "receives_empty_total",
			Help: "Receive calls that returned no message."}, []string{"lane"}),
		Processed: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "messages_processed_total",
			Help: "Messages processed, by outcome."}, []string{"lane", "outcome"}),
		Deleted: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "messages_deleted_total",
			Help: "Messages deleted from the queue after their writes were durable."}, []string{"lane"}),
		DeleteFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "message_delete_failures_total",
			Help: "Batch-delete entries that failed; the message is delivered again."}, []string{"lane"}),
		ReceiveErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "receive_errors_total",
			Help: "Receive calls that failed."}, []string{"lane"}),
		InFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "artists_in_flight",
			Help: "Artists being processed now."}, []string{"lane"}),
		SpotifyRequests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "spotify_requests_total",
			Help: "Spotify Web API requests, by HTTP status code (0: no answer)."}, []string{"code"}),
		SpotifyLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: "spotify_request_duration_seconds",
			Help: "Latency of Spotify Web API requests.", Buckets: prometheus.ExponentialBuckets(0.01, 2, 12)}),
		TokenRequests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "spotify_token_requests_total",
			Help: "Client-credentials token requests, by result."}, []string{"result"}),
		Retries: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "spotify_retries_total",
			Help: "Retried Spotify calls, by cause (rate_limited, server, transport); queue and store retries are not counted here."}, []string{"cause"}),
		Cooldowns: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "spotify_cooldowns_total",
			Help: "Cooldowns started by a 429 from Spotify."}),
		CooldownSeconds: prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Name: "spotify_cooldown_remaining_seconds",
			Help: "Seconds left in the current Spotify cooldown (0: none)."}, func() float64 { return cooldownLeft().Seconds() }),
		RateLimit: prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Name: "spotify_rate_limit_requests_per_second",
			Help: "Current limit of Spotify requests a second (0: unlimited)."}, rate),
		ProcessSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "message_process_duration_seconds",
			Help: "Time from receiving a message to its outcome.", Buckets: prometheus.ExponentialBuckets(0.01, 2, 14)}, []string{"lane"}),
		StoreSaveSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: "store_save_duration_seconds",
			Help: "Time to write one artist's rows.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}),
		BreakerOpened: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "outage_breaker_opened_total",
			Help: "Times the outage breaker opened, by cause (spotify, store)."}, []string{"cause"}),
		BreakerClosed: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "outage_breaker_closed_total",
			Help: "Times the outage breaker closed after a successful probe, by cause."}, []string{"cause"}),
		Postponed: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "messages_postponed_total",
			Help: "Messages sent again with a delay during a pause that is not theirs (cooldown, penalty, refused, outage), without spending a delivery."}, []string{"lane", "reason"}),
		Refusals: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "spotify_refusals_total",
			Help: "Refusals that paused every Spotify call, by refusal: development_mode (top-tracks removed for the app), premium_lapsed (the owner's Premium lapsed), other (another 403), credentials (rejected credentials)."}, []string{"refusal"}),
	}
	for _, r := range []string{RefusalDevelopmentMode, RefusalPremiumLapsed, RefusalOther, RefusalCredentials} {
		m.Refusals.WithLabelValues(r)
	}
	for _, c := range []string{"spotify", "store"} {
		m.BreakerOpened.WithLabelValues(c)
		m.BreakerClosed.WithLabelValues(c)
	}
	reg.MustRegister(m.BreakerOpened, m.BreakerClosed, m.Postponed, m.Refusals)
	reg.MustRegister(m.Received, m.ReceiveCalls, m.DeleteCalls, m.EmptyReceives, m.Processed, m.Deleted, m.DeleteFailures, m.ReceiveErrors,
		m.InFlight, m.SpotifyRequests, m.SpotifyLatency, m.TokenRequests, m.Retries, m.Cooldowns,
		m.CooldownSeconds, m.RateLimit, m.ProcessSeconds, m.StoreSaveSeconds)
	return m
}

// ObserveSpotify records one Spotify response (status 0 when none came).
func (m *Metrics) ObserveSpotify(status int, elapsed time.Duration) {
	m.SpotifyRequests.WithLabelValues(strconv.Itoa(status)).Inc()
	m.SpotifyLatency.Observe(elapsed.Seconds())
}

// ObserveToken records one token request.
func (m *Metrics) ObserveToken(err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.TokenRequests.WithLabelValues(result).Inc()
}

// Label values known from the start, so that every series an alert reads
// exists at 0 before the first event.
var (
	outcomes     = []string{OutcomeOK, OutcomeFresh, OutcomeNotFound, OutcomeStale, OutcomePoison, OutcomeReleased}
	retryCauses  = []string{"rate_limited", "server", "transport"}
	tokenResults = []string{"ok", "error"}
)

// InitLanes creates every per-lane series at 0 for lanes, and the
// series of the known retry causes and token results.
func (m *Metrics) InitLanes(lanes ...string) {
	for _, l := range lanes {
		for _, c := range []*prometheus.CounterVec{m.Received, m.ReceiveCalls, m.DeleteCalls, m.EmptyReceives,
			m.Deleted, m.DeleteFailures, m.ReceiveErrors} {
			c.WithLabelValues(l)
		}
		m.InFlight.WithLabelValues(l)
		m.ProcessSeconds.WithLabelValues(l)
		for _, o := range outcomes {
			m.Processed.WithLabelValues(l, o)
		}
		for _, r := range []string{"cooldown", "penalty", "refused", "outage"} {
			m.Postponed.WithLabelValues(l, r)
		}
	}
	for _, c := range retryCauses {
		m.Retries.WithLabelValues(c)
	}
	for _, r := range tokenResults {
		m.TokenRequests.WithLabelValues(r)
	}
}

// RegisterBuildInfo registers sixpotify_build_info{version,goversion} 1.
func RegisterBuildInfo(reg prometheus.Registerer, version, goVersion string) {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "sixpotify", Name: "build_info",
		Help: "Always 1: the version of the binary and of Go that built it."}, []string{"version", "goversion"})
	g.WithLabelValues(version, goVersion).Set(1)
	reg.MustRegister(g)
}

// Totals are a worker's counts over its lanes, for its progress log lines:
// artists done, skipped (fresh or stale), not found, messages failed
// (released or poison), Spotify's 429s, and the rate now.
type Totals struct {
	Done, Skipped, NotFound, Failed, Throttled float64
	Rate                                       float64
}

// Totals reads the totals from m's own collectors.
func (m *Metrics) Totals() Totals {
	var t Totals
	eachValue(m.Processed, func(labels map[string]string, v float64) {
		switch labels["outcome"] {
		case OutcomeOK:
			t.Done += v
		case OutcomeFresh, OutcomeStale:
			t.Skipped += v
		case OutcomeNotFound:
			t.NotFound += v
		case OutcomePoison, OutcomeReleased:
			t.Failed += v
		}
	})
	eachValue(m.SpotifyRequests, func(labels map[string]string, v float64) {
		if labels["code"] == "429" {
			t.Throttled += v
		}
	})
	eachValue(m.RateLimit, func(_ map[string]string, v float64) { t.Rate = v })
	return t
}

// eachValue calls fn with the labels and value of each series c collects.
func eachValue(c prometheus.Collector, fn func(labels map[string]string, v float64)) {
	ch := make(chan prometheus.Metric)
	go func() { c.Collect(ch); close(ch) }()
	for m := range ch {
		var d dto.Metric
		if m.Write(&d) != nil {
			continue
		}
		labels := map[string]string{}
		for _, l := range d.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		switch {
		case d.Counter != nil:
			fn(labels, d.GetCounter().GetValue())
		case d.Gauge != nil:
			fn(labels, d.GetGauge().GetValue())
		}
	}
}
