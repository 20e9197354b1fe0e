package export_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/google/go-cmp/cmp"
	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"

	"github.com/sixpotify/top-tracks/internal/export"
	"github.com/sixpotify/top-tracks/internal/export/filedest"
	"github.com/sixpotify/top-tracks/internal/export/s3dest"
	"github.com/sixpotify/top-tracks/internal/store"
	"github.com/sixpotify/top-tracks/internal/store/dynamostore"
	"github.com/sixpotify/top-tracks/internal/store/sqlitestore"
	"github.com/sixpotify/top-tracks/internal/store/storetest"
	"github.com/sixpotify/top-tracks/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const date = "2026-03-14"

var t0 = time.Date(2026, 3, 14, 9, 26, 53, 589_000_000, time.UTC)

// backend is a store under test.
type backend interface {
	export.Source
	Save(ctx context.Context, r store.Result) error
}

func newSQLite(t *testing.T) backend {
	s, err := sqlitestore.Open(testenv.Context(t), filepath.Join(t.TempDir(), "store.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

var tableSeq atomic.Int64

func newDynamo(t *testing.T) backend {
	c := testenv.DynamoDBClient(t)
	n := tableSeq.Add(1)
	tracks, artists := fmt.Sprintf("x%03d_top_tracks", n), fmt.Sprintf("x%03d_artists", n)
	s := dynamostore.New(c, tracks, artists)
	if err := s.CreateTables(testenv.Context(t)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, name := range []string{tracks, artists} {
			_, _ = c.DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: aws.String(name)})
		}
	})
	return s
}

// lake is a destination under test, with a way to read it back that does
// not go through the destination.
type lake struct {
	dst  export.Destination
	read func(t *testing.T, name string) []byte
	list func(t *testing.T, prefix string) []string
}

func fileLake(t *testing.T) lake {
	dir := t.TempDir()
	return lake{
		dst: filedest.New(dir),
		read: func(t *testing.T, name string) []byte {
			b, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			return b
		},
		list: func(t *testing.T, prefix string) []string {
			var names []string
			_ = filepath.WalkDir(filepath.Join(dir, prefix), func(p string, e os.DirEntry, err error) error {
				if err == nil && !e.IsDir() {
					rel, _ := filepath.Rel(dir, p)
					names = append(names, filepath.ToSlash(rel))
				}
				return nil
			})
			return names
		},
	}
}

var prefixSeq atomic.Int64

func s3Client(endpoint string, cfg aws.Config) *s3.Client {
	return s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.BaseEndpoint = aws.String(endpoint)
		o.UsePathStyle = true
	})
}

// s3Lake is a fresh prefix of the emulator's bucket, written through
// endpoint (the emulator's, or a proxy's) and read back directly.
func s3Lake(t *testing.T, endpoint string) (lake, string) {
	direct := s3Client(testenv.S3Endpoint(t), testenv.S3Config())
	if endpoint == "" {
		endpoint = testenv.S3Endpoint(t)
	}
	prefix := fmt.Sprintf("lake/%s-%d", strings.ReplaceAll(t.Name(), "/", "_"), prefixSeq.Add(1))
	return s3LakeAt(t, direct, endpoint, prefix), prefix
}

func s3LakeAt(t *testing.T, direct *s3.Client, endpoint, prefix string) lake {
	return lake{
		dst: s3dest.NewBucket(s3Client(endpoint, testenv.S3Config()), testenv.Bucket, prefix, endpoint),
		read: func(t *testing.T, name string) []byte {
			out, err := direct.GetObject(testenv.Context(t), &s3.GetObjectInput{Bucket: aws.String(testenv.Bucket), Key: aws.String(prefix + "/" + name)})
			if err != nil {
				t.Fatalf("get %s: %v", name, err)
			}
			defer out.Body.Close()
			b, err := io.ReadAll(out.Body)
			if err != nil {
				t.Fatal(err)
			}
			return b
		},
		list: func(t *testing.T, p string) []string {
			out, err := direct.ListObjectsV2(testenv.Context(t), &s3.ListObjectsV2Input{Bucket: aws.String(testenv.Bucket), Prefix: aws.String(prefix + "/" + p)})
			if err != nil {
				t.Fatalf("list %s: %v", p, err)
			}
			var names []string
			for _, o := range out.Contents {
				names = append(names, strings.TrimPrefix(*o.Key, prefix+"/"))
			}
			return names
		},
	}
}

// seed saves n artists with tracks (some with none, one not found) and
// returns what was saved.
func seed(t *testing.T, s backend, tag string, n int, at time.Time) []store.Result {
	return seedFrom(t, s, tag, n, at, 0)
}

// seedFrom is seed with each artist's tracks shifted by from: a refetch with
// from > 0 changes every list, so that every track row is rewritten (an
// unchanged answer only moves the artists row's fetched_at).
func seedFrom(t *testing.T, s backend, tag string, n int, at time.Time, from int) []store.Result {
	t.Helper()
	ctx := testenv.Context(t)
	var rs []store.Result
	for i := range n {
		a := storetest.ID(fmt.Sprintf("export/%s/%d", tag, i))
		r := store.Result{ArtistID: a, Market: []string{"US", "GB", "DE"}[i%3], Status: store.StatusOK,
			FetchedAt: at.Add(time.Duration(i) * time.Millisecond), Tracks: storetest.Tracks(a, i+from, 10)}
		if i%9 == 4 {
			r.Tracks = nil
		}
		if i%13 == 7 {
			r.Status, r.Tracks = store.StatusNotFound, nil
		}
		if err := s.Save(ctx, r); err != nil {
			t.Fatal(err)
		}
		rs = append(rs, r)
	}
	return rs
}

// wantTracks is what the top_tracks partition must hold for results, written
// out column by column from the Spotify objects (not through the package's
// own conversion).
func wantTracks(rs []store.Result) []export.TrackRecord {
	var out []export.TrackRecord
	for _, r := range rs {
		for i, tr := range r.Tracks {
			rec := export.TrackRecord{
				ArtistID: r.ArtistID, TrackID: tr.ID, Rank: int32(i + 1), Name: tr.Name,
				DurationMS: int32(tr.DurationMS), Explicit: tr.Explicit,
				URI: tr.URI, TrackNumber: int32(tr.TrackNumber), PreviewURL: tr.PreviewURL, ISRC: tr.ISRC,
				AlbumID: tr.Album.ID, AlbumName: tr.Album.Name, AlbumReleaseDate: tr.Album.ReleaseDate,
				ArtistIDs: []string{}, ArtistNames: []string{},
				Market: r.Market, FetchedAt: r.FetchedAt,
			}
			if tr.Popularity != nil {
				p := int32(*tr.Popularity)
				rec.Popularity = &p
			}
			for _, a := range tr.Artists {
				rec.ArtistIDs = append(rec.ArtistIDs, a.ID)
				rec.ArtistNames = append(rec.ArtistNames, a.Name)
			}
			out = append(out, rec)
		}
	}
	sortTracks(out)
	return out
}

func wantArtists(rs []store.Result) []export.ArtistRecord {
	var out []export.ArtistRecord
	for _, r := range rs {
		out = append(out, export.ArtistRecord{ArtistID: r.ArtistID, Market: r.Market, Status: string(r.Status),
			TrackCount: int32(len(r.Tracks)), FetchedAt: r.FetchedAt})
	}
	slices.SortFunc(out, func(a, b export.ArtistRecord) int { return strings.Compare(a.ArtistID, b.ArtistID) })
	return out
}

func sortTracks(rs []export.TrackRecord) {
	slices.SortFunc(rs, func(a, b export.TrackRecord) int {
		if c := strings.Compare(a.ArtistID, b.ArtistID); c != 0 {
			return c
		}
		return int(a.Rank - b.Rank)
	})
}

// readPartition reads every part of a dataset's partition with the Parquet
// library, checking each is zstd-compressed Parquet of the package's schema.
func readPartition[T any](t *testing.T, l lake, dataset string) (rows []T, parts []string) {
	t.Helper()
	prefix := export.PartitionPrefix(dataset, date)
	for _, name := range l.list(t, prefix) {
		parts = append(parts, strings.TrimPrefix(name, prefix))
		b := l.read(t, name)
		f, err := parquet.OpenFile(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got, want := f.Schema().String(), export.Schema(dataset).String(); got != want {
			t.Errorf("%s: schema\n%s\nwant\n%s", name, got, want)
		}
		for _, rg := range f.Metadata().RowGroups {
			for _, cc := range rg.Columns {
				if codec := cc.MetaData.Codec; codec != format.Zstd {
					t.Errorf("%s: column %v compressed with %v, want zstd", name, cc.MetaData.PathInSchema, codec)
				}
			}
		}
		got, err := parquet.Read[T](bytes.NewReader(b), int64(len(b)))
		if err != nil {
			t.Fatalf("read %s: %v", name, err)
		}
		rows = append(rows, got...)
	}
	return rows, parts
}

// checkPartitions compares both partitions with results, every row and
// column, and returns the part names of top_tracks.
func checkPartitions(t *testing.T, l lake, rs []store.Result) []string {
	t.Helper()
	tracks, parts := readPartition[export.TrackRecord](t, l, export.TopTracks)
	sortTracks(tracks)
	for i := range tracks { // a list read back empty is [] or nil: compare as []
		if tracks[i].ArtistIDs == nil {
			tracks[i].ArtistIDs = []string{}
		}
		if tracks[i].ArtistNames == nil {
			tracks[i].ArtistNames = []string{}
		}
		tracks[i].FetchedAt = tracks[i].FetchedAt.UTC()
	}
	if diff := cmp.Diff(tracks, wantTracks(rs)); diff != "" {
		t.Errorf("top_tracks partition (-got +want):\n%s", diff)
	}
	artists, _ := readPartition[export.ArtistRecord](t, l, export.Artists)
	for i := range artists {
		artists[i].FetchedAt = artists[i].FetchedAt.UTC()
	}
	slices.SortFunc(artists, func(a, b export.ArtistRecord) int { return strings.Compare(a.ArtistID, b.ArtistID) })
	if diff := cmp.Diff(artists, wantArtists(rs)); diff != "" {
		t.Errorf("artists partition (-got +want):\n%s", diff)
	}
	return parts
}

// checkPublished is checkPartitions after a run that succeeded: nothing is
// left in the staging area either.
func checkPublished(t *testing.T, l lake, rs []store.Result) []string {
	t.Helper()
	parts := checkPartitions(t, l, rs)
	if staged := l.list(t, "_staging/"); len(staged) > 0 {
		t.Errorf("staging left behind: %v", staged)
	}
	return parts
}

func run(t *testing.T, src export.Source, dst export.Destination, opts export.Options) (export.Summary, error) {
	t.Helper()
	opts.Date = date
	e, err := export.New(src, dst, opts)
	if err != nil {
		t.Fatal(err)
	}
	return e.Run(testenv.Context(t))
}

// bothLakes makes a fresh lake of each destination.
var bothLakes = map[string]func(*testing.T) lake{
	"file": fileLake,
	"s3":   func(t *testing.T) lake { l, _ := s3Lake(t, ""); return l },
}

// onBothLakes runs f in parallel subtests, one a destination, each with a
// fresh SQLite store and a fresh lake.
func onBothLakes(t *testing.T, f func(t *testing.T, s backend, l lake)) {
	for name, newLake := range bothLakes {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f(t, newSQLite(t), newLake(t))
		})
	}
}

// TestExport exports both stores to both destinations and reads every row
// and column back.
func TestExport(t *testing.T) {
	stores := map[string]func(*testing.T) backend{"sqlite": newSQLite, "dynamodb": newDynamo}
	for sn, newStore := range stores {
		for ln, newLake := range bothLakes {
			t.Run(sn+"_to_"+ln, func(t *testing.T) {
				t.Parallel()
				s, l := newStore(t), newLake(t)
				rs := seed(t, s, "roundtrip", 60, t0)
				sum, err := run(t, s, l.dst, export.Options{})
				if err != nil {
					t.Fatalf("export: %v", err)
				}
				checkPublished(t, l, rs)
				if want := int64(len(wantTracks(rs))); sum.TrackRows != want || sum.ArtistRows != int64(len(rs)) || sum.Files != 2 || sum.Bytes <= 0 {
					t.Errorf("summary %+v, want %d tracks, %d artists, 2 files", sum, want, len(rs))
				}
			})
		}
	}
}

// TestEmptyStore writes one part with the schema and no rows per dataset.
func TestEmptyStore(t *testing.T) {
	l := fileLake(t)
	if _, err := run(t, newSQLite(t), l.dst, export.Options{}); err != nil {
		t.Fatal(err)
	}
	if parts := checkPublished(t, l, nil); !slices.Equal(parts, []string{"part-00000.parquet"}) {
		t.Errorf("parts %v, want one", parts)
	}
}

// TestRerunReplaces runs the same date again after the store changed, with
// fewer parts than the first run: the partition holds the new snapshot once,
// the first run's extra parts gone.
func TestRerunReplaces(t *testing.T) {
	onBothLakes(t, func(t *testing.T, s backend, l lake) {
		rs := seed(t, s, "rerun", 40, t0)
		// A part per batch of rows: several parts.
		if _, err := run(t, s, l.dst, export.Options{FileBytes: 1, BatchRows: 64}); err != nil {
			t.Fatal(err)
		}
		if parts := checkPublished(t, l, rs); len(parts) < 3 {
			t.Fatalf("first run wrote parts %v, want several", parts)
		}
		rs2 := seedFrom(t, s, "rerun", 30, t0.Add(time.Hour), 1) // the first 30 fetched again
		rs = append(rs2, rs[30:]...)
		if _, err := run(t, s, l.dst, export.Options{}); err != nil {
			t.Fatal(err)
		}
		if parts := checkPublished(t, l, rs); !slices.Equal(parts, []string{"part-00000.parquet"}) {
			t.Errorf("second run left parts %v, want only part-00000.parquet", parts)
		}
	})
}

// failing wraps a real destination and fails the n-th call of one method.
type failing struct {
	export.Destination
	method string
	n      int
	calls  atomic.Int64
	before func() // run instead of failing when set
}

var errInjected = errors.New("injected failure")

func (f *failing) hit(method string) error {
	if method != f.method || f.calls.Add(1) != int64(f.n) {
		return nil
	}
	if f.before != nil {
		f.before()
		return nil
	}
	return errInjected
}

func (f *failing) Create(ctx context.Context, name string) (export.Object, error) {
	if err := f.hit("Create"); err != nil {
		return nil, err
	}
	return f.Destination.Create(ctx, name)
}

func (f *failing) Promote(ctx context.Context, from, to string) error {
	if err := f.hit("Promote"); err != nil {
		return err
	}
	return f.Destination.Promote(ctx, from, to)
}

// TestInterruptedRun fails a run while it stages (the previous partition is
// untouched) and one while it publishes (the partition is a mixture); the
// next run completes the partition each time.
func TestInterruptedRun(t *testing.T) {
	onBothLakes(t, func(t *testing.T, s backend, l lake) {
		first := seed(t, s, "interrupted", 40, t0)
		small := export.Options{FileBytes: 1, BatchRows: 64} // a part per batch
		if _, err := run(t, s, l.dst, small); err != nil {
			t.Fatal(err)
		}
		second := seedFrom(t, s, "interrupted", 40, t0.Add(time.Hour), 1)

		// Staging fails at the third part: the partition is the first run's.
		_, err := run(t, s, &failing{Destination: l.dst, method: "Create", n: 3}, small)
		if !errors.Is(err, errInjected) {
			t.Fatalf("export = %v, want the injected failure", err)
		}
		tracks, _ := readPartition[export.TrackRecord](t, l, export.TopTracks)
		if got, want := len(tracks), len(wantTracks(first)); got != want {
			t.Errorf("after a failed staging the partition holds %d rows, want the first run's %d", got, want)
		}
		for _, r := range tracks {
			if r.FetchedAt.After(t0.Add(time.Minute)) {
				t.Fatalf("after a failed staging the partition holds a row of the second fetch: %+v", r)
			}
		}

		// Publishing fails at the second part of top_tracks.
		_, err = run(t, s, &failing{Destination: l.dst, method: "Promote", n: 3}, small)
		if !errors.Is(err, errInjected) || !strings.Contains(err.Error(), "run the export again") {
			t.Fatalf("export = %v, want the injected failure and what to do", err)
		}

		if _, err := run(t, s, l.dst, small); err != nil {
			t.Fatalf("the run after the interrupted ones: %v", err)
		}
		checkPublished(t, l, second)
	})
}

// TestS3Failures: a bucket that does not exist, wrong credentials, a
// closed port and an endpoint that goes away end the run with one line
// saying which, and the previous partition stays as it was.
func TestS3Failures(t *testing.T) {
	s := newSQLite(t)
	rs := seed(t, s, "s3failures", 120, t0)
	proxy := testenv.NewProxy(t, strings.TrimPrefix(testenv.S3Endpoint(t), "http://"))
	l, prefix := s3Lake(t, proxy.URL())
	if _, err := run(t, s, l.dst, export.Options{}); err != nil {
		t.Fatal(err)
	}
	seedFrom(t, s, "s3failures", 120, t0.Add(time.Hour), 1)
	closedPort := func() string {
		p, err := testenv.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("http://127.0.0.1:%d", p)
	}()
	// s3rver knows one access key (it does not check SigV4 signatures).
	const wrongSecret = "not-the-secret-5ecr3t"
	denied := s3.NewFromConfig(aws.Config{Region: testenv.Region,
		Credentials: credentials.NewStaticCredentialsProvider("AKIDNOTKNOWNHERE", wrongSecret, "")},
		func(o *s3.Options) { o.BaseEndpoint = aws.String(testenv.S3Endpoint(t)); o.UsePathStyle = true })

	for _, tc := range []struct {
		name string
		dst  func() export.Destination
		kind s3dest.Kind
		want string
	}{
		{"missing bucket", func() export.Destination {
			return s3dest.NewBucket(s3Client(testenv.S3Endpoint(t), testenv.S3Config()), "no-such-bucket", prefix, testenv.S3Endpoint(t))
		}, s3dest.NoBucket, "s3://no-such-bucket: the bucket does not exist"},
		{"denied", func() export.Destination {
			return s3dest.NewBucket(denied, testenv.Bucket, prefix, testenv.S3Endpoint(t))
		}, s3dest.Denied, "access denied"},
		{"closed port", func() export.Destination {
			return s3dest.NewBucket(s3Client(closedPort, testenv.S3Config()), testenv.Bucket, prefix, closedPort)
		}, s3dest.Unreachable, "S3 at " + closedPort + " did not answer"},
		{"outage", func() export.Destination {
			proxy.Cut()
			return l.dst
		}, s3dest.Unreachable, "S3 at " + proxy.URL() + " did not answer"},
		{"outage while staging", func() export.Destination {
			proxy.Restore()
			return &failing{Destination: l.dst, method: "Create", n: 2, before: proxy.Cut}
		}, s3dest.Unreachable, "did not answer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := run(t, s, tc.dst(), export.Options{})
			var e *s3dest.Error
			if !errors.As(err, &e) || e.Kind != tc.kind {
				t.Fatalf("export = %v, want an s3dest.Error of kind %v", err, tc.kind)
			}
			msg := err.Error()
			t.Log(msg)
			if !strings.Contains(msg, tc.want) || strings.Contains(msg, "\n") {
				t.Errorf("error %q: want one line containing %q", msg, tc.want)
			}
			if strings.Contains(msg, wrongSecret) || strings.Contains(msg, testenv.S3SecretKey+"/") {
				t.Errorf("error %q shows a secret", msg)
			}
			checkPartitions(t, l, rs) // read directly: the first run's snapshot
		})
	}
	proxy.Restore()
	if _, err := run(t, s, l.dst, export.Options{}); err != nil {
		t.Fatalf("after the outage: %v", err)
	}
}

// TestParseURL checks the destination URLs.
func TestParseURL(t *testing.T) {
	for _, tc := range []struct{ in, bucket, prefix string }{
		{"s3://b", "b", ""},
		{"s3://b/", "b", ""},
		{"s3://b/lake", "b", "lake"},
		{"s3://b/a/b/", "b", "a/b"},
	} {
		b, p, err := s3dest.ParseURL(tc.in)
		if err != nil || b != tc.bucket || p != tc.prefix {
			t.Errorf("ParseURL(%q) = %q, %q, %v; want %q, %q", tc.in, b, p, err, tc.bucket, tc.prefix)
		}
	}
	for _, bad := range []string{"s3://", "s3:b", "https://b/x", "s3://b/x?y=1"} {
		if _, _, err := s3dest.ParseURL(bad); err == nil {
			t.Errorf("ParseURL(%q) succeeded", bad)
		}
	}
	if _, err := url.Parse("s3://b"); err != nil {
		t.Fatal(err)
	}
	if d, err := filedest.ParseURL("file:lake"); err != nil || d != "lake" {
		t.Errorf("filedest.ParseURL(file:lake) = %q, %v", d, err)
	}
	if _, err := filedest.ParseURL("file:"); err == nil {
		t.Error("filedest.ParseURL(file:) succeeded")
	}
}
