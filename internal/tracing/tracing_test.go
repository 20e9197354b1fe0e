package tracing

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

func TestATraceContextCrossesTheQueue(t *testing.T) {
	ctx := context.Background()
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1, 2, 3}, SpanID: trace.SpanID{4, 5, 6}, TraceFlags: trace.FlagsSampled,
	})
	sent := trace.ContextWithSpanContext(ctx, sc)

	// Before a program installs a propagator, nothing travels and nothing
	// is allocated for it.
	if got := Inject(sent, nil); got != nil {
		t.Errorf("Inject with the default propagator = %v, want nil", got)
	}

	prev := otel.GetTextMapPropagator()
	otel.SetTextMapPropagator(propagation.TraceContext{})
	t.Cleanup(func() { otel.SetTextMapPropagator(prev) })
	attrs := Inject(sent, map[string]string{"sixpotify-postponed": "2"})
	if attrs["traceparent"] == "" || attrs["sixpotify-postponed"] != "2" {
		t.Fatalf("Inject = %v, want a traceparent beside the attribute that was there", attrs)
	}
	got := trace.SpanContextFromContext(Extract(ctx, attrs))
	if got.TraceID() != sc.TraceID() || got.SpanID() != sc.SpanID() || !got.IsRemote() {
		t.Errorf("Extract = %v, want the remote span %v", got, sc)
	}
	if got := trace.SpanContextFromContext(Extract(ctx, nil)); got.IsValid() {
		t.Errorf("Extract of a message without attributes = %v, want no trace", got)
	}
}
