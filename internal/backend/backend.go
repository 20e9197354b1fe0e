// Package backend opens the queue and store named by the contract's URLs:
// an SQS queue URL (https://… or http://…) or sqlite:PATH[?queue=NAME] for
// the queue, and dynamodb:TABLE or sqlite:PATH for the store.
package backend

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/sixpotify/top-tracks/internal/queue"
	"github.com/sixpotify/top-tracks/internal/queue/sqlitequeue"
	"github.com/sixpotify/top-tracks/internal/queue/sqsqueue"
	"github.com/sixpotify/top-tracks/internal/store"
	"github.com/sixpotify/top-tracks/internal/store/dynamostore"
	"github.com/sixpotify/top-tracks/internal/store/sqlitestore"
)

// Queue is everything the commands use of a queue backend.
type Queue interface {
	Receive(ctx context.Context, max int, wait time.Duration) ([]queue.Message, error)
	DeleteBatch(ctx context.Context, receipts []string) ([]error, error)
	ChangeVisibility(ctx context.Context, receipt string, timeout time.Duration) error
	SendBatch(ctx context.Context, entries []queue.Entry) ([]error, error)
	Attributes(ctx context.Context) (queue.Attributes, error)
}

// Store is everything the commands use of a store backend.
type Store interface {
	Save(ctx context.Context, r store.Result) error
	Artist(ctx context.Context, id string) (store.Artist, bool, error)
	Tracks(ctx context.Context, id string) ([]store.Row, error)
	ScanArtists(ctx context.Context, fn func(store.Artist) error) error
	ScanTracks(ctx context.Context, fn func(store.Row) error) error
}

// QueueOptions tune the embedded queue (SQS takes its settings from the queue).
type QueueOptions struct {
	VisibilityTimeout time.Duration
}

// IsSQLite reports whether u names the embedded backend.
func IsSQLite(u string) bool { return strings.HasPrefix(u, "sqlite:") }

// ValidateQueueURL checks the form of a queue URL without opening it.
func ValidateQueueURL(u string) error {
	switch {
	case IsSQLite(u):
		_, _, err := sqlitequeue.ParseURL(u)
		return err
	case strings.HasPrefix(u, "https://") || strings.HasPrefix(u, "http://"):
		p, err := url.Parse(u)
		if err != nil || p.Host == "" || strings.Trim(p.Path, "/") == "" {
			return fmt.Errorf("%q is not an SQS queue URL (https://sqs.REGION.amazonaws.com/ACCOUNT/NAME)", u)
		}
		return nil
	}
	return fmt.Errorf("%q is neither an SQS queue URL (https://…) nor sqlite:PATH", u)
}

// ValidateStoreURL checks the form of a store URL without opening it.
func ValidateStoreURL(u string) error {
	switch {
	case IsSQLite(u):
		_, err := sqlitestore.ParseURL(u)
		return err
	case strings.HasPrefix(u, "dynamodb:"):
		if t := strings.TrimPrefix(u, "dynamodb:"); !validTableName(t) {
			return fmt.Errorf("%q: a DynamoDB table name is 3 to 255 of [A-Za-z0-9_.-]", u)
		}
		return nil
	}
	return fmt.Errorf("%q is neither dynamodb:TABLE nor sqlite:PATH", u)
}

func validTableName(t string) bool {
	if len(t) < 3 || len(t) > 255 {
		return false
	}
	for _, c := range t {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// OpenQueue opens the queue named by u. The returned func closes it.
func OpenQueue(ctx context.Context, u string, opts QueueOptions) (Queue, func() error, error) {
	if err := ValidateQueueURL(u); err != nil {
		return nil, nil, err
	}
	if IsSQLite(u) {
		path, name, _ := sqlitequeue.ParseURL(u)
		q, err := sqlitequeue.Open(ctx, path, name, sqlitequeue.Options{VisibilityTimeout: opts.VisibilityTimeout})
		if err != nil {
			return nil, nil, err
		}
		return q, q.Close, nil
	}
	cfg, err := AWSConfig(ctx, regionFromQueueURL(u))
	if err != nil {
		return nil, nil, err
	}
	var optFns []func(*sqs.Options)
	if ep := queueEndpoint(u, cfg.BaseEndpoint != nil || os.Getenv("AWS_ENDPOINT_URL_SQS") != ""); ep != "" {
		optFns = append(optFns, func(o *sqs.Options) { o.BaseEndpoint = aws.String(ep) })
	}
	return sqsqueue.New(sqs.NewFromConfig(cfg, optFns...), u, sqsqueue.Options{}), func() error { return nil }, nil
}

// queueEndpoint returns the endpoint an SQS queue URL on a host other than
// AWS's names (a local emulator, a proxy), as sqs-consumer's
// useQueueUrlAsEndpoint does, or "" for AWS's own hosts and when an
// endpoint is configured (AWS_ENDPOINT_URL_SQS, AWS_ENDPOINT_URL or the
// shared config's endpoint_url), which then wins.
func queueEndpoint(u string, configured bool) string {
	p, err := url.Parse(u)
	if err != nil || configured {
		return ""
	}
	h := p.Hostname()
	if strings.HasSuffix(h, ".amazonaws.com") || strings.HasSuffix(h, ".amazonaws.com.cn") || strings.HasSuffix(h, ".api.aws") {
		return ""
	}
	return p.Scheme + "://" + p.Host
}

// OpenStore opens the store named by u, with artistsTable beside the tracks
// table. The returned func closes it.
func OpenStore(ctx context.Context, u, artistsTable string) (Store, func() error, error) {
	if err := ValidateStoreURL(u); err != nil {
		return nil, nil, err
	}
	if IsSQLite(u) {
		path, _ := sqlitestore.ParseURL(u)
		s, err := sqlitestore.Open(ctx, path)
		if err != nil {
			return nil, nil, err
		}
		return s, s.Close, nil
	}
	cfg, err := AWSConfig(ctx, "")
	if err != nil {
		return nil, nil, err
	}
	table := strings.TrimPrefix(u, "dynamodb:")
	return dynamostore.New(dynamodb.NewFromConfig(cfg), table, artistsTable), func() error { return nil }, nil
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

// regionFromQueueURL reads the region in https://sqs.REGION.amazonaws.com/….
func regionFromQueueURL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return ""
	}
	parts := strings.Split(p.Hostname(), ".")
	if len(parts) >= 4 && parts[0] == "sqs" && parts[2] == "amazonaws" {
		return parts[1]
	}
	return ""
}

// StoreExists checks that the store u names can be read: an embedded store
// must be a file that exists (reading a typo must not create an empty one).
// DynamoDB tables are checked when first read.
func StoreExists(u string) error {
	if !IsSQLite(u) {
		return nil
	}
	path, err := sqlitestore.ParseURL(u)
	if err != nil {
		return err
	}
	if _, err := os.Stat(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%s does not exist (the worker creates it on its first run)", path)
		}
		return err
	}
	return nil
}
