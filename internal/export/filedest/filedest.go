// Package filedest is the export's destination on a local directory
// (file:DIR): each object a file, written to a temporary name beside it
// and renamed into place when committed, so that a reader never sees half
// a file.
package filedest

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/sixpotify/top-tracks/internal/export"
)

// Dir is a lake in a local directory.
type Dir struct {
	root string
}

// ParseURL reads file:DIR.
func ParseURL(u string) (string, error) {
	dir, ok := strings.CutPrefix(u, "file:")
	if !ok || dir == "" {
		return "", fmt.Errorf("%q is not file:DIR", u)
	}
	return strings.TrimPrefix(dir, "//"), nil
}

// New returns the lake in dir, which is made when first written.
func New(dir string) *Dir { return &Dir{root: dir} }

func (d *Dir) String() string { return "file:" + d.root }

func (d *Dir) path(name string) string { return filepath.Join(d.root, filepath.FromSlash(name)) }

// Create writes name through a temporary file in the same directory.
func (d *Dir) Create(_ context.Context, name string) (export.Object, error) {
	p := d.path(name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(filepath.Dir(p), "."+filepath.Base(p)+".tmp-*")
	if err != nil {
		return nil, err
	}
	return &file{f: f, to: p}, nil
}

type file struct {
	f  *os.File
	to string
}

func (o *file) Write(b []byte) (int, error) { return o.f.Write(b) }

func (o *file) Commit() error {
	err := o.f.Sync()
	if cerr := o.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(o.f.Name(), o.to)
	}
	if err != nil {
		os.Remove(o.f.Name())
		return fmt.Errorf("write %s: %w", o.to, err)
	}
	return nil
}

func (o *file) Abort() {
	o.f.Close()
	os.Remove(o.f.Name())
}

// List returns the files under prefix (temporary ones included, so that a
// run's cleanup removes what an interrupted one left).
func (d *Dir) List(_ context.Context, prefix string) ([]string, error) {
	var names []string
	base := d.path(prefix)
	err := filepath.WalkDir(base, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p == base {
				return filepath.SkipAll
			}
			return err
		}
		if e.Type().IsRegular() {
			rel, err := filepath.Rel(d.root, p)
			if err != nil {
				return err
			}
			names = append(names, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", base, err)
	}
	return names, nil
}

// Promote renames from to to, which replaces to at once.
func (d *Dir) Promote(_ context.Context, from, to string) error {
	p := d.path(to)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return os.Rename(d.path(from), p)
}

// Delete removes the files, then the directories their removal left empty
// (up to the root).
func (d *Dir) Delete(_ context.Context, names []string) error {
	var errs []error
	for _, n := range names {
		p := d.path(n)
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
			continue
		}
		root := filepath.Clean(d.root)
		for dir := filepath.Dir(p); dir != root && strings.HasPrefix(dir, root); dir = filepath.Dir(dir) {
			if os.Remove(dir) != nil { // not empty, or gone
				break
			}
		}
	}
	return errors.Join(errs...)
}
