package cli

import (
	"fmt"
	"io"
	"os"
)

// readSmall reads a secret file, refusing one too large to be a secret.
func readSmall(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 64<<10+1))
	if err != nil {
		return nil, err
	}
	if len(b) > 64<<10 {
		return nil, fmt.Errorf("%s is larger than 64 KiB: not a secret", path)
	}
	return b, nil
}
