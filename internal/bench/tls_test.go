package bench_test

// BenchmarkTLS is BenchmarkBaseline against BenchmarkWorker with the Spotify
// stand-in served over HTTPS, as Spotify is: the original design opened two
// new connections per artist (token, top tracks), each with a full TLS
// handshake, where the worker keeps its connections (and its token).
//
// The stand-in runs in a child process (this test binary, re-executed with
// childStandInEnv set), so that the server's side of the handshakes (an
// RSA-2048 signature each, httptest's certificate), which Spotify would pay,
// is not counted as this process's CPU: here this process's CPU is the
// design's alone, and the stand-in's is reported apart. In the plain-HTTP
// benchmarks the stand-in runs in this process.

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sixpotify/top-tracks/internal/fakespotify"
	"github.com/sixpotify/top-tracks/internal/spotify"
	"github.com/sixpotify/top-tracks/internal/workercmd"
)

// childStandInEnv, set to 1, makes this test binary serve the stand-in over
// TLS instead of running tests (see init).
const childStandInEnv = "SIXPOTIFY_BENCH_TLS_STANDIN"

func init() {
	if os.Getenv(childStandInEnv) == "1" {
		os.Exit(serveChildStandIn(os.Stdin, os.Stdout))
	}
}

// childHello is the child's first line on stdout.
type childHello struct {
	URL  string
	Cert []byte // DER
}

// childStats is the answer of the child's GET /bench/stats.
type childStats struct {
	fakespotify.Stats
	CPU time.Duration // the child's CPU time so far (getrusage)
}

// serveChildStandIn serves the stand-in on an httptest TLS server offering
// HTTP/2, as api.spotify.com and accounts.spotify.com do, until stdin ends.
func serveChildStandIn(stdin io.Reader, stdout io.Writer) int {
	fake := fakespotify.New(fakespotify.Config{ClientID: clientID, ClientSecret: clientSecret, Latency: spotifyLatency})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /bench/stats", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(childStats{Stats: fake.Stats(), CPU: cpuTime()})
	})
	mux.Handle("/", fake)
	srv := httptest.NewUnstartedServer(mux)
	srv.EnableHTTP2 = true
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	defer srv.Close()
	if err := json.NewEncoder(stdout).Encode(childHello{URL: srv.URL, Cert: srv.Certificate().Raw}); err != nil {
		return 1
	}
	_, _ = io.Copy(io.Discard, stdin) // until the parent closes it, or dies
	return 0
}

// childStandIn is the parent's handle on the child.
type childStandIn struct {
	cmd   *exec.Cmd
	stdin io.Closer
	url   string
	hc    *http.Client // keeps one connection for /bench/stats
	once  sync.Once
}

var standInPIDs sync.Map // pid → struct{}

// isStandInPID reports whether pid is a child stand-in, which emulatorCPU
// leaves out.
func isStandInPID(pid int) bool {
	_, ok := standInPIDs.Load(pid)
	return ok
}

// newTLSStandIn starts the child stand-in. The baseline's fresh clients
// trust its certificate through tlsConfig (they speak HTTP/1.1, as Python's
// requests does); the worker gets an HTTP client with the settings of the
// Spotify client's default one and the same roots.
func newTLSStandIn(tb testing.TB) *standIn {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.bench=^$")
	cmd.Env = append(os.Environ(), childStandInEnv+"=1")
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start the TLS stand-in: %v", err)
	}
	standInPIDs.Store(cmd.Process.Pid, struct{}{})
	c := &childStandIn{cmd: cmd, stdin: stdin}
	tb.Cleanup(c.close)
	var hello childHello
	line, err := bufio.NewReader(stdout).ReadBytes('\n')
	if err == nil {
		err = json.Unmarshal(line, &hello)
	}
	if err != nil {
		tb.Fatalf("the TLS stand-in did not start: %v", err)
	}
	cert, err := x509.ParseCertificate(hello.Cert)
	if err != nil {
		tb.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	cfg := &tls.Config{RootCAs: roots}
	c.url = hello.URL
	c.hc = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg.Clone()}}
	return &standIn{child: c, tlsConfig: cfg, client: workerHTTPClient(cfg)}
}

// stats asks the child for its counters and CPU time. It panics if the child
// does not answer: the benchmark cannot go on without it.
func (c *childStandIn) stats() childStats {
	var st childStats
	resp, err := c.hc.Get(c.url + "/bench/stats")
	if err == nil {
		err = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
	}
	if err != nil {
		panic(fmt.Sprintf("bench: the TLS stand-in's stats: %v", err))
	}
	return st
}

func (c *childStandIn) close() {
	c.once.Do(func() {
		c.stdin.Close()
		done := make(chan struct{})
		go func() { _ = c.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = c.cmd.Process.Kill()
			<-done
		}
		standInPIDs.Delete(c.cmd.Process.Pid)
	})
}

// workerHTTPClient is what spotify.New uses when given no HTTP client (its
// defaultHTTPClient, unexported), with cfg for TLS.
func workerHTTPClient(cfg *tls.Config) *http.Client {
	return &http.Client{
		Timeout: spotify.DefaultTimeout,
		Transport: &http.Transport{
			DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSClientConfig:       cfg.Clone(),
			ForceAttemptHTTP2:     true,
			MaxIdleConns:          128,
			MaxIdleConnsPerHost:   64,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   5 * time.Second,
			ResponseHeaderTimeout: spotify.DefaultTimeout,
			ExpectContinueTimeout: time.Second,
		},
	}
}

// standInCPU is the child stand-in's CPU per design, and the artists it
// served them.
var (
	standInMu      sync.Mutex
	standInCPU     = map[string]time.Duration{}
	standInArtists = map[string]int{}
)

// BenchmarkTLS runs both designs at the worker's default concurrency on the
// HTTPS stand-in. TestMain adds its rows to the comparison table.
func BenchmarkTLS(b *testing.B) {
	s := newTLSStandIn(b)
	counted := func(name string, d design) design {
		return func(ctx context.Context, w *world, s *standIn, c int) error {
			cpu0 := s.child.stats().CPU
			err := d(ctx, w, s, c)
			cpu := s.child.stats().CPU - cpu0
			standInMu.Lock()
			standInCPU[name] += cpu
			standInArtists[name] += len(w.ids)
			standInMu.Unlock()
			return err
		}
	}
	b.Run("design=baseline", func(b *testing.B) {
		measureOn(b, "baseline-tls", s, workercmd.DefaultConcurrency, counted("baseline-tls", baselineDesign))
	})
	b.Run("design=worker", func(b *testing.B) {
		measureOn(b, "worker-tls", s, workercmd.DefaultConcurrency, counted("worker-tls", workerDesign))
	})
}

// tlsRows adds BenchmarkTLS's rows to the comparison table. The caller
// holds resultsMu and has checked that both results are there.
func tlsRows(row compareRow) {
	base, wk := results["baseline-tls"], results["worker-tls"]
	standInMu.Lock()
	perArtist := func(name string) time.Duration {
		return standInCPU[name] / time.Duration(max(standInArtists[name], 1))
	}
	baseSI, wkSI := perArtist("baseline-tls"), perArtist("worker-tls")
	standInMu.Unlock()
	speedRows(row, "HTTPS: ", base, wk)
	row("HTTPS: CPU ms/artist (process+emulators)", "%.3f", ms(base.cpu+base.sqsCPU+base.dynamoCPU), ms(wk.cpu+wk.sqsCPU+wk.dynamoCPU), "")
	row("HTTPS: CPU ms/artist (stand-in, Spotify's)", "%.3f", ms(baseSI), ms(wkSI), "")
	row("HTTPS: token requests/run", "%.0f", base.tokens, wk.tokens, "")
}

// tlsNote explains the HTTPS rows.
func tlsNote(out io.Writer) {
	fmt.Fprintln(out, "HTTPS rows (BenchmarkTLS): the stand-in on an httptest TLS server (RSA-2048, HTTP/2 offered) in a child process, so that \"this process\" is the design alone there; the baseline's fresh client per invocation does 2 full handshakes per artist over HTTP/1.1, the worker keeps its connections.")
}
