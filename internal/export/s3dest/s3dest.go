// Package s3dest is the export's destination in S3 (s3://BUCKET/PREFIX).
//
// Objects are streamed: the Parquet writer's output goes through a pipe to
// the transfer manager, which sends it as one PutObject when it is small and
// as a multipart upload of PartSize parts otherwise, so that memory stays a
// few parts whatever the object's size. An object appears only when its
// upload completes; a failed or aborted one is aborted, leaving nothing.
package s3dest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/sixpotify/top-tracks/internal/backend"
	"github.com/sixpotify/top-tracks/internal/export"
)

// API is the part of *s3.Client the destination uses: what it calls, and
// what the transfer manager's client interface requires (it calls only the
// upload methods: PutObject and the multipart ones).
type API interface {
	PutObject(ctx context.Context, in *s3.PutObjectInput, optFns ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	CreateMultipartUpload(ctx context.Context, in *s3.CreateMultipartUploadInput, optFns ...func(*s3.Options)) (*s3.CreateMultipartUploadOutput, error)
	UploadPart(ctx context.Context, in *s3.UploadPartInput, optFns ...func(*s3.Options)) (*s3.UploadPartOutput, error)
	CompleteMultipartUpload(ctx context.Context, in *s3.CompleteMultipartUploadInput, optFns ...func(*s3.Options)) (*s3.CompleteMultipartUploadOutput, error)
	AbortMultipartUpload(ctx context.Context, in *s3.AbortMultipartUploadInput, optFns ...func(*s3.Options)) (*s3.AbortMultipartUploadOutput, error)
	GetObject(ctx context.Context, in *s3.GetObjectInput, optFns ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	HeadObject(ctx context.Context, in *s3.HeadObjectInput, optFns ...func(*s3.Options)) (*s3.HeadObjectOutput, error)
	ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, optFns ...func(*s3.Options)) (*s3.ListObjectsV2Output, error)
	CopyObject(ctx context.Context, in *s3.CopyObjectInput, optFns ...func(*s3.Options)) (*s3.CopyObjectOutput, error)
	DeleteObjects(ctx context.Context, in *s3.DeleteObjectsInput, optFns ...func(*s3.Options)) (*s3.DeleteObjectsOutput, error)
}

var _ API = (*s3.Client)(nil)

// PartSize is the multipart upload's part size (S3's least is 5 MiB), and
// also the size below which an object goes as one PutObject.
const PartSize = 8 << 20

// uploadConcurrency is how many parts of one object are in flight: the
// export writes one object at a time, so its memory is about
// (uploadConcurrency + 1) × PartSize.
const uploadConcurrency = 2

// Bucket is a lake under a prefix of an S3 bucket.
type Bucket struct {
	client   API
	tm       *transfermanager.Client
	bucket   string
	prefix   string // "" or ending in "/"
	endpoint string // for messages: where S3 was asked
}

// ParseURL reads s3://BUCKET[/PREFIX].
func ParseURL(u string) (bucket, prefix string, err error) {
	p, perr := url.Parse(u)
	if perr != nil || p.Scheme != "s3" || p.Host == "" || p.RawQuery != "" || p.Fragment != "" {
		return "", "", fmt.Errorf("%q is not s3://BUCKET/PREFIX", u)
	}
	return p.Host, strings.Trim(p.Path, "/"), nil
}

// NewBucket returns the lake at s3://bucket/prefix through client. endpoint names
// the S3 endpoint in error messages ("" for AWS's own).
func NewBucket(client API, bucket, prefix, endpoint string) *Bucket {
	if prefix != "" {
		prefix = strings.Trim(prefix, "/") + "/"
	}
	tm := transfermanager.New(client, func(o *transfermanager.Options) {
		o.PartSizeBytes = PartSize
		o.MultipartUploadThreshold = PartSize
		o.Concurrency = uploadConcurrency
	})
	return &Bucket{client: client, tm: tm, bucket: bucket, prefix: prefix, endpoint: endpoint}
}

// BucketFromConfig returns the lake at the URL s3://BUCKET/PREFIX with a client
// made from cfg. When an endpoint is configured (AWS_ENDPOINT_URL_S3 or
// AWS_ENDPOINT_URL: an emulator, MinIO), requests use path-style
// addressing, which such servers answer; AWS's own endpoints get the SDK's
// default, virtual-hosted addressing.
func BucketFromConfig(cfg aws.Config, u string) (*Bucket, error) {
	bucket, prefix, err := ParseURL(u)
	if err != nil {
		return nil, err
	}
	endpoint := os.Getenv("AWS_ENDPOINT_URL_S3")
	if endpoint == "" && cfg.BaseEndpoint != nil {
		endpoint = *cfg.BaseEndpoint
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		if endpoint != "" {
			o.UsePathStyle = true
		}
		if tp := backend.TracerProvider(); tp != nil {
			o.TracerProvider = tp
		}
	})
	return NewBucket(client, bucket, prefix, endpoint), nil
}

func (b *Bucket) String() string { return "s3://" + b.bucket + "/" + strings.TrimSuffix(b.prefix, "/") }

func (b *Bucket) key(name string) string { return b.prefix + name }

// Create streams the object's body to the transfer manager.
func (b *Bucket) Create(ctx context.Context, name string) (export.Object, error) {
	pr, pw := io.Pipe()
	o := &object{pw: pw, done: make(chan error, 1)}
	key := b.key(name)
	go func() {
		_, err := b.tm.UploadObject(ctx, &transfermanager.UploadObjectInput{
			Bucket: aws.String(b.bucket), Key: aws.String(key), Body: pr,
			ContentType: aws.String("application/vnd.apache.parquet"),
		})
		if err != nil {
			err = b.explain("upload "+key, err)
		}
		pr.CloseWithError(orAborted(err)) // a write after a failed upload fails at once
		o.done <- err
	}()
	return o, nil
}

func orAborted(err error) error {
	if err == nil {
		return errAborted
	}
	return err
}

var errAborted = errors.New("s3dest: object aborted")

type object struct {
	pw   *io.PipeWriter
	done chan error
}

func (o *object) Write(p []byte) (int, error) { return o.pw.Write(p) }

func (o *object) Commit() error {
	o.pw.Close()
	return <-o.done
}

// Abort ends the body with an error: the transfer manager aborts the
// multipart upload (or never sends the PutObject).
func (o *object) Abort() {
	o.pw.CloseWithError(errAborted)
	<-o.done
}

// List returns the names under prefix, every page of ListObjectsV2.
func (b *Bucket) List(ctx context.Context, prefix string) ([]string, error) {
	var names []string
	p := s3.NewListObjectsV2Paginator(b.client, &s3.ListObjectsV2Input{
		Bucket: aws.String(b.bucket), Prefix: aws.String(b.key(prefix)),
	})
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			return nil, b.explain("list "+b.key(prefix), err)
		}
		for _, o := range out.Contents {
			names = append(names, strings.TrimPrefix(aws.ToString(o.Key), b.prefix))
		}
	}
	return names, nil
}

// Promote copies from to to inside the bucket (server-side: the body does
// not travel through the export). CopyObject takes objects up to 5 GB, far
// above the export's parts.
func (b *Bucket) Promote(ctx context.Context, from, to string) error {
	_, err := b.client.CopyObject(ctx, &s3.CopyObjectInput{
		Bucket:     aws.String(b.bucket),
		Key:        aws.String(b.key(to)),
		CopySource: aws.String(url.PathEscape(b.bucket) + "/" + escapeKey(b.key(from))),
	})
	if err != nil {
		return b.explain("copy "+b.key(from)+" to "+b.key(to), err)
	}
	return nil
}

// escapeKey URL-encodes each segment of a key, keeping its slashes.
func escapeKey(k string) string {
	parts := strings.Split(k, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return strings.Join(parts, "/")
}

// Delete removes the objects, a thousand to a DeleteObjects call, and
// checks every entry of the answer.
func (b *Bucket) Delete(ctx context.Context, names []string) error {
	for len(names) > 0 {
		n := min(len(names), 1000)
		ids := make([]types.ObjectIdentifier, n)
		for i, name := range names[:n] {
			ids[i] = types.ObjectIdentifier{Key: aws.String(b.key(name))}
		}
		out, err := b.client.DeleteObjects(ctx, &s3.DeleteObjectsInput{
			Bucket: aws.String(b.bucket),
			Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)},
		})
		if err != nil {
			return b.explain("delete objects", err)
		}
		if len(out.Errors) > 0 {
			e := out.Errors[0]
			return fmt.Errorf("%s: delete %s: %s: %s (and %d more)", b, aws.ToString(e.Key), aws.ToString(e.Code), aws.ToString(e.Message), len(out.Errors)-1)
		}
		names = names[n:]
	}
	return nil
}

// explain turns an SDK error into one line that says what is wrong: the
// bucket does not exist, access is denied, or S3 did not answer. SDK
// errors carry no credentials, and neither does the line.
func (b *Bucket) explain(what string, err error) error {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		switch code := apiErr.ErrorCode(); code {
		case "NoSuchBucket":
			return &Error{Kind: NoBucket, Msg: fmt.Sprintf("s3://%s: the bucket does not exist (%s)", b.bucket, what), Err: err}
		case "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken", "AllAccessDisabled", "AccountProblem":
			return &Error{Kind: Denied, Msg: fmt.Sprintf("%s: access denied (%s: %s): check the credentials and that the role may %s", b, code, what, actionFor(what)), Err: err}
		default:
			return &Error{Kind: Other, Msg: fmt.Sprintf("%s: %s: %s: %s", b, what, code, apiErr.ErrorMessage()), Err: err}
		}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %s: %w", b, what, err)
	}
	where := b.endpoint
	if where == "" {
		where = "AWS"
	}
	return &Error{Kind: Unreachable, Msg: fmt.Sprintf("%s: S3 at %s did not answer (%s): %v", b, where, what, rootCause(err)), Err: err}
}

func actionFor(what string) string {
	switch {
	case strings.HasPrefix(what, "list"):
		return "s3:ListBucket on the bucket"
	case strings.HasPrefix(what, "delete"):
		return "s3:DeleteObject under the prefix"
	case strings.HasPrefix(what, "copy"):
		return "s3:GetObject and s3:PutObject under the prefix"
	}
	return "s3:PutObject under the prefix"
}

// rootCause is the innermost error: for a transport failure, the dial or
// read error rather than the SDK's layers of operation and retry context.
func rootCause(err error) error {
	var op *net.OpError
	if errors.As(err, &op) {
		return op
	}
	for {
		u := errors.Unwrap(err)
		if u == nil {
			return err
		}
		err = u
	}
}

// Kind classifies an Error.
type Kind int

const (
	Other Kind = iota
	NoBucket
	Denied
	Unreachable
)

// Error is a failure of S3 in one line.
type Error struct {
	Kind Kind
	Msg  string
	Err  error
}

func (e *Error) Error() string { return e.Msg }
func (e *Error) Unwrap() error { return e.Err }
