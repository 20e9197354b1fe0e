// Package testenv starts the local AWS emulators (local-aws-sqs, dynalite and
// s3rver, installed from package.json by `make test`) for integration tests,
// one of each per test binary, on free loopback ports. It also gives the tests their clients of the emulators, their queues and
// the AWS_* environment of the commands (clients.go).
//
// A test that needs an emulator fails, never skips, when it cannot start one:
// run `make test` (or `npm ci` in the project root) first.
package testenv

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"go.uber.org/goleak"
)

// Region is the region every emulator client uses.
const Region = "us-east-1"

var (
	mu    sync.Mutex
	procs = map[string]*emulator{}
)

type emulator struct {
	name     string
	endpoint string
	cmd      *exec.Cmd
	logPath  string
	err      error

	exited  chan struct{} // closed when the process has ended
	exitErr error         // what Wait said; read after exited is closed
	stopped bool          // Stop ended it on purpose (guarded by mu)
}

// dead reports, once the emulator's process has ended on its own, how it
// ended and the last lines of its log; "" while it runs.
func (e *emulator) dead() string {
	if e.exited == nil {
		return ""
	}
	select {
	case <-e.exited:
	default:
		return ""
	}
	out, _ := os.ReadFile(e.logPath)
	return fmt.Sprintf("the %s emulator at %s died (%v); the last lines of its log %s:\n%s",
		e.name, e.endpoint, e.exitErr, e.logPath, lastLines(out, 15))
}

const sqsScript = `const { createSqsServer } = require("local-aws-sqs");
createSqsServer({ port: Number(process.argv[1]), hostname: "127.0.0.1",
  emulateQueueCreationLifecycle: false, emulateLazyQueues: false });`

// SQSEndpoint returns the base URL of this test binary's SQS emulator,
// starting it on first use.
func SQSEndpoint(tb testing.TB) string {
	tb.Helper()
	return start(tb, "sqs", func(root string, port int) *exec.Cmd {
		cmd := exec.Command("node", "-e", sqsScript, strconv.Itoa(port))
		cmd.Env = append(os.Environ(), "NODE_PATH="+filepath.Join(root, "node_modules"))
		return cmd
	})
}

// dynaliteScript starts dynalite so that a client aborting its request cannot
// take it down (see the script's comment).
//
//go:embed dynalite.js
var dynaliteScript string

// DynamoDBEndpoint returns the base URL of this test binary's dynalite,
// starting it on first use. Its data lives in memory.
func DynamoDBEndpoint(tb testing.TB) string {
	tb.Helper()
	return start(tb, "dynamodb", dynaliteCommand)
}

func dynaliteCommand(root string, port int) *exec.Cmd {
	cmd := exec.Command("node", "-e", dynaliteScript, strconv.Itoa(port))
	cmd.Env = append(os.Environ(), "NODE_PATH="+filepath.Join(root, "node_modules"))
	return cmd
}

// Bucket is the bucket that exists in this test binary's S3 emulator from
// its start; tests keep apart by prefix.
const Bucket = "sixpotify-lake"

// S3 credentials: s3rver checks request signatures against this one key.
const (
	S3AccessKey = "S3RVER"
	S3SecretKey = "S3RVER"
)

// S3Endpoint returns the base URL of this test binary's s3rver, starting it
// on first use. Its objects live in a temporary directory, removed by Stop;
// Bucket exists. Clients need path-style addressing (UsePathStyle).
func S3Endpoint(tb testing.TB) string {
	tb.Helper()
	return start(tb, "s3", func(root string, port int) *exec.Cmd {
		dir, err := os.MkdirTemp("", "sixpotify-s3rver-")
		if err != nil {
			dir = filepath.Join(os.TempDir(), fmt.Sprintf("sixpotify-s3rver-%d", port))
		}
		s3Dirs = append(s3Dirs, dir)
		return exec.Command("node", filepath.Join(root, "node_modules", "s3rver", "bin", "s3rver.js"),
			"-d", dir, "-a", "127.0.0.1", "-p", strconv.Itoa(port), "--silent", "--configure-bucket", Bucket)
	})
}

// s3Dirs are the data directories of the S3 emulators started (guarded by mu).
var s3Dirs []string

// S3Config returns an SDK configuration for the S3 emulator: region
// us-east-1 and its static credentials.
func S3Config() aws.Config {
	return aws.Config{
		Region:      Region,
		Credentials: credentials.NewStaticCredentialsProvider(S3AccessKey, S3SecretKey, ""),
	}
}

// AWSConfig returns an SDK configuration for the emulators: region us-east-1
// and static test credentials (never read from the environment).
func AWSConfig() aws.Config {
	return aws.Config{
		Region:      Region,
		Credentials: credentials.NewStaticCredentialsProvider("AKIDTESTTESTTEST", "test-secret-not-real", ""),
	}
}

// Main runs the tests of a package and then stops the emulators it started.
// Call it from TestMain: func TestMain(m *testing.M) { testenv.Main(m) }.
func Main(m *testing.M) {
	code := m.Run()
	Stop()
	os.Exit(code)
}

// Stop ends every emulator this process started.
func Stop() {
	mu.Lock()
	defer mu.Unlock()
	for name, e := range procs {
		e.stopped = true
		if e.cmd != nil && e.cmd.Process != nil {
			_ = syscall.Kill(-e.cmd.Process.Pid, syscall.SIGKILL)
			<-e.exited
		}
		delete(procs, name)
	}
	for _, dir := range s3Dirs {
		os.RemoveAll(dir)
	}
	s3Dirs = nil
}

func start(tb testing.TB, name string, command func(root string, port int) *exec.Cmd) string {
	tb.Helper()
	mu.Lock()
	defer mu.Unlock()
	e, ok := procs[name]
	if !ok {
		e = launch(name, command)
		procs[name] = e
	}
	if e.err != nil {
		tb.Fatalf("testenv: cannot start the %s emulator: %v (run `make test`, or `npm ci` in the project root, first)", name, e.err)
	}
	// An emulator that died earlier in this binary fails the test at once,
	// saying why, instead of a trail of "connection refused".
	if why := e.dead(); why != "" {
		tb.Fatalf("testenv: %s", why)
	}
	// One that dies during the test is named in the test's output.
	tb.Cleanup(func() {
		mu.Lock()
		stopped := e.stopped
		mu.Unlock()
		if why := e.dead(); why != "" && !stopped {
			tb.Errorf("testenv: %s", why)
		}
	})
	return e.endpoint
}

func launch(name string, command func(root string, port int) *exec.Cmd) *emulator {
	root, err := Root()
	if err != nil {
		return &emulator{err: err}
	}
	if _, err := os.Stat(filepath.Join(root, "node_modules")); err != nil {
		return &emulator{err: fmt.Errorf("node_modules is missing in %s", root)}
	}
	port, err := FreePort()
	if err != nil {
		return &emulator{err: err}
	}
	cmd := command(root, port)
	cmd.Dir = root
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	logPath := filepath.Join(os.TempDir(), fmt.Sprintf("sixpotify-%s-%d.log", name, port))
	if f, err := os.Create(logPath); err == nil {
		cmd.Stdout, cmd.Stderr = f, f
		defer f.Close()
	}
	if err := cmd.Start(); err != nil {
		return &emulator{err: err}
	}
	e := &emulator{name: name, logPath: logPath, exited: make(chan struct{})}
	go func() {
		e.exitErr = cmd.Wait()
		close(e.exited)
	}()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(20 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			conn.Close()
			// The Wait goroutine owns the process now; Stop kills the group.
			e.endpoint, e.cmd = "http://"+addr, &exec.Cmd{Process: cmd.Process}
			return e
		}
		select {
		case <-e.exited:
			out, _ := os.ReadFile(logPath)
			return &emulator{err: fmt.Errorf("%s exited: %v: %s", name, e.exitErr, clipBytes(out))}
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			return &emulator{err: fmt.Errorf("%s did not listen on %s within 20s", name, addr)}
		}
	}
}

// Root returns the project root: the nearest directory above the working
// directory that holds go.mod.
func Root() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the working directory")
		}
		dir = parent
	}
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Context returns a context that ends with the test, or after a minute.
func Context(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	tb.Cleanup(cancel)
	return ctx
}

// lastLines returns the last n lines of b.
func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func clipBytes(b []byte) string {
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// MainNoLeaks is Main for a package whose tests must leave no goroutine
// running: after tests that passed, it fails the binary on any goroutine
// left but the read and write loops of idle HTTP keep-alive connections,
// which the AWS SDK's and the Spotify client's transports keep for a while
// after the calls that opened them. Call it from TestMain.
func MainNoLeaks(m *testing.M) {
	code := m.Run()
	Stop()
	if code == 0 {
		if err := goleak.Find(
			goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"),
			goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"),
		); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}
