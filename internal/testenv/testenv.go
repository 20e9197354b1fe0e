// Package testenv starts the local AWS emulators (local-aws-sqs and dynalite,
// installed from package.json by `make test`) for integration tests, one of
// each per test binary, on free loopback ports.
//
// A test that needs an emulator fails, never skips, when it cannot start one:
// run `make test` (or `npm ci` in the project root) first.
package testenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
)

// Region is the region every emulator client uses.
const Region = "us-east-1"

var (
	mu    sync.Mutex
	procs = map[string]*emulator{}
)

type emulator struct {
	endpoint string
	cmd      *exec.Cmd
	err      error
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

// DynamoDBEndpoint returns the base URL of this test binary's dynalite,
// starting it on first use. Its data lives in memory.
func DynamoDBEndpoint(tb testing.TB) string {
	tb.Helper()
	return start(tb, "dynamodb", func(root string, port int) *exec.Cmd {
		return exec.Command("node", filepath.Join(root, "node_modules", "dynalite", "cli.js"),
			"--port", strconv.Itoa(port), "--host", "127.0.0.1", "--createTableMs", "0", "--deleteTableMs", "0")
	})
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
		if e.cmd != nil && e.cmd.Process != nil {
			_ = syscall.Kill(-e.cmd.Process.Pid, syscall.SIGKILL)
			_ = e.cmd.Wait()
		}
		delete(procs, name)
	}
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
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(20 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			conn.Close()
			// The Wait goroutine owns the process now; Stop kills the group.
			return &emulator{endpoint: "http://" + addr, cmd: &exec.Cmd{Process: cmd.Process}}
		}
		select {
		case err := <-exited:
			out, _ := os.ReadFile(logPath)
			return &emulator{err: fmt.Errorf("%s exited: %v: %s", name, err, clipBytes(out))}
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

func clipBytes(b []byte) string {
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}
