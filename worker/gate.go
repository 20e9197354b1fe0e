package worker

import (
	"github.com/sixpotify/top-tracks/internal/gate"
	"github.com/sixpotify/top-tracks/internal/metrics"
)

// The gate, for a module that embeds the worker with backends of its own.
// Its Fetcher waits on the same Gate the worker is given (Options.Gate):
// Wait before each Spotify call, and done with how the call went, once. The
// worker asks the gate before it receives, and settles a delivery whose
// calls met a pause without spending one of its deliveries. See
// internal/gate for what each part decides.
type (
	// Gate decides whether this process may call Spotify now.
	Gate = gate.Gate
	// GateOptions configure a Gate.
	GateOptions = gate.Options
	// Outcome is how one call the Gate let through went.
	Outcome = gate.Outcome
	// Fault is what an Outcome says of the app's standing with Spotify.
	Fault = gate.Fault
	// PausedError is a pause that met a call: why, and until when.
	PausedError = gate.PausedError
	// Metrics are the worker's Prometheus metrics (Options.Metrics).
	Metrics = metrics.Metrics
)

// The Faults an Outcome reports.
const (
	Answered     = gate.Answered
	RateLimited  = gate.RateLimited
	Forbidden    = gate.Forbidden
	Unauthorized = gate.Unauthorized
	Failed       = gate.Failed
	Abandoned    = gate.Abandoned
	Unsent       = gate.Unsent
)

// NewGate returns a Gate for opts: hand the same one to the worker
// (Options.Gate) and to the Fetcher that calls Spotify.
func NewGate(opts GateOptions) *Gate { return gate.New(opts) }
