// Package exportcmd is `producer export`: a snapshot of the store as Parquet
// in the data lake (see package export). It is a package of its own so
// that what it calls of AWS (a scan of both tables, S3) is told apart from
// what enqueue and reprocess call, for the task roles in deploy/.
package exportcmd

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/sixpotify/top-tracks/internal/backend"
	"github.com/sixpotify/top-tracks/internal/backend/stores"
	"github.com/sixpotify/top-tracks/internal/cli"
	"github.com/sixpotify/top-tracks/internal/export"
	"github.com/sixpotify/top-tracks/internal/export/filedest"
	"github.com/sixpotify/top-tracks/internal/export/s3dest"
	"github.com/sixpotify/top-tracks/internal/progress"
)

// Cmd is the command's line.
type Cmd struct {
	To           string `required:"" placeholder:"URL" help:"Where the lake is: s3://BUCKET/PREFIX (the SDK's configuration, AWS_ENDPOINT_URL_S3 included) or file:DIR."`
	Date         string `placeholder:"YYYY-MM-DD" help:"The snapshot's date, its partition dt=YYYY-MM-DD (default: today in UTC). Running a date again replaces its partition."`
	StoreURL     string `name:"store-url" envvar:"STORE_URL" default:"sqlite:sixpotify.db" help:"dynamodb:TABLE or sqlite:PATH (which must exist)."`
	ArtistsTable string `name:"artists-table" envvar:"ARTISTS_TABLE" default:"artists" help:"The DynamoDB artists table."`
}

// Execute runs the export: progress on stderr, the summary on stdout.
func (c *Cmd) Execute(ctx context.Context, now time.Time, stdout, stderr io.Writer) error {
	if err := stores.Readable(c.StoreURL); err != nil {
		return cli.VarErrorf("STORE_URL", "%v", err)
	}
	date := c.Date
	if date == "" {
		date = now.UTC().Format(export.DateFormat)
	}
	if err := export.ValidDate(date); err != nil {
		return cli.Usage(fmt.Errorf("--date: %w", err))
	}
	dst, where, err := openDestination(ctx, c.To)
	if err != nil {
		return err
	}
	st, closeStore, err := stores.Open(ctx, c.StoreURL, c.ArtistsTable)
	if err != nil {
		return cli.VarErrorf("STORE_URL", "%v", err)
	}
	defer closeStore()
	total := 0
	if ct, ok := st.(interface {
		CountTracks(context.Context) (int, error)
	}); ok {
		if n, err := ct.CountTracks(ctx); err == nil {
			total = n
		}
	}
	e, err := export.New(st, dst, export.Options{Date: date})
	if err != nil {
		return cli.Usage(fmt.Errorf("--date: %w", err))
	}
	start := time.Now()
	prog := progress.Start(stderr, "rows exported", total, e.Rows)
	sum, err := e.Run(ctx)
	prog.Stop()
	if err != nil {
		return err
	}
	elapsed := time.Since(start)
	fmt.Fprintf(stdout, "exported %s dt=%s to %s: %d track rows, %d artists, %d files, %s in %s (%.0f rows/s)\n",
		c.StoreURL, sum.Date, where, sum.TrackRows, sum.ArtistRows, sum.Files, bytesString(sum.Bytes),
		elapsed.Round(time.Millisecond), float64(sum.TrackRows+sum.ArtistRows)/max(elapsed.Seconds(), 0.001))
	return nil
}

// openDestination opens the lake --to names, and says where it is.
func openDestination(ctx context.Context, to string) (export.Destination, string, error) {
	switch {
	case strings.HasPrefix(to, "file:"):
		dir, err := filedest.ParseURL(to)
		if err != nil {
			return nil, "", cli.Usage(fmt.Errorf("--to: %w", err))
		}
		return filedest.New(dir), to, nil
	case strings.HasPrefix(to, "s3:"):
		if _, _, err := s3dest.ParseURL(to); err != nil {
			return nil, "", cli.Usage(fmt.Errorf("--to: %w", err))
		}
		cfg, err := backend.AWSConfig(ctx, "")
		if err != nil {
			if strings.HasPrefix(err.Error(), "AWS_REGION") {
				return nil, "", cli.Usage(err)
			}
			return nil, "", err
		}
		b, err := s3dest.BucketFromConfig(cfg, to)
		if err != nil {
			return nil, "", cli.Usage(fmt.Errorf("--to: %w", err))
		}
		return b, b.String(), nil
	}
	return nil, "", cli.Usage(fmt.Errorf("--to: %q is neither s3://BUCKET/PREFIX nor file:DIR", to))
}

func bytesString(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
