// Package tracing carries a trace context across the queue in message
// attributes, and says whether the process exports traces. It uses
// OpenTelemetry's API only, so that the producer (and a chatbot that imports
// it) pulls in no SDK: internal/telemetry installs one when the environment
// asks for traces, and until then the global tracer provider and propagator
// are OpenTelemetry's no-ops and nothing here costs.
package tracing

import (
	"context"
	"sync/atomic"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
)

var enabled atomic.Bool

// Enabled reports whether the process exports traces (telemetry.Setup
// installed a provider): then the commands wrap their HTTP and AWS clients
// in instrumentation.
func Enabled() bool { return enabled.Load() }

// SetEnabled records whether the process exports traces; telemetry.Setup
// calls it.
func SetEnabled(on bool) { enabled.Store(on) }

// Inject writes ctx's trace context into attrs (message attributes), adding
// to what is there; attrs may be nil. Without an active trace it returns
// attrs unchanged.
func Inject(ctx context.Context, attrs map[string]string) map[string]string {
	carrier := propagation.MapCarrier{}
	otel.GetTextMapPropagator().Inject(ctx, carrier)
	if len(carrier) == 0 {
		return attrs
	}
	if attrs == nil {
		attrs = make(map[string]string, len(carrier))
	}
	for k, v := range carrier {
		attrs[k] = v
	}
	return attrs
}

// Extract returns ctx continuing the trace that attrs (a delivery's message
// attributes) carry, or ctx unchanged when they carry none.
func Extract(ctx context.Context, attrs map[string]string) context.Context {
	if len(attrs) == 0 {
		return ctx
	}
	return otel.GetTextMapPropagator().Extract(ctx, propagation.MapCarrier(attrs))
}
