package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestRunServesUntilCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdoutR, stdoutW := io.Pipe()
	var stderr strings.Builder
	errc := make(chan error, 1)
	go func() {
		errc <- run(ctx, []string{"--addr", "127.0.0.1:0", "--client-id", "me", "--client-secret", "s3cret"}, stdoutW, &stderr)
		stdoutW.Close()
	}()

	line, err := bufio.NewReader(stdoutR).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the first line: %v", err)
	}
	m := regexp.MustCompile(`^fakespotify listening on (http://127\.0\.0\.1:\d+) \(SPOTIFY_API_URL=(\S+) SPOTIFY_TOKEN_URL=(\S+)\)\n$`).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("first line = %q", line)
	}
	base, apiURL, tokenURL := m[1], m[2], m[3]
	if apiURL != base+"/v1" || tokenURL != base+"/api/token" {
		t.Errorf("URLs = %s, %s; want %s/v1, %s/api/token", apiURL, tokenURL, base, base)
	}
	go func() { _, _ = io.Copy(io.Discard, stdoutR) }()

	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.PostForm(tokenURL, url.Values{
		"grant_type": {"client_credentials"}, "client_id": {"me"}, "client_secret": {"s3cret"},
	})
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	err = json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	if err != nil || tok.AccessToken == "" {
		t.Fatalf("token answer: %d, %v", resp.StatusCode, err)
	}

	req, _ := http.NewRequest(http.MethodGet, apiURL+"/artists/0TnOYISbd1XYRBk9myaseg/top-tracks?market=US", nil)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("top tracks: status %d, want 200", resp.StatusCode)
	}

	cancel()
	if err := <-errc; err != nil {
		t.Errorf("run = %v, want nil after the context ended", err)
	}
	if stderr.Len() != 0 {
		t.Errorf("stderr = %q, want nothing", stderr.String())
	}
}

func TestRunFlags(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantErr    string // "": run returns nil
		wantStdout string
		wantStderr string
	}{
		{name: "help", args: []string{"--help"}, wantStdout: "-error-rate"},
		{name: "h", args: []string{"-h"}, wantStdout: "Usage: fakespotify"},
		{name: "unknown flag", args: []string{"--nope"}, wantErr: "flag provided but not defined", wantStderr: "Usage: fakespotify"},
		{name: "bad duration", args: []string{"--latency", "soon"}, wantErr: "invalid value", wantStderr: "-latency"},
		{name: "argument", args: []string{"serve"}, wantErr: `unexpected argument "serve"`},
		{name: "negative rate", args: []string{"--rate", "-1"}, wantErr: "--rate"},
		{name: "zero window", args: []string{"--window", "0s"}, wantErr: "--window"},
		{name: "error rate over 1", args: []string{"--error-rate", "1.5"}, wantErr: "--error-rate"},
		{name: "negative latency", args: []string{"--latency", "-1s"}, wantErr: "--latency"},
		{name: "zero token TTL", args: []string{"--token-ttl", "0s"}, wantErr: "--token-ttl"},
		{name: "bad address", args: []string{"--addr", "127.0.0.1:notaport"}, wantErr: "notaport"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr strings.Builder
			err := run(context.Background(), tt.args, &stdout, &stderr)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("run = %v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("run = %v, want an error saying %q", err, tt.wantErr)
			}
			if !strings.Contains(stdout.String(), tt.wantStdout) {
				t.Errorf("stdout = %q, want it to hold %q", stdout.String(), tt.wantStdout)
			}
			if !strings.Contains(stderr.String(), tt.wantStderr) {
				t.Errorf("stderr = %q, want it to hold %q", stderr.String(), tt.wantStderr)
			}
		})
	}
}
