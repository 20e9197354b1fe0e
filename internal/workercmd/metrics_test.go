package workercmd_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sixpotify/top-tracks/internal/fakespotify"
	"github.com/sixpotify/top-tracks/internal/queue/sqsqueue"
	"github.com/sixpotify/top-tracks/internal/store/storetest"
	"github.com/sixpotify/top-tracks/internal/testenv"
	"github.com/sixpotify/top-tracks/internal/testutil"
	"github.com/sixpotify/top-tracks/internal/workercmd"
	"github.com/sixpotify/top-tracks/producer"
)

// scrape reads /metrics into series → value ("name{labels}" as printed).
func scrape(t *testing.T, client *http.Client, url string) map[string]float64 {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err == nil {
			out[line[:i]] = v
		}
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return out
}

// TestMetricsMoveWithTheWork runs the worker on the SQS and DynamoDB
// emulators, with both lanes and a Spotify stand-in that throttles, and
// checks that every metric the README lists moves as the work moves.
func TestMetricsMoveWithTheWork(t *testing.T) {
	ctx := testenv.Context(t)
	testenv.SetAWSEnv(t, testenv.SQS, testenv.DynamoDB)
	sq := testenv.SQSClient(t)
	suffix := strconv.FormatInt(time.Now().UnixNano(), 36)
	var urls []string
	for _, name := range []string{"metrics-chatbot-", "metrics-bulk-"} {
		urls = append(urls, testenv.CreateQueue(ctx, t, sq, name+suffix, nil))
	}
	// 10 calls a second allowed, the worker told 50: 429s, a cooldown, a rate drop.
	fs := fakespotify.New(fakespotify.Config{ClientID: "test-client", ClientSecret: secret, Limit: 10, Window: time.Second})
	srv := httptest.NewServer(fs)
	defer srv.Close()
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	env := withCredentials(map[string]string{
		"QUEUE_URL": urls[0], "BULK_QUEUE_URL": urls[1],
		"STORE_URL": "dynamodb:tracks-" + suffix, "ARTISTS_TABLE": "artists-" + suffix, "CREATE_TABLES": "true",
		"SPOTIFY_API_URL": srv.URL + "/v1", "SPOTIFY_TOKEN_URL": srv.URL + "/api/token",
		"SPOTIFY_RATE": "50", "RECEIVE_WAIT_TIME": "1s",
		"HTTP_ADDR": fmt.Sprintf("127.0.0.1:%d", port), "LOG_FORMAT": "json",
	})
	runCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr testutil.Buffer
	done := make(chan int, 1)
	go func() { done <- workercmd.Run(runCtx, nil, getenv(env), io.Discard, &stderr) }()

	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	base := fmt.Sprintf("http://127.0.0.1:%d/metrics", port)
	var before map[string]float64
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", port)); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				before = scrape(t, client, base)
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the worker never got ready\n%s", stderr.String())
		}
	}

	chatbot, bulk := ids("metrics-chatbot", 10), ids("metrics-bulk", 30)
	for i, lane := range [][]string{chatbot, bulk} {
		p := producer.New(sqsqueue.New(sq, urls[i], sqsqueue.Options{}), producer.Options{})
		if sum, err := p.Enqueue(ctx, lane...); err != nil || sum.Err() != nil {
			t.Fatal(err, sum.Err())
		}
	}
	var after map[string]float64
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		after = scrape(t, client, base)
		if after[`sixpotify_messages_deleted_total{lane="bulk"}`] >= 30 && after[`sixpotify_messages_deleted_total{lane="chatbot"}`] >= 10 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the work did not finish within 60s\n%s", stderr.String())
		}
	}
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("exit code %d\n%s", code, stderr.String())
	}

	moved := []string{
		`sixpotify_messages_received_total{lane="chatbot"}`, `sixpotify_messages_received_total{lane="bulk"}`,
		`sixpotify_receive_calls_total{lane="chatbot"}`, `sixpotify_receive_calls_total{lane="bulk"}`,
		`sixpotify_receives_empty_total{lane="chatbot"}`,
		`sixpotify_messages_processed_total{lane="chatbot",outcome="ok"}`, `sixpotify_messages_processed_total{lane="bulk",outcome="ok"}`,
		`sixpotify_messages_deleted_total{lane="chatbot"}`, `sixpotify_delete_batch_calls_total{lane="bulk"}`,
		`sixpotify_message_process_duration_seconds_count{lane="bulk"}`,
		`sixpotify_spotify_requests_total{code="200"}`, `sixpotify_spotify_requests_total{code="429"}`,
		`sixpotify_spotify_request_duration_seconds_count`,
		`sixpotify_spotify_retries_total{cause="rate_limited"}`, `sixpotify_spotify_cooldowns_total`,
		`sixpotify_store_save_duration_seconds_count`,
		`sixpotify_dynamodb_batch_write_calls_total`, `sixpotify_dynamodb_items_put_total`,
	}
	for _, series := range moved {
		if after[series] <= before[series] {
			t.Errorf("%s did not move: %v before, %v after", series, before[series], after[series])
		}
	}
	// The token is fetched at start, before the first scrape may come.
	if got := after[`sixpotify_spotify_token_requests_total{result="ok"}`]; got < 1 {
		t.Errorf(`sixpotify_spotify_token_requests_total{result="ok"} = %v; want at least 1`, got)
	}
	if got := after[`sixpotify_spotify_rate_limit_requests_per_second`]; got <= 0 || got >= 50 {
		t.Errorf("sixpotify_spotify_rate_limit_requests_per_second = %v after 429s; want it below the ceiling of 50", got)
	}
	for _, series := range []string{`sixpotify_artists_in_flight{lane="chatbot"}`, `sixpotify_spotify_cooldown_remaining_seconds`} {
		if _, ok := after[series]; !ok {
			t.Errorf("%s is missing", series)
		}
	}
}

func ids(seed string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = storetest.ID(fmt.Sprint(seed, i))
	}
	return out
}
