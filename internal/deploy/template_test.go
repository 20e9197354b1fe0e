package deploy

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sixpotify/top-tracks/internal/producercmd"
	"github.com/sixpotify/top-tracks/internal/workercmd"
	"github.com/sixpotify/top-tracks/worker"
)

// Variables read by the AWS SDK rather than by the project's configuration.
var sdkVariables = set("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL_SQS", "AWS_ENDPOINT_URL_DYNAMODB")

// readElsewhere reports whether a worker variable is read by someone other
// than the worker's configuration: the AWS SDK, the Go runtime (GOMAXPROCS),
// or OpenTelemetry's SDK (OTEL_*, as the contract says).
func readElsewhere(name string) bool {
	return sdkVariables[name] || name == "GOMAXPROCS" || strings.HasPrefix(name, "OTEL_")
}

// The contract: on SIGTERM the worker exits within 25 s.
const contractStop = 25 * time.Second

// container returns the task definition's container named name.
func (c *cfn) container(t *testing.T, taskDef, name string) map[string]any {
	t.Helper()
	defs, _ := c.props(t, taskDef)["ContainerDefinitions"].([]any)
	for _, d := range defs {
		if m, ok := d.(map[string]any); ok && m["Name"] == name {
			return m
		}
	}
	t.Fatalf("%s: no container %q", taskDef, name)
	return nil
}

// containerEnv returns a container's Environment, evaluated, and the names
// of its Secrets.
func (c *cfn) containerEnv(t *testing.T, ctr map[string]any) (env map[string]string, secrets map[string]any) {
	t.Helper()
	env, secrets = map[string]string{}, map[string]any{}
	// Evaluated first, so that an entry under Fn::If is there or not as
	// the conditions say.
	ev, err := c.eval(ctr["Environment"])
	if err != nil {
		t.Fatalf("environment: %v", err)
	}
	list, _ := ev.([]any)
	for _, e := range list {
		m, _ := e.(map[string]any)
		name, _ := m["Name"].(string)
		if _, dup := env[name]; dup {
			t.Errorf("environment: %s twice", name)
		}
		v, err := scalarString(m["Value"])
		if err != nil {
			t.Fatalf("environment %s: %v", name, err)
		}
		env[name] = v
	}
	sl, _ := ctr["Secrets"].([]any)
	for _, s := range sl {
		m, _ := s.(map[string]any)
		name, _ := m["Name"].(string)
		secrets[name] = m["ValueFrom"]
	}
	return env, secrets
}

func getenvFrom(m map[string]string, asked map[string]bool) func(string) (string, bool) {
	return func(k string) (string, bool) {
		if asked != nil {
			asked[k] = true
		}
		v, ok := m[k]
		return v, ok
	}
}

// workerSetup returns the worker container's environment with a placeholder
// for each secret, as ECS gives it to the process.
func workerSetup(t *testing.T, c *cfn) (ctr map[string]any, env map[string]string, secrets map[string]any) {
	t.Helper()
	ctr = c.container(t, "WorkerTaskDefinition", "worker")
	env, secrets = c.containerEnv(t, ctr)
	full := map[string]string{}
	for k, v := range env {
		full[k] = v
	}
	for k := range secrets {
		full[k] = "placeholder-" + strings.ToLower(k)
	}
	return ctr, full, secrets
}

var failingVar = regexp.MustCompile(`^([A-Z][A-Z0-9_]*) \(--`)

// TestWorkerEnvironment runs the worker's own configuration loader on the
// task definition's environment.
func TestWorkerEnvironment(t *testing.T) {
	c := loadTemplate(t)
	ctr, env, secrets := workerSetup(t, c)

	asked := map[string]bool{}
	cfg, err := workercmd.Load(nil, getenvFrom(env, asked), io.Discard)
	if err != nil {
		t.Fatalf("workercmd.Load with the template's environment: %v", err)
	}
	for name := range env {
		if !asked[name] && !readElsewhere(name) {
			t.Errorf("the task sets %s, which the worker does not read", name)
		}
	}

	// Every variable the worker requires is given, the secret ones as Secrets.
	plain, _ := c.containerEnv(t, ctr)
	_, err = workercmd.Load(nil, getenvFrom(plain, nil), io.Discard)
	if err == nil {
		t.Fatal("workercmd.Load without the secrets succeeded: the worker requires the Spotify credentials")
	}
	required := map[string]bool{}
	for _, line := range strings.Split(err.Error(), "\n") {
		m := failingVar.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("without the secrets, an error naming no variable: %q", line)
		}
		required[m[1]] = true
	}
	for name := range required {
		if _, ok := secrets[name]; !ok {
			t.Errorf("the worker requires %s, which the task definition leaves to no secret", name)
		}
	}
	for _, name := range []string{"SPOTIFY_CLIENT_ID", "SPOTIFY_CLIENT_SECRET"} {
		if !required[name] {
			t.Errorf("the worker no longer requires %s: review the task's Secrets", name)
		}
		if _, plain := plain[name]; plain {
			t.Errorf("%s is in the plain Environment; it belongs in Secrets", name)
		}
		vf, err := c.evalString(secrets[name])
		if err != nil {
			t.Fatalf("secret %s: %v", name, err)
		}
		if !refersTo(secrets[name], "SpotifySecretArn") || !strings.HasPrefix(vf, "PARAM-SpotifySecretArn:") {
			t.Errorf("secret %s comes from %q, want a JSON key of SpotifySecretArn", name, vf)
		}
	}

	// What the configuration resolved to, against the resources.
	mustRef := func(res string) string {
		v, err := c.ref(res)
		if err != nil {
			t.Fatal(err)
		}
		s, _ := v.(string)
		return s
	}
	tracks, artists := mustRef("TracksTable"), mustRef("ArtistsTable")
	got := map[string]string{
		"QUEUE_URL": cfg.QueueURL, "BULK_QUEUE_URL": cfg.BulkQueueURL,
		"STORE_URL": cfg.StoreURL, "ARTISTS_TABLE": cfg.ArtistsTable, "LOG_FORMAT": cfg.LogFormat,
	}
	want := map[string]string{
		"QUEUE_URL": mustRef("ChatbotQueue"), "BULK_QUEUE_URL": mustRef("BulkQueue"),
		"STORE_URL": "dynamodb:" + tracks, "ARTISTS_TABLE": artists, "LOG_FORMAT": "json",
	}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("worker configuration (-got +want):\n%s", diff)
	}
	rate, err := strconv.ParseFloat(fmt.Sprint(c.params["SpotifyRatePerTask"]), 64)
	if err != nil || cfg.Rate != rate {
		t.Errorf("SPOTIFY_RATE resolved to %v, want SpotifyRatePerTask's default %v", cfg.Rate, c.params["SpotifyRatePerTask"])
	}
	if cfg.CreateTables {
		t.Error("CREATE_TABLES is on: production tables belong to the template, and the task role cannot create them")
	}

	// The health server's port is the one the task maps and labels.
	_, port, err := net.SplitHostPort(cfg.HTTPAddr)
	if err != nil {
		t.Fatalf("HTTP_ADDR %q: %v", cfg.HTTPAddr, err)
	}
	var mapped []string
	pms, _ := ctr["PortMappings"].([]any)
	for _, pm := range pms {
		m, _ := pm.(map[string]any)
		mapped = append(mapped, fmt.Sprint(m["ContainerPort"]))
	}
	if len(mapped) != 1 || mapped[0] != port {
		t.Errorf("PortMappings %v, want the HTTP_ADDR port %s", mapped, port)
	}
	if labels, _ := ctr["DockerLabels"].(map[string]any); labels != nil {
		if p, ok := labels["ECS_PROMETHEUS_EXPORTER_PORT"]; ok && fmt.Sprint(p) != port {
			t.Errorf("ECS_PROMETHEUS_EXPORTER_PORT %v, want %s", p, port)
		}
	}
}

// producerVariables returns the variables the producer command reads:
// every variable it looks up while parsing each command's line (the run
// then stops at the store that does not exist).
func producerVariables(t *testing.T) map[string]bool {
	t.Helper()
	asked := map[string]bool{}
	env := map[string]string{"STORE_URL": "sqlite:" + t.TempDir() + "/missing.db"}
	for _, args := range [][]string{{"enqueue", "--queue-url", "ftp://refused"}, {"reprocess", "--dry-run"}} {
		producercmd.Run(t.Context(), args, getenvFrom(env, asked), strings.NewReader(""), io.Discard, io.Discard)
	}
	if len(asked) == 0 {
		t.Fatal("the producer looked up no variable")
	}
	return asked
}

var helpFlag = regexp.MustCompile(`--([a-z][a-z-]*)`)

// producerFlags returns the flags the producer's help lists.
func producerFlags(t *testing.T) map[string]bool {
	t.Helper()
	found := map[string]bool{}
	for _, cmd := range []string{"enqueue", "reprocess"} {
		var out strings.Builder
		if code := producercmd.Run(t.Context(), []string{"help", cmd}, getenvFrom(nil, nil), strings.NewReader(""), &out, io.Discard); code != 0 {
			t.Fatalf("producer help %s exited %d", cmd, code)
		}
		for _, m := range helpFlag.FindAllStringSubmatch(out.String(), -1) {
			found[m[1]] = true
		}
	}
	return found
}

func TestProducerTaskDefinition(t *testing.T) {
	c := loadTemplate(t)
	ctr := c.container(t, "ProducerTaskDefinition", "producer")
	env, secrets := c.containerEnv(t, ctr)
	vars := producerVariables(t)
	for name := range env {
		if !vars[name] && !sdkVariables[name] {
			t.Errorf("the producer task sets %s, which the producer does not read", name)
		}
	}
	if len(secrets) != 0 {
		t.Errorf("the producer task gets secrets %v it does not need", sortedKeys(boolKeys(secrets)))
	}
	if env["BULK_QUEUE_URL"] == "" || env["BULK_QUEUE_URL"] == env["QUEUE_URL"] {
		t.Errorf("BULK_QUEUE_URL %q: reprocess must send to the bulk lane", env["BULK_QUEUE_URL"])
	}
	if bulk := mustString(t, c, map[string]any{"Ref": "BulkQueue"}); env["BULK_QUEUE_URL"] != bulk {
		t.Errorf("BULK_QUEUE_URL %q, want the BulkQueue %q", env["BULK_QUEUE_URL"], bulk)
	}
	ep, _ := ctr["EntryPoint"].([]any)
	if len(ep) != 1 || ep[0] != "/usr/local/bin/producer" {
		t.Errorf("producer EntryPoint %v, want [/usr/local/bin/producer]", ep)
	}
	if !refersTo(c.props(t, "ProducerTaskDefinition")["TaskRoleArn"], "ProducerTaskRole") {
		t.Error("the producer task does not run as ProducerTaskRole")
	}
}

func boolKeys(m map[string]any) map[string]bool {
	b := map[string]bool{}
	for k := range m {
		b[k] = true
	}
	return b
}

func mustString(t *testing.T, c *cfn, v any) string {
	t.Helper()
	s, err := c.evalString(v)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// maxDrainTimeout finds the largest DRAIN_TIMEOUT (in whole seconds) that
// workercmd.Load accepts, and checks it refuses a millisecond more.
func maxDrainTimeout(t *testing.T, env map[string]string) time.Duration {
	t.Helper()
	load := func(d time.Duration) error {
		e := map[string]string{}
		for k, v := range env {
			e[k] = v
		}
		e["DRAIN_TIMEOUT"] = d.String()
		_, err := workercmd.Load(nil, getenvFrom(e, nil), io.Discard)
		return err
	}
	var best time.Duration
	for s := 1; s <= 120; s++ {
		if d := time.Duration(s) * time.Second; load(d) == nil {
			best = d
		}
	}
	if best == 0 {
		t.Fatal("workercmd.Load accepts no DRAIN_TIMEOUT from 1s to 120s")
	}
	if load(best+time.Millisecond) == nil {
		t.Fatalf("workercmd.Load accepts DRAIN_TIMEOUT %v: its bound is not whole seconds; update the test", best+time.Millisecond)
	}
	return best
}

// TestStopTimeout checks the task's StopTimeout against the worker's stop:
// DRAIN_TIMEOUT for in-flight work, then worker.StopMargin for giving back
// what was cancelled and the last batch deletes (the worker holds them to
// that deadline), then the health server's shutdown.
func TestStopTimeout(t *testing.T) {
	c := loadTemplate(t)
	ctr, env, _ := workerSetup(t, c)
	stop, ok := ctr["StopTimeout"].(int)
	if !ok {
		t.Fatalf("the worker container has no StopTimeout (ECS's default is 30 s); got %v", ctr["StopTimeout"])
	}
	stopTimeout := time.Duration(stop) * time.Second
	if stopTimeout > 120*time.Second {
		t.Errorf("StopTimeout %v: Fargate allows at most 120 s", stopTimeout)
	}

	cfg, err := workercmd.Load(nil, getenvFrom(env, nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	drain := cfg.Options.DrainTimeout
	maxDrain := maxDrainTimeout(t, env)
	margin, shutdown := worker.StopMargin, workercmd.ShutdownTimeout
	t.Logf("DRAIN_TIMEOUT %v (at most %v), give-back and last deletes %v, HTTP shutdown %v, StopTimeout %v",
		drain, maxDrain, margin, shutdown, stopTimeout)

	if worst := maxDrain + margin + shutdown; stopTimeout <= worst {
		t.Errorf("StopTimeout %v does not exceed the largest DRAIN_TIMEOUT %v + stop margin %v + shutdown %v = %v",
			stopTimeout, maxDrain, margin, shutdown, worst)
	}
	if worst := maxDrain + margin + shutdown; worst > contractStop {
		t.Errorf("with DRAIN_TIMEOUT %v the stop may take %v (+ stop margin %v + HTTP shutdown %v), more than the contract's %v",
			maxDrain, worst, margin, shutdown, contractStop)
	}
	if stopTimeout <= contractStop {
		t.Errorf("StopTimeout %v leaves the worker no margin over the contract's %v", stopTimeout, contractStop)
	}
	// A message of a stopping task must not go to another task before
	// the stopping one has finished or given it back.
	for _, q := range []string{"ChatbotQueue", "BulkQueue"} {
		vt, _ := c.props(t, q)["VisibilityTimeout"].(int)
		if time.Duration(vt)*time.Second < stopTimeout {
			t.Errorf("%s VisibilityTimeout %d s is shorter than StopTimeout %v", q, vt, stopTimeout)
		}
	}
}

// TestHealthCheck runs the container's health check command through the
// worker's own entry point against a local /healthz.
func TestHealthCheck(t *testing.T) {
	c := loadTemplate(t)
	ctr, env, _ := workerSetup(t, c)
	hc, _ := ctr["HealthCheck"].(map[string]any)
	cmdv, _ := hc["Command"].([]any)
	want := []any{"CMD", "/usr/local/bin/worker", "healthcheck"}
	if diff := cmp.Diff(cmdv, want); diff != "" {
		t.Fatalf("HealthCheck.Command (-got +want):\n%s", diff)
	}
	if d := dockerfileHealthcheck(t); !cmp.Equal(append([]any{"CMD"}, d...), want) {
		t.Errorf("the Dockerfile's HEALTHCHECK runs %v, the task's %v", d, cmdv[1:])
	}
	interval, _ := hc["Interval"].(int)
	timeout, _ := hc["Timeout"].(int)
	if timeout <= 0 || timeout >= interval {
		t.Errorf("HealthCheck Timeout %d s, Interval %d s: want 0 < Timeout < Interval", timeout, interval)
	}

	for _, tc := range []struct {
		status int
		code   int
	}{{http.StatusOK, 0}, {http.StatusInternalServerError, 1}} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/healthz" {
				http.NotFound(w, r)
				return
			}
			w.WriteHeader(tc.status)
		}))
		e := map[string]string{}
		for k, v := range env {
			e[k] = v
		}
		e["HTTP_ADDR"] = srv.Listener.Addr().String()
		args := make([]string, 0, len(cmdv)-2)
		for _, a := range cmdv[2:] {
			args = append(args, a.(string))
		}
		var stderr strings.Builder
		code := workercmd.Run(context.Background(), args, getenvFrom(e, nil), io.Discard, &stderr)
		http.DefaultClient.CloseIdleConnections()
		srv.Close()
		if code != tc.code {
			t.Errorf("worker %v with /healthz answering %d exited %d, want %d (stderr %q)", args, tc.status, code, tc.code, stderr.String())
		}
	}
}

func TestQueues(t *testing.T) {
	c := loadTemplate(t)
	lanes := map[string]string{"ChatbotQueue": "ChatbotDeadLetterQueue", "BulkQueue": "BulkDeadLetterQueue"}
	for q, dlq := range lanes {
		p := c.props(t, q)
		rp, _ := p["RedrivePolicy"].(map[string]any)
		if !refersTo(rp["deadLetterTargetArn"], dlq) {
			t.Errorf("%s: RedrivePolicy.deadLetterTargetArn %v, want %s's ARN", q, rp["deadLetterTargetArn"], dlq)
		}
		if n, _ := rp["maxReceiveCount"].(int); n < 2 || n > 10 {
			t.Errorf("%s: maxReceiveCount %v, want 2 to 10", q, rp["maxReceiveCount"])
		}
		if w, _ := p["ReceiveMessageWaitTimeSeconds"].(int); w < 1 || w > 20 {
			t.Errorf("%s: ReceiveMessageWaitTimeSeconds %v, want long polling (1 to 20)", q, p["ReceiveMessageWaitTimeSeconds"])
		}
		dp := c.props(t, dlq)
		if _, ok := dp["RedrivePolicy"]; ok {
			t.Errorf("%s: a dead-letter queue with a redrive policy of its own", dlq)
		}
		qr, _ := p["MessageRetentionPeriod"].(int)
		dr, _ := dp["MessageRetentionPeriod"].(int)
		if dr <= qr {
			t.Errorf("%s keeps messages %d s, not longer than %s's %d s: a message's age counts from its first enqueue", dlq, dr, q, qr)
		}
	}
	if n := len(c.resourcesOfType("AWS::SQS::Queue")); n != 2*len(lanes) {
		t.Errorf("%d queues, want the two lanes and their dead-letter queues", n)
	}
}

func TestTables(t *testing.T) {
	c := loadTemplate(t)
	for _, tc := range []struct {
		res  string
		keys map[string]string
	}{
		{"TracksTable", map[string]string{"artist_id": "HASH", "id": "RANGE"}},
		{"ArtistsTable", map[string]string{"artist_id": "HASH"}},
	} {
		p := c.props(t, tc.res)
		if p["BillingMode"] != "PAY_PER_REQUEST" {
			t.Errorf("%s: BillingMode %v, want PAY_PER_REQUEST", tc.res, p["BillingMode"])
		}
		keys, types := map[string]string{}, map[string]string{}
		ks, _ := p["KeySchema"].([]any)
		for _, k := range ks {
			m, _ := k.(map[string]any)
			keys[fmt.Sprint(m["AttributeName"])] = fmt.Sprint(m["KeyType"])
		}
		ads, _ := p["AttributeDefinitions"].([]any)
		for _, a := range ads {
			m, _ := a.(map[string]any)
			types[fmt.Sprint(m["AttributeName"])] = fmt.Sprint(m["AttributeType"])
		}
		if diff := cmp.Diff(keys, tc.keys); diff != "" {
			t.Errorf("%s key schema (-got +want):\n%s", tc.res, diff)
		}
		wantTypes := map[string]string{}
		for k := range tc.keys {
			wantTypes[k] = "S"
		}
		if diff := cmp.Diff(types, wantTypes); diff != "" {
			t.Errorf("%s attribute definitions (-got +want):\n%s", tc.res, diff)
		}
		if r := c.resource(t, tc.res)["DeletionPolicy"]; r != "Retain" {
			t.Errorf("%s: DeletionPolicy %v, want Retain", tc.res, r)
		}
	}
}

// policyStatement is one statement of an IAM policy, evaluated.
type policyStatement struct {
	Sid       string
	Effect    string
	Actions   []string
	Resources []string
}

func asStrings(t *testing.T, c *cfn, v any) []string {
	t.Helper()
	ev := v
	if c != nil {
		var err error
		if ev, err = c.eval(v); err != nil {
			t.Fatal(err)
		}
	}
	switch x := ev.(type) {
	case nil:
		return nil
	case string:
		return []string{x}
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			s, err := scalarString(e)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, s)
		}
		return out
	}
	t.Fatalf("%v (%T) is neither a string nor a list", ev, ev)
	return nil
}

func statements(t *testing.T, c *cfn, doc any) []policyStatement {
	t.Helper()
	m, _ := doc.(map[string]any)
	var out []policyStatement
	list, ok := m["Statement"].([]any)
	if !ok {
		list = []any{m["Statement"]}
	}
	for _, s := range list {
		sm, _ := s.(map[string]any)
		for _, bad := range []string{"NotAction", "NotResource"} {
			if _, ok := sm[bad]; ok {
				t.Errorf("a statement with %s: list what is allowed instead", bad)
			}
		}
		sid, _ := sm["Sid"].(string)
		effect, _ := sm["Effect"].(string)
		out = append(out, policyStatement{Sid: sid, Effect: effect,
			Actions: asStrings(t, c, sm["Action"]), Resources: asStrings(t, c, sm["Resource"])})
	}
	return out
}

// roleStatements returns the statements of a role's inline policies, and
// fails the test on any other way of granting it permissions.
func roleStatements(t *testing.T, c *cfn, role string) []policyStatement {
	t.Helper()
	p := c.props(t, role)
	if _, ok := p["ManagedPolicyArns"]; ok {
		t.Errorf("%s has managed policies: the task roles are granted inline, exactly", role)
	}
	for _, name := range c.resourcesOfType("AWS::IAM::Policy") {
		for _, r := range c.props(t, name)["Roles"].([]any) {
			if refersTo(r, role) {
				t.Errorf("%s is attached to %s: keep the task roles' grants inline", name, role)
			}
		}
	}
	var out []policyStatement
	for _, sts := range rolePolicies(t, c, role) {
		out = append(out, sts...)
	}
	return out
}

// rolePolicies returns a role's inline policies by name, evaluated, so that
// a policy under Fn::If is there or not as the conditions say.
func rolePolicies(t *testing.T, c *cfn, role string) map[string][]policyStatement {
	t.Helper()
	ev, err := c.eval(c.props(t, role)["Policies"])
	if err != nil {
		t.Fatalf("%s policies: %v", role, err)
	}
	pols, _ := ev.([]any)
	out := map[string][]policyStatement{}
	for _, pol := range pols {
		pm, _ := pol.(map[string]any)
		name, _ := pm["PolicyName"].(string)
		if _, dup := out[name]; dup {
			t.Errorf("%s: two policies named %q", role, name)
		}
		out[name] = statements(t, c, pm["PolicyDocument"])
	}
	return out
}

// checkGrants compares the actions statements allow with want, and checks
// every resource is one of allowed (by service).
func checkGrants(t *testing.T, what string, sts []policyStatement, want map[string]bool, allowed map[string]map[string]bool) {
	t.Helper()
	got := map[string]bool{}
	for _, s := range sts {
		if s.Effect != "Allow" {
			t.Errorf("%s: statement %q has Effect %q", what, s.Sid, s.Effect)
		}
		services := map[string]bool{}
		for _, a := range s.Actions {
			if strings.ContainsAny(a, "*?") {
				t.Errorf("%s: wildcard action %s", what, a)
			}
			svc, _, _ := strings.Cut(a, ":")
			services[svc] = true
			got[a] = true
		}
		if len(s.Resources) == 0 {
			t.Errorf("%s: statement %q names no resource", what, s.Sid)
		}
		for _, r := range s.Resources {
			for svc := range services {
				if !allowed[svc][r] {
					t.Errorf("%s: statement %q grants %s actions on %s, want only %v", what, s.Sid, svc, r, sortedKeys(allowed[svc]))
				}
			}
		}
	}
	for a := range devOnlyActions {
		if got[a] {
			t.Errorf("%s grants %s, which only CREATE_TABLES (development) uses", what, a)
		}
	}
	if diff := cmp.Diff(sortedKeys(got), sortedKeys(want)); diff != "" {
		t.Errorf("%s: actions (-granted +called by the code):\n%s", what, diff)
	}
}

// TestTaskRoles checks the task roles and deploy/iam-policy.json grant
// exactly the SQS and DynamoDB operations the code calls, on the stack's
// queues and tables only.
func TestTaskRoles(t *testing.T) {
	c := loadTemplate(t)
	ca := deriveActions(t)
	arn := func(res string) string {
		return mustString(t, c, map[string]any{"Fn::GetAtt": []any{res, "Arn"}})
	}
	if !refersTo(c.props(t, "WorkerTaskDefinition")["TaskRoleArn"], "WorkerTaskRole") {
		t.Fatal("the worker task does not run as WorkerTaskRole")
	}
	// The worker's own policy; the collector's, in the same task and so
	// under the same role, is TestCollectorGrants'.
	workerPolicies := rolePolicies(t, c, "WorkerTaskRole")
	for name := range workerPolicies {
		if name != "worker" && name != collectorPolicy {
			t.Errorf("WorkerTaskRole has a policy %q: want %q and, with the collector, %q", name, "worker", collectorPolicy)
		}
	}
	roleStatements(t, c, "WorkerTaskRole") // no managed or attached policies
	checkGrants(t, "WorkerTaskRole", workerPolicies["worker"], ca.worker, map[string]map[string]bool{
		"sqs":      set(arn("ChatbotQueue"), arn("BulkQueue")),
		"dynamodb": set(arn("TracksTable"), arn("ArtistsTable")),
	})
	checkGrants(t, "ProducerTaskRole", roleStatements(t, c, "ProducerTaskRole"), ca.producer, map[string]map[string]bool{
		"sqs":      set(arn("BulkQueue")),
		"dynamodb": set(arn("ArtistsTable"), arn("TracksTable")), // TracksTable: the Query of enqueue --wait
	})
	lakePrefix, _ := c.params["LakePrefix"].(string)
	checkGrants(t, "ExportTaskRole", roleStatements(t, c, "ExportTaskRole"), ca.export, map[string]map[string]bool{
		"dynamodb": set(arn("TracksTable"), arn("ArtistsTable")),
		"s3":       set(arn("LakeBucket"), arn("LakeBucket")+"/"+lakePrefix+"/*"),
	})

	// deploy/iam-policy.json: one policy for both binaries, with placeholders.
	var doc any
	if err := json.Unmarshal(readRepoFile(t, "deploy/iam-policy.json"), &doc); err != nil {
		t.Fatalf("deploy/iam-policy.json: %v", err)
	}
	if v := doc.(map[string]any)["Version"]; v != "2012-10-17" {
		t.Errorf("deploy/iam-policy.json: Version %v, want 2012-10-17", v)
	}
	ph := func(svc, name string) string { return "arn:aws:" + svc + ":REGION:ACCOUNT_ID:" + name }
	tracks, _ := c.params["TracksTableName"].(string)
	artists, _ := c.params["ArtistsTableName"].(string)
	code, _ := splitCollectorStatements(statements(t, nil, doc))
	checkGrants(t, "deploy/iam-policy.json", code, union(ca.worker, ca.producer, ca.export), map[string]map[string]bool{
		"sqs":      set(ph("sqs", "sixpotify-chatbot"), ph("sqs", "sixpotify-bulk")),
		"dynamodb": set(ph("dynamodb", "table/"+tracks), ph("dynamodb", "table/"+artists)),
		"s3":       set("arn:aws:s3:::LAKE_BUCKET", "arn:aws:s3:::LAKE_BUCKET/"+lakePrefix+"/*"),
	})
}

// TestScaling checks the service scales on backlog per task, never past
// the Spotify budget.
func TestScaling(t *testing.T) {
	c := loadTemplate(t)
	num := func(name string) float64 {
		f, err := strconv.ParseFloat(fmt.Sprint(c.params[name]), 64)
		if err != nil {
			t.Fatalf("parameter %s: default %v is not a number", name, c.params[name])
		}
		return f
	}
	budget, rate, maxTasks, minTasks := num("SpotifyBudget"), num("SpotifyRatePerTask"), num("MaxTasks"), num("MinTasks")
	if maxTasks*rate > budget {
		t.Errorf("MaxTasks %v x SpotifyRatePerTask %v = %v exceeds SpotifyBudget %v", maxTasks, rate, maxTasks*rate, budget)
	}
	if (maxTasks+1)*rate <= budget {
		t.Errorf("MaxTasks %v is below floor(SpotifyBudget %v / SpotifyRatePerTask %v)", maxTasks, budget, rate)
	}
	if minTasks < 1 || minTasks > maxTasks {
		t.Errorf("MinTasks %v, want 1 to MaxTasks %v", minTasks, maxTasks)
	}
	_, env, _ := workerSetup(t, c)
	if env["SPOTIFY_RATE"] != fmt.Sprint(c.params["SpotifyRatePerTask"]) {
		t.Errorf("SPOTIFY_RATE %q, want SpotifyRatePerTask", env["SPOTIFY_RATE"])
	}

	st := c.props(t, "ScalableTarget")
	if !refersTo(st["MaxCapacity"], "MaxTasks") || !refersTo(st["MinCapacity"], "MinTasks") {
		t.Errorf("ScalableTarget capacity %v..%v, want MinTasks..MaxTasks", st["MinCapacity"], st["MaxCapacity"])
	}
	if rid := fmt.Sprint(st["ResourceId"]); !refersTo(st["ResourceId"], "WorkerService") || st["ScalableDimension"] != "ecs:service:DesiredCount" {
		t.Errorf("ScalableTarget %s %v: want the worker service's desired count", rid, st["ScalableDimension"])
	}
	if _, ok := c.props(t, "WorkerService")["DesiredCount"]; ok {
		t.Error("WorkerService sets DesiredCount: a stack update would reset what auto scaling chose")
	}

	pol := c.props(t, "BacklogScalingPolicy")
	if pol["PolicyType"] != "TargetTrackingScaling" || !refersTo(pol["ScalingTargetId"], "ScalableTarget") {
		t.Fatalf("BacklogScalingPolicy: %v on %v, want TargetTrackingScaling on ScalableTarget", pol["PolicyType"], pol["ScalingTargetId"])
	}
	cfg, _ := pol["TargetTrackingScalingPolicyConfiguration"].(map[string]any)
	spec, _ := cfg["CustomizedMetricSpecification"].(map[string]any)
	metrics, _ := spec["Metrics"].([]any)
	var (
		queues   = map[string]string{} // id → queue resource
		tasksID  string
		returned []string
	)
	for _, m := range metrics {
		q, _ := m.(map[string]any)
		id, _ := q["Id"].(string)
		if q["ReturnData"] == true {
			returned = append(returned, fmt.Sprint(q["Expression"]))
		}
		ms, ok := q["MetricStat"].(map[string]any)
		if !ok {
			continue
		}
		metric, _ := ms["Metric"].(map[string]any)
		dims, _ := metric["Dimensions"].([]any)
		switch metric["Namespace"].(string) + "/" + metric["MetricName"].(string) {
		case "AWS/SQS/ApproximateNumberOfMessagesVisible":
			for _, d := range dims {
				dm, _ := d.(map[string]any)
				for _, lane := range []string{"ChatbotQueue", "BulkQueue"} {
					if dm["Name"] == "QueueName" && refersTo(dm["Value"], lane) {
						queues[id] = lane
					}
				}
			}
		case "ECS/ContainerInsights/RunningTaskCount":
			ok := false
			for _, d := range dims {
				dm, _ := d.(map[string]any)
				ok = ok || dm["Name"] == "ServiceName" && refersTo(dm["Value"], "WorkerService")
			}
			if ok {
				tasksID = id
			}
		}
	}
	if len(queues) != 2 || tasksID == "" || len(returned) != 1 {
		t.Fatalf("scaling metrics: queues %v, running tasks %q, returned expressions %v; want both lanes' visible messages over the service's RunningTaskCount", queues, tasksID, returned)
	}
	expr := strings.ReplaceAll(returned[0], " ", "")
	for id := range queues {
		if !strings.Contains(expr, id) {
			t.Errorf("the backlog expression %q leaves out %s", returned[0], id)
		}
	}
	if !strings.HasSuffix(expr, "/"+tasksID) {
		t.Errorf("the backlog expression %q does not divide by the running tasks %s", returned[0], tasksID)
	}
	insights := false
	settings, _ := c.props(t, "Cluster")["ClusterSettings"].([]any)
	for _, s := range settings {
		sm, _ := s.(map[string]any)
		insights = insights || sm["Name"] == "containerInsights" && (sm["Value"] == "enabled" || sm["Value"] == "enhanced")
	}
	if !insights {
		t.Error("the cluster does not enable Container Insights, which publishes RunningTaskCount")
	}
}

func TestAlarms(t *testing.T) {
	c := loadTemplate(t)
	type alarm struct{ metric, queue string }
	var got []alarm
	for _, name := range c.resourcesOfType("AWS::CloudWatch::Alarm") {
		p := c.props(t, name)
		if p["Namespace"] != "AWS/SQS" {
			continue
		}
		dims, _ := p["Dimensions"].([]any)
		for _, d := range dims {
			dm, _ := d.(map[string]any)
			for _, q := range c.resourcesOfType("AWS::SQS::Queue") {
				if refersTo(dm["Value"], q) {
					got = append(got, alarm{fmt.Sprint(p["MetricName"]), q})
				}
			}
		}
	}
	for _, want := range []alarm{
		{"ApproximateNumberOfMessagesVisible", "ChatbotDeadLetterQueue"},
		{"ApproximateNumberOfMessagesVisible", "BulkDeadLetterQueue"},
		{"ApproximateAgeOfOldestMessage", "ChatbotQueue"},
	} {
		found := false
		for _, a := range got {
			found = found || a == want
		}
		if !found {
			t.Errorf("no alarm on %s of %s", want.metric, want.queue)
		}
	}
}

// TestTemplateResolves evaluates every resource and output, so that each
// Ref, Fn::GetAtt, Fn::Sub and condition names something that exists.
func TestTemplateResolves(t *testing.T) {
	c := loadTemplate(t)
	for _, sec := range []string{"Resources", "Outputs"} {
		for name, v := range c.section(sec) {
			if _, err := c.eval(v); err != nil {
				t.Errorf("%s %s: %v", sec, name, err)
			}
			if m, ok := v.(map[string]any); ok {
				if cond, ok := m["Condition"].(string); ok {
					if _, err := c.condition(cond); err != nil {
						t.Errorf("%s %s: %v", sec, name, err)
					}
				}
			}
		}
	}
	for name := range c.section("Conditions") {
		if _, err := c.condition(name); err != nil {
			t.Errorf("condition %s: %v", name, err)
		}
	}
}
