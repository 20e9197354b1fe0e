// Package stores opens the store a URL names: dynamodb:TABLE or
// sqlite:PATH for the embedded store. It imports no queue backend.
package stores

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/sixpotify/top-tracks/internal/backend"
	"github.com/sixpotify/top-tracks/internal/store"
	"github.com/sixpotify/top-tracks/internal/store/dynamostore"
	"github.com/sixpotify/top-tracks/internal/store/sqlitestore"
)

// ValidateURL checks the form of a store URL without opening it.
func ValidateURL(u string) error {
	switch {
	case backend.IsSQLite(u):
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

// Open opens the store named by u, with artistsTable beside the tracks
// table, keeping rows for store.DefaultRetainFor. The returned func closes
// it.
func Open(ctx context.Context, u, artistsTable string) (store.Store, func() error, error) {
	return OpenRetaining(ctx, u, artistsTable, 0)
}

// OpenRetaining is Open with the rows a Save writes kept for retainFor
// after their fetch (RETAIN_FOR; 0: store.DefaultRetainFor).
func OpenRetaining(ctx context.Context, u, artistsTable string, retainFor time.Duration) (store.Store, func() error, error) {
	if err := ValidateURL(u); err != nil {
		return nil, nil, err
	}
	if backend.IsSQLite(u) {
		path, _ := sqlitestore.ParseURL(u)
		s, err := sqlitestore.OpenOptions(ctx, path, sqlitestore.Options{RetainFor: retainFor})
		if err != nil {
			return nil, nil, err
		}
		return s, s.Close, nil
	}
	cfg, err := backend.AWSConfig(ctx, "")
	if err != nil {
		return nil, nil, err
	}
	table := strings.TrimPrefix(u, "dynamodb:")
	s, err := dynamostore.NewWithOptions(dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) {
		if tp := backend.TracerProvider(); tp != nil {
			o.TracerProvider = tp
		}
	}), table, artistsTable, dynamostore.Options{RetainFor: retainFor})
	if err != nil {
		return nil, nil, err
	}
	return s, func() error { return nil }, nil
}

// Exists checks that the store u names can be read: an embedded store
// must be a file that exists (reading a typo must not create an empty one).
// DynamoDB tables are checked when first read.
func Exists(u string) error {
	if !backend.IsSQLite(u) {
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

// Readable checks a store URL a command is about to read (reprocess,
// export): set, well formed, and, when embedded, an existing file.
func Readable(u string) error {
	if u == "" {
		return errors.New("is empty")
	}
	if err := ValidateURL(u); err != nil {
		return err
	}
	return Exists(u)
}
