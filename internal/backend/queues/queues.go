// Package queues opens the queue a URL names: an SQS queue URL (https://…
// or http://…) or sqlite:PATH[?queue=NAME] for the embedded queue. It
// imports no store backend.
package queues

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/sixpotify/top-tracks/internal/backend"
	"github.com/sixpotify/top-tracks/internal/queue"
	"github.com/sixpotify/top-tracks/internal/queue/sqlitequeue"
	"github.com/sixpotify/top-tracks/internal/queue/sqsqueue"
)

// Options tune the embedded queue (SQS takes its settings from the queue).
type Options struct {
	VisibilityTimeout time.Duration
}

// ValidateURL checks the form of a queue URL without opening it.
func ValidateURL(u string) error {
	switch {
	case backend.IsSQLite(u):
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

// Open opens the queue named by u. The returned func closes it.
func Open(ctx context.Context, u string, opts Options) (queue.Queue, func() error, error) {
	if err := ValidateURL(u); err != nil {
		return nil, nil, err
	}
	if backend.IsSQLite(u) {
		path, name, _ := sqlitequeue.ParseURL(u)
		q, err := sqlitequeue.Open(ctx, path, name, sqlitequeue.Options{VisibilityTimeout: opts.VisibilityTimeout})
		if err != nil {
			return nil, nil, err
		}
		return q, q.Close, nil
	}
	cfg, err := backend.AWSConfig(ctx, regionFromURL(u))
	if err != nil {
		return nil, nil, err
	}
	var optFns []func(*sqs.Options)
	if tp := backend.TracerProvider(); tp != nil {
		optFns = append(optFns, func(o *sqs.Options) { o.TracerProvider = tp })
	}
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

// regionFromURL reads the region in https://sqs.REGION.amazonaws.com/….
func regionFromURL(u string) string {
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
