package e2e

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/sixpotify/top-tracks/internal/testenv"
)

// otlpSpan is one span an OTLP receiver got.
type otlpSpan struct {
	service, name     string
	trace, id, parent string
	attrs             map[string]string
}

// otlpReceiver is an OTLP/HTTP traces endpoint inside the test: it keeps
// every span it is sent.
type otlpReceiver struct {
	mu    sync.Mutex
	spans []otlpSpan
}

func (r *otlpReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.URL.Path != "/v1/traces" || req.Method != http.MethodPost {
		http.NotFound(w, req)
		return
	}
	var body io.Reader = req.Body
	if req.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(req.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = zr
	}
	raw, err := io.ReadAll(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var in coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(raw, &in); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	for _, rs := range in.GetResourceSpans() {
		service := ""
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.GetKey() == "service.name" {
				service = kv.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				attrs := map[string]string{}
				for _, kv := range s.GetAttributes() {
					attrs[kv.GetKey()] = kv.GetValue().GetStringValue()
				}
				r.spans = append(r.spans, otlpSpan{service: service, name: s.GetName(),
					trace: hex.EncodeToString(s.GetTraceId()), id: hex.EncodeToString(s.GetSpanId()),
					parent: hex.EncodeToString(s.GetParentSpanId()), attrs: attrs})
			}
		}
	}
	r.mu.Unlock()
	out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

func (r *otlpReceiver) all() []otlpSpan {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]otlpSpan(nil), r.spans...)
}

// TestOneTraceFollowsAChatbotRequest: with OpenTelemetry's variables set, one
// artist enqueued by the producer is one trace: the producer's send, the
// worker's delivery (continuing the context the message carried), the
// Spotify call and the DynamoDB write under it, exported over OTLP.
func TestOneTraceFollowsAChatbotRequest(t *testing.T) {
	_, spotifyURL := newFake(t, 0)
	recv := &otlpReceiver{}
	collector := httptest.NewServer(recv)
	t.Cleanup(collector.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sq := testenv.SQSClient(t)
	queueURL, _ := createQueue(ctx, t, sq, uniqueName("trace"), 30, 5)
	ids := artistIDs(7, 1)
	otel := map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": collector.URL, "OTEL_BSP_SCHEDULE_DELAY": "200"}

	env := awsEnv(t)
	env["QUEUE_URL"] = queueURL
	for k, v := range otel {
		env[k] = v
	}
	if code, stdout, stderr := run(t, time.Minute, env, "producer", "enqueue", ids[0]); code != 0 {
		t.Fatalf("producer enqueue exited %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	table, _ := trackTables(t, "tracestrace")
	wenv := workerEnv(t, spotifyURL, queueURL, table)
	wenv["UNTIL_EMPTY"] = "true"
	for k, v := range otel {
		wenv[k] = v
	}
	w := start(t, time.Minute, wenv, "worker")
	if code := w.mustExit(t, 70*time.Second); code != 0 {
		t.Fatalf("worker exited %d, want 0\n%s", code, tail(w.stderr.String()))
	}

	spans := recv.all()
	var send *otlpSpan
	for i, s := range spans {
		if s.service == "sixpotify-producer" && s.name == "sixpotify.send" {
			send = &spans[i]
		}
	}
	if send == nil {
		t.Fatalf("no sixpotify.send span from the producer among %d spans: %v", len(spans), names(spans))
	}
	byID := map[string]otlpSpan{}
	for _, s := range spans {
		if s.trace == send.trace {
			byID[s.id] = s
		}
	}
	var delivery *otlpSpan
	for _, s := range byID {
		if s.service == "sixpotify-worker" && s.name == "sixpotify.delivery" && s.parent == send.id {
			delivery = &s
			break
		}
	}
	if delivery == nil {
		t.Fatalf("no worker delivery span continues the producer's send (trace %s): %v", send.trace, names(spans))
	}
	if got := delivery.attrs["sixpotify.artist_id"]; got != ids[0] {
		t.Errorf("the delivery span's artist = %q, want %q", got, ids[0])
	}
	if got := delivery.attrs["sixpotify.outcome"]; got != "ok" {
		t.Errorf("the delivery span's outcome = %q, want ok", got)
	}
	// Below the delivery: the Spotify call (net/http instrumentation) and the
	// DynamoDB write (AWS SDK instrumentation).
	under := func(s otlpSpan) bool {
		for p := s.parent; p != ""; p = byID[p].parent {
			if p == delivery.id {
				return true
			}
			if _, ok := byID[p]; !ok {
				return false
			}
		}
		return false
	}
	var spotifyCall, dynamoWrite bool
	for _, s := range byID {
		if !under(s) {
			continue
		}
		if strings.HasPrefix(s.name, "HTTP GET") || s.name == "GET" {
			spotifyCall = true
		}
		if strings.HasPrefix(s.name, "DynamoDB") && (strings.Contains(s.name, "Write") || strings.Contains(s.name, "Put") || strings.Contains(s.name, "Update")) {
			dynamoWrite = true
		}
	}
	if !spotifyCall || !dynamoWrite {
		t.Errorf("under the delivery: a Spotify call %v, a DynamoDB write %v; want both. The trace: %v", spotifyCall, dynamoWrite, names(spans))
	}
}

func names(spans []otlpSpan) string {
	var b bytes.Buffer
	for _, s := range spans {
		b.WriteString(s.service + ":" + s.name + " ")
	}
	return b.String()
}
