// The baseline: a port of the retired Lambda design, for the benchmarks only
// (see the package documentation in doc.go). It lives in a test file so that
// `go build ./...` builds only the product.

package bench_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/sixpotify/top-tracks/internal/ctxsleep"
	"github.com/sixpotify/top-tracks/internal/spotify"
	"github.com/sixpotify/top-tracks/internal/store"
	"github.com/sixpotify/top-tracks/internal/workercmd"
)

// SQSAPI is the part of *sqs.Client the baseline calls.
type SQSAPI interface {
	ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, optFns ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error)
	DeleteMessage(ctx context.Context, in *sqs.DeleteMessageInput, optFns ...func(*sqs.Options)) (*sqs.DeleteMessageOutput, error)
}

// DynamoDBAPI is the part of *dynamodb.Client the baseline calls.
type DynamoDBAPI interface {
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
}

// BaselineConfig configures a Baseline. SQS, QueueURL, DynamoDB, both tables,
// APIURL, TokenURL and ClientID are required; the rest may be left zero.
type BaselineConfig struct {
	SQS      SQSAPI
	QueueURL string

	DynamoDB     DynamoDBAPI
	TracksTable  string
	ArtistsTable string

	// APIURL is the base of the Web API (…/v1); TokenURL the token endpoint.
	APIURL, TokenURL       string
	ClientID, ClientSecret string
	// Market is used when a message names none (default "US").
	Market string
	// TLSClientConfig, if set, is the TLS configuration of each
	// invocation's fresh HTTP client, for a stand-in served over HTTPS (its
	// certificate pool). Nil: Go's defaults, the system's roots. It takes
	// no session cache, as Python's requests keeps none between calls, so
	// every connection does a full handshake.
	TLSClientConfig *tls.Config

	// Concurrency is the most invocations at once (default
	// workercmd.DefaultConcurrency, what the worker gets).
	Concurrency int
	// WaitTime is the ReceiveMessage wait, rounded to whole seconds, at most
	// 20 (default 0: a short poll).
	WaitTime time.Duration
	// Timeout bounds one invocation, as a Lambda function's timeout does
	// (default 30s).
	Timeout time.Duration
	// StopWhenIdle makes Run return once a receive comes back empty while no
	// invocation runs and no failed message awaits its redelivery.
	StopWhenIdle bool
}

// Validate reports every problem with the configuration at once.
func (c BaselineConfig) Validate() error {
	var errs []error
	if c.SQS == nil || c.QueueURL == "" {
		errs = append(errs, errors.New("bench: the SQS client and queue URL are required"))
	}
	if c.DynamoDB == nil || c.TracksTable == "" || c.ArtistsTable == "" {
		errs = append(errs, errors.New("bench: the DynamoDB client and both tables are required"))
	}
	if c.APIURL == "" || c.TokenURL == "" || c.ClientID == "" {
		errs = append(errs, errors.New("bench: the Spotify API URL, token URL and client ID are required"))
	}
	if c.Concurrency < 0 || c.WaitTime < 0 || c.Timeout < 0 {
		errs = append(errs, errors.New("bench: Concurrency, WaitTime and Timeout must not be negative"))
	}
	return errors.Join(errs...)
}

// BaselineStats counts what a Baseline did.
type BaselineStats struct {
	// Invocations counts handler runs, Failed those that returned an error
	// (their message stays on the queue), Deleted the messages deleted.
	Invocations, Failed, Deleted int64
}

// Baseline is the original design: see the package comment. Create one with
// NewBaseline; Run it once.
type Baseline struct {
	cfg BaselineConfig
	enc *attributevalue.Encoder

	invocations, failed, deleted atomic.Int64
}

// NewBaseline returns a Baseline for cfg.
func NewBaseline(cfg BaselineConfig) (*Baseline, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Market == "" {
		cfg.Market = "US"
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = workercmd.DefaultConcurrency
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	cfg.APIURL = strings.TrimRight(cfg.APIURL, "/")
	return &Baseline{
		cfg: cfg,
		enc: attributevalue.NewEncoder(func(o *attributevalue.EncoderOptions) { o.TagKey = "json" }),
	}, nil
}

// Stats returns a snapshot of the counters.
func (b *Baseline) Stats() BaselineStats {
	return BaselineStats{Invocations: b.invocations.Load(), Failed: b.failed.Load(), Deleted: b.deleted.Load()}
}

// Run is the SQS trigger: it polls the queue and runs invocations until ctx
// ends (or, with StopWhenIdle, until the queue is drained), then waits for
// the invocations still running. It returns ctx's error if ctx ended.
func (b *Baseline) Run(ctx context.Context) error {
	slots := make(chan struct{}, b.cfg.Concurrency)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		inFlight int
		failed   = map[string]bool{} // message IDs awaiting their redelivery
	)
	idle := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return inFlight == 0 && len(failed) == 0
	}
	for ctx.Err() == nil {
		n := acquire(ctx, slots, 10)
		if n == 0 {
			break
		}
		out, err := b.cfg.SQS.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl:            aws.String(b.cfg.QueueURL),
			MaxNumberOfMessages: int32(n),
			WaitTimeSeconds:     int32(min((b.cfg.WaitTime+time.Second/2)/time.Second, 20)),
		})
		var msgs []sqstypes.Message
		if err == nil {
			msgs = out.Messages
		}
		for range n - len(msgs) {
			<-slots
		}
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			// The event source mapping keeps polling after an error.
			if !ctxsleep.For(ctx, 100*time.Millisecond) {
				break
			}
			continue
		}
		if len(msgs) == 0 && b.cfg.StopWhenIdle && idle() {
			break
		}
		mu.Lock()
		inFlight += len(msgs)
		mu.Unlock()
		for _, m := range msgs {
			wg.Go(func() {
				defer func() { <-slots }()
				err := b.invoke(ctx, m)
				id := aws.ToString(m.MessageId)
				mu.Lock()
				inFlight--
				if err != nil {
					failed[id] = true
				} else {
					delete(failed, id)
				}
				mu.Unlock()
			})
		}
	}
	wg.Wait()
	return ctx.Err()
}

// invoke runs the handler on one message and, when it succeeds, deletes the
// message, as the event source mapping does.
func (b *Baseline) invoke(ctx context.Context, m sqstypes.Message) error {
	b.invocations.Add(1)
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	err := b.Handle(ctx, aws.ToString(m.Body))
	if err == nil {
		_, err = b.cfg.SQS.DeleteMessage(ctx, &sqs.DeleteMessageInput{
			QueueUrl:      aws.String(b.cfg.QueueURL),
			ReceiptHandle: m.ReceiptHandle,
		})
		if err == nil {
			b.deleted.Add(1)
		}
	}
	if err != nil {
		b.failed.Add(1)
	}
	return err
}

// Handle is the Lambda handler for one message body: token, top tracks, one
// PutItem per track, one PutItem for the artist.
func (b *Baseline) Handle(ctx context.Context, body string) error {
	var event struct {
		ArtistID string `json:"artist_id"`
		Market   string `json:"market"`
	}
	if err := json.Unmarshal([]byte(body), &event); err != nil {
		return fmt.Errorf("bench: decode the message: %w", err)
	}
	market := event.Market
	if market == "" {
		market = b.cfg.Market
	}

	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true, TLSClientConfig: b.cfg.TLSClientConfig}}
	defer hc.CloseIdleConnections()
	token, err := b.token(ctx, hc)
	if err != nil {
		return err
	}
	tracks, err := b.topTracks(ctx, hc, token, event.ArtistID, market)
	if err != nil {
		return err
	}

	fetched := time.Now().UTC().Format(store.TimeFormat)
	for i, t := range tracks {
		item, err := b.marshal(trackRow{ArtistID: event.ArtistID, Rank: i + 1, Market: market, FetchedAt: fetched, Track: t})
		if err != nil {
			return err
		}
		if _, err := b.cfg.DynamoDB.PutItem(ctx, &dynamodb.PutItemInput{TableName: &b.cfg.TracksTable, Item: item}); err != nil {
			return fmt.Errorf("bench: put track %s of %s: %w", t.ID, event.ArtistID, err)
		}
	}
	item, err := b.marshal(artistRow{
		ArtistID: event.ArtistID, FetchedAt: fetched, Market: market,
		Status: string(store.StatusOK), TrackCount: len(tracks),
	})
	if err != nil {
		return err
	}
	if _, err := b.cfg.DynamoDB.PutItem(ctx, &dynamodb.PutItemInput{TableName: &b.cfg.ArtistsTable, Item: item}); err != nil {
		return fmt.Errorf("bench: put artist %s: %w", event.ArtistID, err)
	}
	return nil
}

// token asks the token endpoint for a new client-credentials token.
func (b *Baseline) token(ctx context.Context, hc *http.Client) (string, error) {
	form := url.Values{"grant_type": {"client_credentials"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.cfg.TokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return "", fmt.Errorf("bench: token request: %w", err)
	}
	req.SetBasicAuth(url.QueryEscape(b.cfg.ClientID), url.QueryEscape(b.cfg.ClientSecret))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	body, err := do(hc, req)
	if err != nil {
		return "", fmt.Errorf("bench: token: %w", err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(body, &tok); err != nil || tok.AccessToken == "" {
		return "", errors.New("bench: token: no access_token in the answer")
	}
	return tok.AccessToken, nil
}

// topTracks GETs the artist's top tracks once.
func (b *Baseline) topTracks(ctx context.Context, hc *http.Client, token, artistID, market string) ([]spotify.Track, error) {
	u := b.cfg.APIURL + "/artists/" + url.PathEscape(artistID) + "/top-tracks?market=" + url.QueryEscape(market)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("bench: top tracks of %s: %w", artistID, err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	body, err := do(hc, req)
	if err != nil {
		return nil, fmt.Errorf("bench: top tracks of %s: %w", artistID, err)
	}
	// The contract's isrc is external_ids.isrc, flattened.
	var v struct {
		Tracks []struct {
			spotify.Track
			ExternalIDs struct {
				ISRC *string `json:"isrc"`
			} `json:"external_ids"`
		} `json:"tracks"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return nil, fmt.Errorf("bench: top tracks of %s: %w", artistID, err)
	}
	tracks := make([]spotify.Track, len(v.Tracks))
	for i, t := range v.Tracks {
		tracks[i] = t.Track
		tracks[i].ISRC = t.ExternalIDs.ISRC
	}
	return tracks, nil
}

// do sends req and returns the body of a 200 answer; any other status is an
// error (Python's raise_for_status).
func do(hc *http.Client, req *http.Request) ([]byte, error) {
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return body, nil
}

// trackRow and artistRow are the rows of the contract's Tables section, with
// the attribute names dynamostore writes.
type trackRow struct {
	ArtistID  string `json:"artist_id"`
	Rank      int    `json:"rank"`
	Market    string `json:"market"`
	FetchedAt string `json:"fetched_at"`
	spotify.Track
}

type artistRow struct {
	ArtistID   string `json:"artist_id"`
	FetchedAt  string `json:"fetched_at"`
	Market     string `json:"market"`
	Status     string `json:"status"`
	TrackCount int    `json:"track_count"`
}

func (b *Baseline) marshal(v any) (map[string]types.AttributeValue, error) {
	av, err := b.enc.Encode(v)
	if err != nil {
		return nil, fmt.Errorf("bench: marshal %T: %w", v, err)
	}
	m, ok := av.(*types.AttributeValueMemberM)
	if !ok {
		return nil, fmt.Errorf("bench: marshal %T: not a map", v)
	}
	return m.Value, nil
}

// acquire takes between 1 and want slots, blocking for the first; it returns
// 0 when ctx ends.
func acquire(ctx context.Context, slots chan struct{}, want int) int {
	select {
	case slots <- struct{}{}:
	case <-ctx.Done():
		return 0
	}
	n := 1
	for n < want {
		select {
		case slots <- struct{}{}:
			n++
		default:
			return n
		}
	}
	return n
}
