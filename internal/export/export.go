// Package export writes a snapshot of the store to the data lake as Parquet:
// two datasets, top_tracks and artists, each partitioned Hive-style by the
// snapshot's date (PREFIX/top_tracks/dt=YYYY-MM-DD/part-00000.parquet).
//
// # How a partition is replaced
//
// A run first lists the date's partitions (so that a missing bucket, denied
// access or an unreachable destination fails before the store is read),
// then streams each dataset into staged parts under
// PREFIX/_staging/dt=DATE/DATASET/, outside every table's location, and
// only when both datasets are staged whole does it publish: each staged part
// is promoted to the same name in the partition (a rename on disk, a
// server-side copy in S3), then the partition's objects that are not part of
// the new snapshot are deleted, then what is left of the staging area. Part
// names are deterministic (part-00000.parquet, part-00001.parquet …), so a
// run of the same date overwrites instead of adding.
//
// A failure while staging (the store, the encoder, the destination) leaves
// the previous partition exactly as it was. A failure while publishing,
// which takes one request per part, can leave a partition with some parts
// new and some old; running the export again completes it. A reader that
// lists a partition while a run publishes it may see that mixture for the
// seconds the publication takes; at any other time it sees one snapshot.
package export

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/sixpotify/top-tracks/internal/store"
)

// Source is the store being exported.
type Source interface {
	ScanTracks(ctx context.Context, fn func(store.Row) error) error
	ScanArtists(ctx context.Context, fn func(store.Artist) error) error
}

// Destination is where the lake lives: a directory or an S3 prefix. Names
// are slash-separated and relative to its root.
type Destination interface {
	// Create starts writing the object name. Nothing is visible under name
	// until Commit returns nil; Abort discards what was written.
	Create(ctx context.Context, name string) (Object, error)
	// List returns the names of the objects whose names begin with prefix.
	List(ctx context.Context, prefix string) ([]string, error)
	// Promote makes the object to hold what the object from holds, at once
	// for a reader; from may be gone afterwards.
	Promote(ctx context.Context, from, to string) error
	// Delete removes the objects; a name that does not exist is no error.
	Delete(ctx context.Context, names []string) error
}

// Object is an object being written.
type Object interface {
	io.Writer
	Commit() error
	Abort()
}

// Options tune an export. The zero value of each field means its default.
type Options struct {
	// Date is the partition, YYYY-MM-DD. Default: today in UTC.
	Date string
	// RowGroupBytes is the size at which a row group is flushed, as the
	// Parquet writer estimates it (written pages plus the values still
	// buffered): default 16 MiB, which makes top_tracks row groups of about
	// 176,000 rows, 42 MB uncompressed and 13 MB on disk, what Athena splits
	// work by. The writer
	// holds one row group in memory, about 2.5 times its uncompressed size
	// while it encodes it.
	RowGroupBytes int64
	// FileBytes is the estimated size at which a part is closed and the
	// next begun. Default 512 MiB.
	FileBytes int64
	// BatchRows is how many records travel from the store's scan to the
	// encoder at once, and how often the sizes are checked. Default 1024.
	BatchRows int
	// Now is the clock for the default date and the summary. Default time.Now.
	Now func() time.Time
}

func (o Options) withDefaults() Options {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Date == "" {
		o.Date = o.Now().UTC().Format(DateFormat)
	}
	if o.RowGroupBytes <= 0 {
		o.RowGroupBytes = 16 << 20
	}
	if o.FileBytes <= 0 {
		o.FileBytes = 512 << 20
	}
	if o.BatchRows <= 0 {
		o.BatchRows = 1024
	}
	return o
}

// MemoryLimit is the soft memory limit bin/producer runs with (unless
// GOMEMLIMIT is set): above the export's live heap (one row group of
// RowGroupBytes' default being encoded, its zstd encoders, a few batches and
// upload parts: about 60 MB), so that the collector's headroom does not take
// the process past 100 MB.
const MemoryLimit = 96 << 20

// DateFormat is the form of a partition's date.
const DateFormat = "2006-01-02"

// ValidDate reports whether d is a date in DateFormat.
func ValidDate(d string) error {
	t, err := time.Parse(DateFormat, d)
	if err != nil || t.Format(DateFormat) != d {
		return fmt.Errorf("%q is not a date of the form YYYY-MM-DD", d)
	}
	return nil
}

// PartitionPrefix is where a dataset's partition for date lives.
func PartitionPrefix(dataset, date string) string {
	return dataset + "/dt=" + date + "/"
}

// stagingPrefix is where a run stages a dataset's parts for date: outside
// every table's location, so no reader sees them.
func stagingPrefix(dataset, date string) string {
	return "_staging/dt=" + date + "/" + dataset + "/"
}

// PartName is the i-th part of a partition.
func PartName(i int) string { return fmt.Sprintf("part-%05d.parquet", i) }

// Summary is what a run wrote.
type Summary struct {
	Date       string
	TrackRows  int64 // rows of top_tracks
	ArtistRows int64 // rows of artists
	Files      int
	Bytes      int64
	Elapsed    time.Duration
}

// Exporter exports one snapshot. Rows may be read while Run runs.
type Exporter struct {
	src  Source
	dst  Destination
	opts Options
	rows atomic.Int64
}

// New returns an Exporter of src to dst.
func New(src Source, dst Destination, opts Options) (*Exporter, error) {
	opts = opts.withDefaults()
	if err := ValidDate(opts.Date); err != nil {
		return nil, err
	}
	return &Exporter{src: src, dst: dst, opts: opts}, nil
}

// Date is the partition the Exporter writes.
func (e *Exporter) Date() string { return e.opts.Date }

// Rows is how many rows (both datasets) have been encoded so far.
func (e *Exporter) Rows() int { return int(e.rows.Load()) }

// Run writes the snapshot and publishes it (see the package comment). It
// returns nil only when both partitions hold the new snapshot whole.
func (e *Exporter) Run(ctx context.Context) (Summary, error) {
	start := e.opts.Now()
	date := e.opts.Date
	sum := Summary{Date: date}
	// Fail on the destination before reading the store.
	for _, ds := range []string{Artists, TopTracks} {
		if _, err := e.dst.List(ctx, PartitionPrefix(ds, date)); err != nil {
			return sum, err
		}
	}

	artists, err := writeDataset(ctx, e, Artists, func(emit func(ArtistRecord) error) error {
		return e.src.ScanArtists(ctx, func(a store.Artist) error { return emit(ArtistRecordOf(a)) })
	})
	sum.ArtistRows, sum.Files, sum.Bytes = artists.rows, sum.Files+len(artists.parts), sum.Bytes+artists.bytes
	if err != nil {
		return sum, err
	}
	tracks, err := writeDataset(ctx, e, TopTracks, func(emit func(TrackRecord) error) error {
		return e.src.ScanTracks(ctx, func(r store.Row) error { return emit(TrackRecordOf(r)) })
	})
	sum.TrackRows, sum.Files, sum.Bytes = tracks.rows, sum.Files+len(tracks.parts), sum.Bytes+tracks.bytes
	if err != nil {
		return sum, err
	}

	for _, w := range []staged{artists, tracks} {
		if err := e.publish(ctx, w); err != nil {
			return sum, err
		}
	}
	sum.Elapsed = e.opts.Now().Sub(start)
	return sum, nil
}

// staged is a dataset written to the staging area.
type staged struct {
	dataset string
	parts   []string // names relative to the dataset's prefix
	rows    int64
	bytes   int64
}

// publish promotes a staged dataset into its partition, then deletes what
// the new snapshot does not hold, then the staging area.
func (e *Exporter) publish(ctx context.Context, s staged) error {
	date := e.opts.Date
	final, stage := PartitionPrefix(s.dataset, date), stagingPrefix(s.dataset, date)
	for _, p := range s.parts {
		if err := e.dst.Promote(ctx, stage+p, final+p); err != nil {
			return fmt.Errorf("publish %s: %w (run the export again to complete the partition)", final+p, err)
		}
	}
	names, err := e.dst.List(ctx, final)
	if err != nil {
		return fmt.Errorf("publish %s: %w (run the export again to complete the partition)", final, err)
	}
	var stale []string
	for _, n := range names {
		if !slices.Contains(s.parts, strings.TrimPrefix(n, final)) {
			stale = append(stale, n)
		}
	}
	if err := e.dst.Delete(ctx, stale); err != nil {
		return fmt.Errorf("remove stale parts of %s: %w (run the export again to complete the partition)", final, err)
	}
	left, err := e.dst.List(ctx, stage)
	if err == nil {
		err = e.dst.Delete(ctx, left)
	}
	if err != nil {
		return fmt.Errorf("clean up %s: %w", stage, err)
	}
	return nil
}

// writeDataset streams the records scan emits into staged parts. The scan
// runs in a goroutine of its own, so that reading the store and encoding
// overlap; batches of BatchRows records, at most a few in flight, bound the
// memory between them.
func writeDataset[T any](ctx context.Context, e *Exporter, dataset string, scan func(emit func(T) error) error) (staged, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	batches := make(chan []T, 4)
	free := make(chan []T, 6)
	scanErr := make(chan error, 1)
	batchRows := e.opts.BatchRows
	go func() {
		defer close(batches)
		batch := make([]T, 0, batchRows)
		send := func() error {
			select {
			case batches <- batch:
			case <-ctx.Done():
				return context.Cause(ctx)
			}
			select {
			case batch = <-free:
				batch = batch[:0]
			default:
				batch = make([]T, 0, batchRows)
			}
			return nil
		}
		err := scan(func(rec T) error {
			batch = append(batch, rec)
			if len(batch) == batchRows {
				return send()
			}
			return nil
		})
		if err == nil && len(batch) > 0 {
			err = send()
		}
		scanErr <- err
	}()

	pw := &partWriter[T]{e: e, ctx: ctx, prefix: stagingPrefix(dataset, e.opts.Date)}
	var werr error
	for batch := range batches {
		if werr == nil {
			if werr = pw.write(batch); werr != nil {
				cancel(werr) // the scan stops; drain what it sent
			}
		}
		select {
		case free <- batch:
		default:
		}
	}
	if err := <-scanErr; err != nil && werr == nil {
		werr = fmt.Errorf("read the store's %s: %w", dataset, err)
	}
	if werr == nil {
		werr = pw.close()
	}
	if werr != nil {
		pw.abort()
		return pw.staged(dataset), fmt.Errorf("write %s: %w", dataset, werr)
	}
	return pw.staged(dataset), nil
}

// partWriter writes records into consecutive parts.
type partWriter[T any] struct {
	e      *Exporter
	ctx    context.Context
	prefix string

	obj     Object
	counter *countingWriter
	w       *parquet.GenericWriter[T]
	groupAt int64 // the writer's estimated size when the row group began

	parts []string
	rows  int64
	bytes int64 // of committed parts
}

func (p *partWriter[T]) staged(dataset string) staged {
	return staged{dataset: dataset, parts: p.parts, rows: p.rows, bytes: p.bytes}
}

func (p *partWriter[T]) open() error {
	name := PartName(len(p.parts))
	obj, err := p.e.dst.Create(p.ctx, p.prefix+name)
	if err != nil {
		return err
	}
	p.obj, p.counter = obj, &countingWriter{w: obj}
	opts := []parquet.WriterOption{
		parquet.Compression(&parquet.Zstd),
		parquet.CreatedBy("sixpotify-top-tracks export", "", ""),
	}
	if p.w == nil {
		p.w = parquet.NewGenericWriter[T](p.counter, opts...)
	} else {
		p.w.Reset(p.counter)
	}
	p.groupAt = 0
	p.parts = append(p.parts, name)
	return nil
}

func (p *partWriter[T]) write(batch []T) error {
	if p.obj == nil {
		if err := p.open(); err != nil {
			return err
		}
	}
	if _, err := p.w.Write(batch); err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	p.rows += int64(len(batch))
	p.e.rows.Add(int64(len(batch)))
	size := p.w.Size()
	switch {
	case size >= p.e.opts.FileBytes:
		return p.finish()
	case size-p.groupAt >= p.e.opts.RowGroupBytes:
		if err := p.w.Flush(); err != nil {
			return fmt.Errorf("encode: %w", err)
		}
		p.groupAt = p.w.Size()
	}
	return nil
}

// finish closes the current part and commits it.
func (p *partWriter[T]) finish() error {
	if err := p.w.Close(); err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	obj := p.obj
	p.obj = nil
	if err := obj.Commit(); err != nil {
		return err
	}
	p.bytes += p.counter.n
	return nil
}

// close finishes the last part; a dataset with no rows still gets one part,
// so that its partition exists and carries the schema.
func (p *partWriter[T]) close() error {
	if p.obj == nil && len(p.parts) == 0 {
		if err := p.open(); err != nil {
			return err
		}
	}
	if p.obj == nil {
		return nil
	}
	return p.finish()
}

func (p *partWriter[T]) abort() {
	if p.obj != nil {
		p.obj.Abort()
		p.obj = nil
	}
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}
