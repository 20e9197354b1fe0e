// Package backend holds what the openers of both ports share: the form of
// the embedded backend's URLs (sqlite:…) and the AWS SDK's configuration.
// The openers themselves are split by port, so that an importer of one pulls
// in no SDK of the other: queues opens a queue URL (SQS or the embedded
// queue) and stores a store URL (DynamoDB or the embedded store). The
// producer, and a chatbot that imports it, depends on queues only.
package backend

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/smithy-go/tracing"
)

// EmbeddedURL is the queue and the store both commands use when QUEUE_URL
// or STORE_URL is unset: one SQLite file in the working directory.
const EmbeddedURL = "sqlite:sixpotify.db"

// DefaultArtistsTable is the DynamoDB artists table when ARTISTS_TABLE is
// unset (the embedded store's is always artists).
const DefaultArtistsTable = "artists"

// IsSQLite reports whether u names the embedded backend.
func IsSQLite(u string) bool { return strings.HasPrefix(u, "sqlite:") }

var tracerProvider atomic.Pointer[tracing.TracerProvider]

// SetTracerProvider makes every AWS client opened afterwards trace its calls
// to tp: the SDK's own tracing, which a command that exports traces adapts
// to OpenTelemetry, so that neither this package nor the producer's (a
// chatbot imports it) depends on OpenTelemetry's SDK.
func SetTracerProvider(tp tracing.TracerProvider) { tracerProvider.Store(&tp) }

// TracerProvider returns what SetTracerProvider set, or nil: the client's
// default, no tracing.
func TracerProvider() tracing.TracerProvider {
	if p := tracerProvider.Load(); p != nil {
		return *p
	}
	return nil
}

// AWSConfig loads the SDK's configuration the usual way (environment, shared
// files, the ECS task role), with region as a fallback when none is set.
func AWSConfig(ctx context.Context, region string) (aws.Config, error) {
	// The SDK's default client keeps 10 idle connections per host; a worker
	// with 64 artists in flight would open (and, over TLS, handshake) a new
	// one for most DynamoDB calls.
	httpClient := awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
		tr.MaxIdleConns = 256
		tr.MaxIdleConnsPerHost = 128
	})
	cfg, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithHTTPClient(httpClient))
	if err != nil {
		return aws.Config{}, fmt.Errorf("load AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = region
	}
	if cfg.Region == "" {
		return aws.Config{}, errors.New("AWS_REGION: is required for SQS, DynamoDB and S3")
	}
	return cfg, nil
}
