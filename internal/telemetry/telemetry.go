// Package telemetry installs OpenTelemetry's SDK for the commands when the
// environment asks for traces: OTEL_EXPORTER_OTLP_ENDPOINT or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, the rest of OTEL_* read by the OTLP
// exporter and the SDK themselves. Otherwise it installs nothing.
package telemetry

import (
	"context"
	"fmt"
	"os"
	"strings"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	sdkresource "go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"

	"github.com/sixpotify/top-tracks/internal/tracing"
)

// Wanted reports whether the environment asks for traces: an OTLP endpoint
// is set, and neither OTEL_SDK_DISABLED=true nor OTEL_TRACES_EXPORTER=none
// says otherwise.
func Wanted(getenv func(string) string) bool {
	if strings.EqualFold(getenv("OTEL_SDK_DISABLED"), "true") || strings.EqualFold(getenv("OTEL_TRACES_EXPORTER"), "none") {
		return false
	}
	return getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

// Setup installs, when the environment asks for traces, a tracer provider
// exporting over OTLP/HTTP in batches, for a service named service unless
// OTEL_SERVICE_NAME names it, and the W3C trace-context propagator. The
// returned shutdown flushes what is buffered; it does nothing when nothing
// was installed.
func Setup(ctx context.Context, service string) (shutdown func(context.Context) error, err error) {
	if !Wanted(os.Getenv) {
		return func(context.Context) error { return nil }, nil
	}
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_ENDPOINT: %w", err)
	}
	// The environment's attributes (OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES)
	// win over the default name.
	res, err := sdkresource.Merge(sdkresource.Default(), sdkresource.NewSchemaless(semconv.ServiceName(service)))
	if err == nil {
		var env *sdkresource.Resource
		if env, err = sdkresource.New(ctx, sdkresource.WithFromEnv()); err == nil {
			res, err = sdkresource.Merge(res, env)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("OTEL_RESOURCE_ATTRIBUTES: %w", err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.TraceContext{})
	tracing.SetEnabled(true)
	return func(ctx context.Context) error {
		tracing.SetEnabled(false)
		return tp.Shutdown(ctx)
	}, nil
}
