// Command fakespotify runs the project's Spotify stand-in as a server, for
// load tests and local runs without Spotify credentials:
//
//	fakespotify --addr 127.0.0.1:9191 --rate 100 --window 30s
//
// It answers POST /api/token (client credentials) and
// GET /v1/artists/{id}/top-tracks?market=XX, as internal/fakespotify does,
// until SIGINT or SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/sixpotify/top-tracks/internal/fakespotify"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "fakespotify:", err)
		os.Exit(2)
	}
}

// run serves until ctx ends, then shuts down gracefully.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("fakespotify", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // parse errors are returned, and printed once by main
	var (
		addr      = fs.String("addr", "127.0.0.1:9191", "`address` to listen on")
		id        = fs.String("client-id", "sixpotify-demo", "client ID the token endpoint accepts")
		secret    = fs.String("client-secret", "sixpotify-demo-secret", "client secret the token endpoint accepts")
		rate      = fs.Int("rate", 0, "at most `N` API calls per --window, then 429 (0: unlimited)")
		window    = fs.Duration("window", 30*time.Second, "rolling window of --rate")
		latency   = fs.Duration("latency", 0, "delay of every API answer")
		errorRate = fs.Float64("error-rate", 0, "share of API calls answered 500, 502 or 503 (0 to 1)")
		tokenTTL  = fs.Duration("token-ttl", time.Hour, "lifetime of an access token")
		devMode   = fs.Bool("development-mode", false, "answer top-tracks 403 {\"message\":\"Forbidden\"}, as Spotify answers a Development Mode app since 9 March 2026")
		lapsed    = fs.Bool("premium-lapsed", false, "answer every API call 403 \"Active premium subscription required for the owner of the app\"")
		removed   = fs.Bool("fields-removed", false, "leave out the fields Spotify removed for Development Mode apps in February 2026 (popularity, ...)")
		quota     = fs.Duration("quota-exceeded", 0, "answer every API call 429 QUOTA_EXCEEDED with this Retry-After (0: off)")
		throttled = fs.Bool("throttled", false, "answer every API call 429 with no Retry-After")
	)
	usage := func(w io.Writer) {
		fmt.Fprintf(w, "Usage: fakespotify [flags]\n\nA stand-in for the Spotify Web API's token and top-tracks endpoints.\n\nFlags:\n")
		fs.SetOutput(w)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage(stdout)
			return nil
		}
		usage(stderr)
		return err
	}
	switch {
	case fs.NArg() > 0:
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case *rate < 0:
		return errors.New("--rate must be 0 or more")
	case *window <= 0:
		return errors.New("--window must be positive")
	case *latency < 0:
		return errors.New("--latency must be 0 or more")
	case *errorRate < 0 || *errorRate > 1:
		return errors.New("--error-rate must be between 0 and 1")
	case *tokenTTL <= 0:
		return errors.New("--token-ttl must be positive")
	case *quota < 0:
		return errors.New("--quota-exceeded must be 0 or more")
	}

	fake := fakespotify.New(fakespotify.Config{
		ClientID:     *id,
		ClientSecret: *secret,
		TokenTTL:     *tokenTTL,
		Limit:        *rate,
		Window:       *window,
		Latency:      *latency,
		ErrorRate:    *errorRate,
		Seed:         time.Now().UnixNano(),

		DevelopmentMode: *devMode,
		PremiumLapsed:   *lapsed,
		FieldsRemoved:   *removed,
		QuotaExceeded:   *quota,
		Throttled:       *throttled,
	})
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: fake, ReadHeaderTimeout: 10 * time.Second}
	base := "http://" + ln.Addr().String()
	fmt.Fprintf(stdout, "fakespotify listening on %s (SPOTIFY_API_URL=%s/v1 SPOTIFY_TOKEN_URL=%s/api/token)\n", base, base, base)

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
