package producer

import (
	"context"

	"github.com/sixpotify/top-tracks/internal/backend/queues"
)

// Open returns a Producer for the queue named by queueURL: an SQS queue URL
// (the AWS SDK reads region and credentials as everywhere else) or
// sqlite:PATH[?queue=NAME] for the embedded queue. Close it when done.
func Open(ctx context.Context, queueURL string, opts Options) (*Producer, error) {
	q, closeQ, err := queues.Open(ctx, queueURL, queues.Options{})
	if err != nil {
		return nil, err
	}
	p := New(q, opts)
	p.close = closeQ
	return p, nil
}
