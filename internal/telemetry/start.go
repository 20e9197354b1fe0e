package telemetry

import (
	"context"
	"log/slog"
	"time"

	"github.com/aws/smithy-go/tracing/smithyoteltracing"
	"go.opentelemetry.io/otel"

	"github.com/sixpotify/top-tracks/internal/backend"
	"github.com/sixpotify/top-tracks/internal/tracing"
)

// ShutdownTimeout bounds the flush of the last spans at exit.
const ShutdownTimeout = 3 * time.Second

// Start is Setup for a command: when traces are exported, every AWS client
// it opens afterwards traces its calls too (its SQS, DynamoDB and S3 calls
// are spans, by the SDK's own tracing adapted to OpenTelemetry). The returned stop flushes the last spans, logging, never failing
// on, an exporter that does not answer.
func Start(ctx context.Context, service string) (stop func(*slog.Logger), err error) {
	shutdown, err := Setup(ctx, service)
	if err != nil {
		return nil, err
	}
	if tracing.Enabled() {
		backend.SetTracerProvider(smithyoteltracing.Adapt(otel.GetTracerProvider()))
	}
	return func(log *slog.Logger) {
		ctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
		defer cancel()
		if err := shutdown(ctx); err != nil && log != nil {
			log.Warn("could not flush the last traces", "err", err)
		}
	}, nil
}
