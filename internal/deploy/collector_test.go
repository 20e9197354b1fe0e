package deploy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.yaml.in/yaml/v3"

	"github.com/sixpotify/top-tracks/internal/metrics"
	"github.com/sixpotify/top-tracks/internal/workercmd"
	"github.com/sixpotify/top-tracks/worker"
)

// The collector beside the worker: its container, its inline policy in
// WorkerTaskRole, its configuration file and the variable that carries it.
const (
	collectorContainer = "otel-collector"
	collectorPolicy    = "collector"
	collectorFile      = "deploy/otel-collector.yaml"
	collectorConfigVar = "AOT_CONFIG_CONTENT"
	clusterLabel       = "ClusterName"
)

// splitCollectorStatements separates a policy's statements for the
// collector (Sid Collector…) from those for the code.
func splitCollectorStatements(sts []policyStatement) (code, collector []policyStatement) {
	for _, s := range sts {
		if strings.HasPrefix(s.Sid, "Collector") {
			collector = append(collector, s)
		} else {
			code = append(code, s)
		}
	}
	return code, collector
}

// evalContainer returns the task definition's container named name, with
// every intrinsic evaluated under the current parameters, or nil when the
// conditions leave it out.
func (c *cfn) evalContainer(t *testing.T, taskDef, name string) map[string]any {
	t.Helper()
	ev, err := c.eval(c.props(t, taskDef)["ContainerDefinitions"])
	if err != nil {
		t.Fatalf("%s containers: %v", taskDef, err)
	}
	list, _ := ev.([]any)
	for _, d := range list {
		if m, ok := d.(map[string]any); ok && m["Name"] == name {
			return m
		}
	}
	return nil
}

// withParams returns the template with parameters overridden.
func withParams(t *testing.T, over map[string]any) *cfn {
	t.Helper()
	c := loadTemplate(t)
	for k, v := range over {
		if _, ok := c.section("Parameters")[k]; !ok {
			t.Fatalf("no parameter %s", k)
		}
		c.params[k] = v
	}
	return c
}

// envRef matches what the collector's configuration may hold with a dollar
// sign: ${env:NAME}, or $$ for a literal one.
var envRef = regexp.MustCompile(`\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}|\$\$|\$`)

// expandCollectorEnv does what the collector's configuration resolver does
// with the file: ${env:NAME} becomes the variable's value and $$ a dollar
// sign. Any other dollar sign is an error (the resolver would read it as a
// variable), and so is a variable env does not set.
func expandCollectorEnv(src string, env map[string]string) (string, []string, error) {
	var (
		errs []error
		used []string
	)
	out := envRef.ReplaceAllStringFunc(src, func(m string) string {
		switch {
		case m == "$$":
			return "$"
		case m == "$":
			errs = append(errs, errors.New("a lone $: write $$ for a dollar sign, ${env:NAME} for a variable"))
			return m
		}
		name := envRef.FindStringSubmatch(m)[1]
		used = append(used, name)
		v, ok := env[name]
		if !ok {
			errs = append(errs, fmt.Errorf("${env:%s}: the collector's container does not set %s", name, name))
		}
		return v
	})
	return out, used, errors.Join(errs...)
}

// The parts of the collector's configuration the tests read. The
// exporters' settings are decoded strictly, against the keys their READMEs
// document, so that a misspelt key fails here instead of at the collector's
// start in AWS.
type collectorConfig struct {
	Receivers struct {
		Prometheus struct {
			TrimMetricSuffixes bool `yaml:"trim_metric_suffixes"`
			Config             struct {
				ScrapeConfigs []scrapeConfig `yaml:"scrape_configs"`
			} `yaml:"config"`
		} `yaml:"prometheus"`
		OTLP struct {
			Protocols struct {
				HTTP *struct {
					Endpoint string `yaml:"endpoint"`
				} `yaml:"http"`
				GRPC *struct {
					Endpoint string `yaml:"endpoint"`
				} `yaml:"grpc"`
			} `yaml:"protocols"`
		} `yaml:"otlp"`
	} `yaml:"receivers"`
	Processors map[string]yaml.Node `yaml:"processors"`
	Exporters  map[string]yaml.Node `yaml:"exporters"`
	Extensions map[string]yaml.Node `yaml:"extensions"`
	Service    struct {
		Extensions []string            `yaml:"extensions"`
		Pipelines  map[string]pipeline `yaml:"pipelines"`
	} `yaml:"service"`
	receiverNames []string
}

type pipeline struct {
	Receivers  []string `yaml:"receivers"`
	Processors []string `yaml:"processors"`
	Exporters  []string `yaml:"exporters"`
}

type scrapeConfig struct {
	JobName         string   `yaml:"job_name"`
	MetricsPath     string   `yaml:"metrics_path"`
	ScrapeProtocols []string `yaml:"scrape_protocols"`
	StaticConfigs   []struct {
		Targets []string          `yaml:"targets"`
		Labels  map[string]string `yaml:"labels"`
	} `yaml:"static_configs"`
	MetricRelabelConfigs []struct {
		SourceLabels []string `yaml:"source_labels"`
		Regex        string   `yaml:"regex"`
		Action       string   `yaml:"action"`
	} `yaml:"metric_relabel_configs"`
}

// awsemfConfig holds the keys the awsemf exporter's README documents.
type awsemfConfig struct {
	LogGroupName                  string              `yaml:"log_group_name"`
	LogStreamName                 string              `yaml:"log_stream_name"`
	LogRetention                  int                 `yaml:"log_retention"`
	Tags                          map[string]string   `yaml:"tags"`
	Namespace                     string              `yaml:"namespace"`
	Endpoint                      string              `yaml:"endpoint"`
	NoVerifySSL                   bool                `yaml:"no_verify_ssl"`
	ProxyAddress                  string              `yaml:"proxy_address"`
	Region                        string              `yaml:"region"`
	RoleARN                       string              `yaml:"role_arn"`
	MaxRetries                    int                 `yaml:"max_retries"`
	DimensionRollupOption         string              `yaml:"dimension_rollup_option"`
	ResourceToTelemetryConversion map[string]bool     `yaml:"resource_to_telemetry_conversion"`
	OutputDestination             string              `yaml:"output_destination"`
	DetailedMetrics               bool                `yaml:"detailed_metrics"`
	ParseJSONEncodedAttrValues    []string            `yaml:"parse_json_encoded_attr_values"`
	MetricDeclarations            []metricDeclaration `yaml:"metric_declarations"`
	MetricDescriptors             []map[string]any    `yaml:"metric_descriptors"`
	RetainInitialValueOfDelta     bool                `yaml:"retain_initial_value_of_delta_metric"`
}

type metricDeclaration struct {
	Dimensions          [][]string       `yaml:"dimensions"`
	MetricNameSelectors []string         `yaml:"metric_name_selectors"`
	LabelMatchers       []map[string]any `yaml:"label_matchers"`
}

// awsxrayConfig holds the keys of the awsxray exporter this file may use.
type awsxrayConfig struct {
	Region             string   `yaml:"region"`
	Endpoint           string   `yaml:"endpoint"`
	RoleARN            string   `yaml:"role_arn"`
	IndexAllAttributes bool     `yaml:"index_all_attributes"`
	IndexedAttributes  []string `yaml:"indexed_attributes"`
}

// cumulativeToDeltaConfig holds the cumulativetodelta processor's keys.
type cumulativeToDeltaConfig struct {
	Include struct {
		Metrics   []string `yaml:"metrics"`
		MatchType string   `yaml:"match_type"`
	} `yaml:"include"`
	Exclude struct {
		Metrics   []string `yaml:"metrics"`
		MatchType string   `yaml:"match_type"`
	} `yaml:"exclude"`
	MaxStaleness string `yaml:"max_staleness"`
	InitialValue string `yaml:"initial_value"`
}

// componentType is the type of a component ID: "awsemf/x" is an awsemf.
func componentType(id string) string {
	typ, _, _ := strings.Cut(id, "/")
	return typ
}

func decodeStrict(n yaml.Node, into any) error {
	b, err := yaml.Marshal(&n)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	return dec.Decode(into)
}

// exporter decodes the exporter of type typ strictly into into, and
// reports whether there is one.
func (cc *collectorConfig) exporter(typ string, into any) (bool, error) {
	for id, n := range cc.Exporters {
		if componentType(id) == typ {
			return true, decodeStrict(n, into)
		}
	}
	return false, nil
}

// parseCollectorConfig expands and parses the collector's configuration,
// and checks its pipelines use only components it defines, and every
// component it defines.
func parseCollectorConfig(src string, env map[string]string) (*collectorConfig, error) {
	expanded, _, err := expandCollectorEnv(src, env)
	if err != nil {
		return nil, err
	}
	var cc collectorConfig
	if err := yaml.Unmarshal([]byte(expanded), &cc); err != nil {
		return nil, err
	}
	var generic struct {
		Receivers map[string]yaml.Node `yaml:"receivers"`
	}
	if err := yaml.Unmarshal([]byte(expanded), &generic); err != nil {
		return nil, err
	}
	for id := range generic.Receivers {
		cc.receiverNames = append(cc.receiverNames, id)
	}
	defined := map[string]map[string]bool{"receivers": {}, "processors": {}, "exporters": {}}
	for _, id := range cc.receiverNames {
		defined["receivers"][id] = true
	}
	for id := range cc.Processors {
		defined["processors"][id] = true
	}
	for id := range cc.Exporters {
		defined["exporters"][id] = true
	}
	used := map[string]map[string]bool{"receivers": {}, "processors": {}, "exporters": {}}
	var errs []error
	if len(cc.Service.Pipelines) == 0 {
		errs = append(errs, errors.New("service.pipelines: none"))
	}
	for name, p := range cc.Service.Pipelines {
		for kind, ids := range map[string][]string{"receivers": p.Receivers, "processors": p.Processors, "exporters": p.Exporters} {
			if kind != "processors" && len(ids) == 0 {
				errs = append(errs, fmt.Errorf("pipeline %s has no %s", name, kind))
			}
			for _, id := range ids {
				used[kind][id] = true
				if !defined[kind][id] {
					errs = append(errs, fmt.Errorf("pipeline %s uses %s %q, which is not defined", name, kind, id))
				}
			}
		}
	}
	for kind, ids := range defined {
		for id := range ids {
			if !used[kind][id] {
				errs = append(errs, fmt.Errorf("%s %q is defined but in no pipeline", kind, id))
			}
		}
	}
	for _, id := range cc.Service.Extensions {
		if _, ok := cc.Extensions[id]; !ok {
			errs = append(errs, fmt.Errorf("service.extensions names %q, which is not defined", id))
		}
	}
	return &cc, errors.Join(errs...)
}

// collectorSetup returns the template's collector container, its
// environment, and the configuration it carries.
func collectorSetup(t *testing.T, c *cfn) (ctr map[string]any, env map[string]string, cfg string) {
	t.Helper()
	ctr = c.evalContainer(t, "WorkerTaskDefinition", collectorContainer)
	if ctr == nil {
		t.Fatalf("WorkerTaskDefinition has no container %q", collectorContainer)
	}
	env, secrets := c.containerEnv(t, ctr)
	if len(secrets) != 0 {
		t.Errorf("the collector gets secrets %v it does not need", sortedKeys(boolKeys(secrets)))
	}
	cfg, ok := env[collectorConfigVar]
	if !ok {
		t.Fatalf("the collector's container does not set %s", collectorConfigVar)
	}
	return ctr, env, cfg
}

// TestCollectorConfigFile checks the template carries deploy/otel-collector.yaml
// byte for byte as the collector's configuration.
func TestCollectorConfigFile(t *testing.T) {
	_, _, got := collectorSetup(t, loadTemplate(t))
	want := string(readRepoFile(t, collectorFile))
	if got != want {
		t.Errorf("the template's %s is not %s byte for byte; copy the file into the template (-template +file):\n%s",
			collectorConfigVar, collectorFile, cmp.Diff(strings.SplitAfter(got, "\n"), strings.SplitAfter(want, "\n")))
	}
}

// TestCollectorSidecar checks the collector runs beside the worker when
// EnableCollector is true and not at all when it is false, with the worker
// sending its traces to it only then.
func TestCollectorSidecar(t *testing.T) {
	c := loadTemplate(t)
	if d := fmt.Sprint(c.params["EnableCollector"]); d != "true" {
		t.Errorf("EnableCollector defaults to %q, want true", d)
	}
	on, err := c.condition("CollectorEnabled")
	if err != nil || !on {
		t.Fatalf("the condition CollectorEnabled is %v (%v) with the defaults, want true", on, err)
	}
	ctr, env, cfgText := collectorSetup(t, c)

	// The image: the public ADOT collector, pinned to a release.
	image := mustString(t, c, map[string]any{"Ref": "CollectorImage"})
	if got := fmt.Sprint(ctr["Image"]); got != image {
		t.Errorf("the collector runs %q, want the CollectorImage parameter %q", got, image)
	}
	if !regexp.MustCompile(`^public\.ecr\.aws/aws-observability/aws-otel-collector:v[0-9]+\.[0-9]+\.[0-9]+$`).MatchString(image) {
		t.Errorf("CollectorImage defaults to %q, want the public ADOT image pinned to a release tag", image)
	}
	if ctr["Essential"] != false {
		t.Errorf("the collector's Essential is %v: a collector that fails must not stop the worker", ctr["Essential"])
	}

	// Its configuration, with the variables the template gives it.
	cc, err := parseCollectorConfig(cfgText, env)
	if err != nil {
		t.Fatalf("the collector's configuration: %v", err)
	}
	if got, want := env["CLUSTER_NAME"], mustString(t, c, map[string]any{"Ref": "Cluster"}); got != want {
		t.Errorf("CLUSTER_NAME %q, want the cluster's name %q", got, want)
	}
	if got, want := env["METRICS_NAMESPACE"], fmt.Sprint(c.params["PrometheusNamespace"]); got != want || got == "" {
		t.Errorf("METRICS_NAMESPACE %q, want PrometheusNamespace %q", got, want)
	}
	if got, want := env["EMF_LOG_GROUP"], mustString(t, c, map[string]any{"Ref": "CollectorLogGroup"}); got != want {
		t.Errorf("EMF_LOG_GROUP %q, want CollectorLogGroup %q", got, want)
	}
	if env["AWS_REGION"] != testRegion {
		t.Errorf("the collector's AWS_REGION is %q, want the stack's region", env["AWS_REGION"])
	}

	// The worker sends its traces to the collector's OTLP/HTTP receiver,
	// in the task, and starts after it.
	wctr := c.evalContainer(t, "WorkerTaskDefinition", "worker")
	wenv, _ := c.containerEnv(t, wctr)
	endpoint := wenv["OTEL_EXPORTER_OTLP_ENDPOINT"]
	if cc.Receivers.OTLP.Protocols.HTTP == nil {
		t.Fatal("the collector's otlp receiver has no http protocol: the worker exports OTLP over HTTP")
	}
	recv := cc.Receivers.OTLP.Protocols.HTTP.Endpoint
	u, err := url.Parse(endpoint)
	if err != nil || u.Scheme != "http" || u.Path != "" {
		t.Fatalf("the worker's OTEL_EXPORTER_OTLP_ENDPOINT %q, want http://localhost:PORT", endpoint)
	}
	if rhost, rport, _ := net.SplitHostPort(recv); u.Port() != rport || !isLoopback(u.Hostname()) || !isLoopback(rhost) {
		t.Errorf("the worker sends traces to %q, the collector listens on %q: want the same port, on the task's loopback", endpoint, recv)
	}
	deps, _ := wctr["DependsOn"].([]any)
	if len(deps) != 1 || !cmp.Equal(deps[0], map[string]any{"ContainerName": collectorContainer, "Condition": "START"}) {
		t.Errorf("the worker's DependsOn %v, want the collector started first", deps)
	}
	if _, ok := env["GOMAXPROCS"]; !ok {
		t.Error("the collector (a Go program too, sharing the task's CPU) does not set GOMAXPROCS")
	}
	// The worker's configuration still loads, the OTEL_* variables left to
	// OpenTelemetry's SDK.
	full := map[string]string{"SPOTIFY_CLIENT_ID": "x", "SPOTIFY_CLIENT_SECRET": "y"}
	for k, v := range wenv {
		full[k] = v
	}
	if _, err := workercmd.Load(nil, getenvFrom(full, nil), io.Discard); err != nil {
		t.Errorf("workercmd.Load with the collector's variables: %v", err)
	}

	// EnableCollector=false: no collector, no endpoint, no dependency, no
	// grants, no log group.
	off := withParams(t, map[string]any{"EnableCollector": "false"})
	if ctr := off.evalContainer(t, "WorkerTaskDefinition", collectorContainer); ctr != nil {
		t.Error("EnableCollector=false still runs the collector")
	}
	wctr = off.evalContainer(t, "WorkerTaskDefinition", "worker")
	wenv, _ = off.containerEnv(t, wctr)
	for name := range wenv {
		if strings.HasPrefix(name, "OTEL_") {
			t.Errorf("EnableCollector=false: the worker still gets %s, and would export to nothing", name)
		}
	}
	if _, ok := wctr["DependsOn"]; ok {
		t.Errorf("EnableCollector=false: the worker still depends on %v", wctr["DependsOn"])
	}
	if _, ok := rolePolicies(t, off, "WorkerTaskRole")[collectorPolicy]; ok {
		t.Error("EnableCollector=false: WorkerTaskRole still has the collector's policy")
	}
	if cond, _ := off.resource(t, "CollectorLogGroup")["Condition"].(string); cond != "CollectorEnabled" {
		t.Errorf("CollectorLogGroup has the condition %q, want CollectorEnabled", cond)
	}
	for _, sec := range []string{"Resources", "Outputs"} {
		for name, v := range off.section(sec) {
			if _, err := off.eval(v); err != nil {
				t.Errorf("EnableCollector=false: %s %s: %v", sec, name, err)
			}
		}
	}

	// The rule that refuses a collector with no namespace to publish into.
	for _, tc := range []struct {
		collector, namespace string
		ok                   bool
	}{{"true", "Sixpotify", true}, {"true", "", false}, {"false", "", true}} {
		rc := withParams(t, map[string]any{"EnableCollector": tc.collector, "PrometheusNamespace": tc.namespace})
		if got := rulesHold(t, rc); got != tc.ok {
			t.Errorf("EnableCollector=%s PrometheusNamespace=%q: the rules hold %v, want %v", tc.collector, tc.namespace, got, tc.ok)
		}
	}
}

func isLoopback(host string) bool {
	return host == "localhost" || net.ParseIP(host).IsLoopback()
}

// rulesHold evaluates the template's Rules: every assertion of every rule
// whose condition holds.
func rulesHold(t *testing.T, c *cfn) bool {
	t.Helper()
	ok := true
	for name, r := range c.section("Rules") {
		rm, _ := r.(map[string]any)
		if cond, has := rm["RuleCondition"]; has {
			applies, err := c.evalCondition(cond)
			if err != nil {
				t.Fatalf("rule %s: %v", name, err)
			}
			if !applies {
				continue
			}
		}
		as, _ := rm["Assertions"].([]any)
		for _, a := range as {
			am, _ := a.(map[string]any)
			holds, err := c.evalCondition(am["Assert"])
			if err != nil {
				t.Fatalf("rule %s: %v", name, err)
			}
			ok = ok && holds
		}
	}
	return ok
}

// metricFamily is what internal/metrics declares of one metric: its type
// and, for each label, the values the worker sets.
type metricFamily struct {
	typ    dto.MetricType
	labels map[string]map[string]bool
}

// workerMetrics returns the worker's metrics by name, as its /metrics
// serves them in the text format (counters with _total): internal/metrics
// registered as the worker does, every lane initialised.
func workerMetrics(t *testing.T) map[string]metricFamily {
	t.Helper()
	reg := prometheus.NewRegistry()
	m := metrics.New(reg, func() time.Duration { return 0 }, func() float64 { return 0 })
	m.InitLanes(worker.LaneChatbot, worker.LaneBulk)
	m.ObserveSpotify(429, time.Millisecond)
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]metricFamily{}
	for _, f := range fams {
		mf := metricFamily{typ: f.GetType(), labels: map[string]map[string]bool{}}
		for _, s := range f.GetMetric() {
			for _, l := range s.GetLabel() {
				if mf.labels[l.GetName()] == nil {
					mf.labels[l.GetName()] = map[string]bool{}
				}
				mf.labels[l.GetName()][l.GetValue()] = true
			}
		}
		out[f.GetName()] = mf
	}
	return out
}

// emfMetrics is what awsemf publishes: each declared metric name with the
// dimension sets it gets.
type emfMetrics struct {
	namespace string
	dims      map[string][][]string // metric → its dimension sets, each sorted
}

// checkEMF checks the awsemf exporter's settings against the worker's
// metrics and returns what it publishes: no rollup (exactly the declared
// dimensions), every selector matching a metric the worker has, every
// dimension a label those metrics carry or the ClusterName every scraped
// series gets.
func checkEMF(emf awsemfConfig, fams map[string]metricFamily, staticLabels map[string]string) (emfMetrics, error) {
	var errs []error
	if emf.DimensionRollupOption != "NoDimensionRollup" {
		errs = append(errs, fmt.Errorf("awsemf dimension_rollup_option %q: want NoDimensionRollup, or CloudWatch gets rolled-up metrics nothing reads", emf.DimensionRollupOption))
	}
	if emf.Namespace == "" {
		errs = append(errs, errors.New("awsemf namespace is empty"))
	}
	if len(emf.MetricDeclarations) == 0 {
		errs = append(errs, errors.New("awsemf has no metric_declarations: every label would become a dimension"))
	}
	out := emfMetrics{namespace: emf.Namespace, dims: map[string][][]string{}}
	for i, d := range emf.MetricDeclarations {
		if len(d.LabelMatchers) != 0 {
			errs = append(errs, fmt.Errorf("metric_declarations[%d]: label_matchers, which the tests do not model", i))
		}
		var matched []string
		for _, sel := range d.MetricNameSelectors {
			re, err := regexp.Compile(sel)
			if err != nil {
				errs = append(errs, fmt.Errorf("metric_declarations[%d]: selector %q: %w", i, sel, err))
				continue
			}
			n := 0
			for name := range fams {
				if re.MatchString(name) {
					matched = append(matched, name)
					n++
				}
			}
			if n == 0 {
				errs = append(errs, fmt.Errorf("metric_declarations[%d]: selector %q matches no metric of internal/metrics", i, sel))
			}
		}
		for _, set := range d.Dimensions {
			sorted := append([]string(nil), set...)
			sort.Strings(sorted)
			for _, name := range matched {
				for _, dim := range set {
					if _, static := staticLabels[dim]; !static && fams[name].labels[dim] == nil {
						errs = append(errs, fmt.Errorf("metric_declarations[%d]: dimension %s is not a label of %s (awsemf would drop the set)", i, dim, name))
					}
				}
				out.dims[name] = append(out.dims[name], sorted)
			}
		}
	}
	return out, errors.Join(errs...)
}

// TestCollectorConfig checks deploy/otel-collector.yaml: it scrapes the
// worker's /metrics on HTTP_ADDR, keeps the names the worker writes,
// receives OTLP, and sends metrics to CloudWatch (awsemf) and traces to
// X-Ray (awsxray) with settings the exporters document.
func TestCollectorConfig(t *testing.T) {
	c := loadTemplate(t)
	_, env, _ := collectorSetup(t, c)
	src := string(readRepoFile(t, collectorFile))
	cc, err := parseCollectorConfig(src, env)
	if err != nil {
		t.Fatalf("%s: %v", collectorFile, err)
	}
	fams := workerMetrics(t)

	// Pipelines: Prometheus → awsemf, OTLP → awsxray.
	want := map[string][2][]string{
		"metrics": {{"prometheus"}, {"awsemf"}},
		"traces":  {{"otlp"}, {"awsxray"}},
	}
	for name, w := range want {
		p, ok := cc.Service.Pipelines[name]
		if !ok {
			t.Errorf("no %s pipeline", name)
			continue
		}
		var recv, exp []string
		for _, id := range p.Receivers {
			recv = append(recv, componentType(id))
		}
		for _, id := range p.Exporters {
			exp = append(exp, componentType(id))
		}
		if !cmp.Equal(recv, w[0]) || !cmp.Equal(exp, w[1]) {
			t.Errorf("pipeline %s: %v → %v, want %v → %v", name, recv, exp, w[0], w[1])
		}
	}

	// The scrape: the worker's own port, its path, the text format.
	cfg, err := workercmd.Load(nil, getenvFrom(func() map[string]string {
		_, e, _ := workerSetup(t, c)
		return e
	}(), nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(cfg.HTTPAddr)
	prom := cc.Receivers.Prometheus
	if prom.TrimMetricSuffixes {
		t.Error("the prometheus receiver trims suffixes: the CloudWatch names would not be the worker's")
	}
	if len(prom.Config.ScrapeConfigs) != 1 {
		t.Fatalf("%d scrape configs, want one: the worker", len(prom.Config.ScrapeConfigs))
	}
	sc := prom.Config.ScrapeConfigs[0]
	if sc.MetricsPath != "/metrics" {
		t.Errorf("metrics_path %q, want /metrics", sc.MetricsPath)
	}
	if !cmp.Equal(sc.ScrapeProtocols, []string{"PrometheusText0.0.4"}) {
		t.Errorf("scrape_protocols %v, want [PrometheusText0.0.4]: the format the worker serves, in which counters keep _total", sc.ScrapeProtocols)
	}
	var targets []string
	static := map[string]string{}
	for _, s := range sc.StaticConfigs {
		targets = append(targets, s.Targets...)
		for k, v := range s.Labels {
			static[k] = v
		}
	}
	if len(targets) != 1 {
		t.Fatalf("targets %v, want the worker alone", targets)
	}
	if host, p, err := net.SplitHostPort(targets[0]); err != nil || p != port || !isLoopback(host) {
		t.Errorf("the collector scrapes %q, want localhost:%s (the worker's HTTP_ADDR %q)", targets[0], port, cfg.HTTPAddr)
	}
	if static[clusterLabel] != env["CLUSTER_NAME"] || static[clusterLabel] == "" {
		t.Errorf("the scraped series get %s=%q, want the cluster's name %q", clusterLabel, static[clusterLabel], env["CLUSTER_NAME"])
	}
	for _, r := range sc.MetricRelabelConfigs {
		if r.Action != "keep" || !cmp.Equal(r.SourceLabels, []string{"__name__"}) {
			t.Errorf("metric_relabel_configs: %+v, want only a keep on __name__", r)
			continue
		}
		re, err := regexp.Compile("^(?:" + r.Regex + ")$") // Prometheus anchors it
		if err != nil {
			t.Fatalf("relabel regex %q: %v", r.Regex, err)
		}
		for name := range fams {
			if !re.MatchString(name) {
				t.Errorf("the scrape drops %s", name)
			}
		}
	}

	// awsemf: exactly the declared metrics and dimensions.
	var emf awsemfConfig
	if ok, err := cc.exporter("awsemf", &emf); !ok || err != nil {
		t.Fatalf("awsemf exporter: present %v, %v", ok, err)
	}
	if emf.Namespace != env["METRICS_NAMESPACE"] || emf.LogGroupName != env["EMF_LOG_GROUP"] || emf.Region != env["AWS_REGION"] {
		t.Errorf("awsemf publishes into %q through the log group %q in %q, want the stack's %q, %q, %q",
			emf.Namespace, emf.LogGroupName, emf.Region, env["METRICS_NAMESPACE"], env["EMF_LOG_GROUP"], env["AWS_REGION"])
	}
	if _, err := checkEMF(emf, fams, static); err != nil {
		t.Error(err)
	}

	// awsxray: in the stack's region.
	var xray awsxrayConfig
	if ok, err := cc.exporter("awsxray", &xray); !ok || err != nil {
		t.Fatalf("awsxray exporter: present %v, %v", ok, err)
	}
	if xray.Region != env["AWS_REGION"] {
		t.Errorf("awsxray region %q, want %q", xray.Region, env["AWS_REGION"])
	}

	// cumulativetodelta only on histograms the worker has (awsemf makes
	// counters deltas itself; doing it twice would publish nothing).
	for id, n := range cc.Processors {
		if componentType(id) != "cumulativetodelta" {
			continue
		}
		var ctd cumulativeToDeltaConfig
		if err := decodeStrict(n, &ctd); err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		if ctd.Include.MatchType != "strict" || len(ctd.Include.Metrics) == 0 {
			t.Errorf("%s: include %+v, want strict names", id, ctd.Include)
		}
		for _, name := range ctd.Include.Metrics {
			if f, ok := fams[name]; !ok || f.typ != dto.MetricType_HISTOGRAM {
				t.Errorf("%s converts %s, which is not a histogram of internal/metrics", id, name)
			}
		}
	}

	// The checker itself: each kind of mistake fails.
	bad := func(mut func(*awsemfConfig)) error {
		e := emf
		e.MetricDeclarations = append([]metricDeclaration(nil), emf.MetricDeclarations...)
		mut(&e)
		_, err := checkEMF(e, fams, static)
		return err
	}
	for name, mut := range map[string]func(*awsemfConfig){
		"rollup": func(e *awsemfConfig) { e.DimensionRollupOption = "ZeroAndSingleDimensionRollup" },
		"selector of nothing": func(e *awsemfConfig) {
			e.MetricDeclarations[0].MetricNameSelectors = []string{"^sixpotify_spotify_request_total$"}
		},
		"dimension not a label": func(e *awsemfConfig) {
			e.MetricDeclarations[0].Dimensions = [][]string{{clusterLabel, "lane"}}
		},
	} {
		if bad(mut) == nil {
			t.Errorf("checkEMF accepts a declaration with a %s", name)
		}
	}
	if _, _, err := expandCollectorEnv("a: ${env:NOPE}\nb: ^x$\n", map[string]string{}); err == nil {
		t.Error("expandCollectorEnv accepts an unset variable and a lone $")
	}
}

// TestCollectorGrants checks the collector's permissions: what its
// exporters call and no more, on its own log group, and only when it runs;
// and the same statements in deploy/iam-policy.json.
func TestCollectorGrants(t *testing.T) {
	c := loadTemplate(t)
	_, env, cfgText := collectorSetup(t, c)
	cc, err := parseCollectorConfig(cfgText, env)
	if err != nil {
		t.Fatal(err)
	}
	logGroup := mustString(t, c, map[string]any{"Fn::GetAtt": []any{"CollectorLogGroup", "Arn"}})
	// What each exporter calls: awsemf PutLogEvents, and CreateLogStream for
	// a task's new stream (the log group belongs to the stack, so no
	// CreateLogGroup); awsxray PutTraceSegments and PutTelemetryRecords,
	// which take no resource. awsemf needs no cloudwatch:PutMetricData.
	calls := map[string]struct {
		actions  []string
		resource string
	}{
		"awsemf":  {[]string{"logs:CreateLogStream", "logs:PutLogEvents"}, logGroup},
		"awsxray": {[]string{"xray:PutTelemetryRecords", "xray:PutTraceSegments"}, "*"},
	}
	want := map[string]string{} // action → resource
	for id := range cc.Exporters {
		call, ok := calls[componentType(id)]
		if !ok {
			t.Fatalf("exporter %s: add what it calls to this test", id)
		}
		for _, a := range call.actions {
			want[a] = call.resource
		}
	}

	check := func(what string, sts []policyStatement, want map[string]string) {
		t.Helper()
		got := map[string]string{}
		for _, s := range sts {
			if s.Effect != "Allow" {
				t.Errorf("%s: statement %q has Effect %q", what, s.Sid, s.Effect)
			}
			for _, a := range s.Actions {
				if strings.ContainsAny(a, "*?") {
					t.Errorf("%s: wildcard action %s", what, a)
				}
				if len(s.Resources) != 1 {
					t.Errorf("%s: %s on %v, want one resource", what, a, s.Resources)
					continue
				}
				got[a] = s.Resources[0]
			}
		}
		if diff := cmp.Diff(got, want); diff != "" {
			t.Errorf("%s: action → resource (-granted +what the exporters call):\n%s", what, diff)
		}
	}
	pols := rolePolicies(t, c, "WorkerTaskRole")
	check("WorkerTaskRole's collector policy", pols[collectorPolicy], want)
	for _, s := range pols["worker"] {
		if strings.HasPrefix(s.Sid, "Collector") {
			t.Errorf("WorkerTaskRole's worker policy has the collector's statement %q", s.Sid)
		}
	}

	// deploy/iam-policy.json: the same actions, with its placeholders.
	var doc any
	if err := json.Unmarshal(readRepoFile(t, "deploy/iam-policy.json"), &doc); err != nil {
		t.Fatal(err)
	}
	_, collector := splitCollectorStatements(statements(t, nil, doc))
	placeholders := map[string]string{}
	for a, r := range want {
		if r == logGroup {
			r = "arn:aws:logs:REGION:ACCOUNT_ID:log-group:/ecs/" + testStack + "/metrics:*"
		}
		placeholders[a] = r
	}
	if lg := mustString(t, c, map[string]any{"Ref": "CollectorLogGroup"}); lg != "/ecs/"+testStack+"/metrics" {
		t.Errorf("CollectorLogGroup is %q: update deploy/iam-policy.json's placeholder and this test", lg)
	}
	check("deploy/iam-policy.json's Collector statements", collector, placeholders)
}

// metricRef is one metric a dashboard widget or an alarm reads.
type metricRef struct {
	namespace, name, stat string
	dims                  map[string]string
}

func (m metricRef) String() string {
	keys := sortedKeys(func() map[string]bool {
		b := map[string]bool{}
		for k := range m.dims {
			b[k] = true
		}
		return b
	}())
	var d []string
	for _, k := range keys {
		d = append(d, k+"="+m.dims[k])
	}
	return m.namespace + " " + m.name + "{" + strings.Join(d, ",") + "}"
}

// dashboardMetrics returns the metrics of a dashboard body's metric widgets
// (the full form: namespace, name, dimension pairs, options), checking
// each widget's region.
func dashboardMetrics(body, region string) ([]metricRef, error) {
	var d struct {
		Widgets []struct {
			Type       string `json:"type"`
			Properties struct {
				Title   string  `json:"title"`
				Region  string  `json:"region"`
				Stat    string  `json:"stat"`
				Metrics [][]any `json:"metrics"`
			} `json:"properties"`
		} `json:"widgets"`
	}
	if err := json.Unmarshal([]byte(body), &d); err != nil {
		return nil, fmt.Errorf("the dashboard body is not JSON: %w", err)
	}
	var (
		out  []metricRef
		errs []error
	)
	for _, w := range d.Widgets {
		p := w.Properties
		if w.Type != "metric" {
			continue
		}
		if p.Region != region {
			errs = append(errs, fmt.Errorf("widget %q: region %q, want %q", p.Title, p.Region, region))
		}
		for _, m := range p.Metrics {
			var strs []string
			ref := metricRef{stat: p.Stat, dims: map[string]string{}}
			for i, e := range m {
				switch x := e.(type) {
				case string:
					strs = append(strs, x)
				case map[string]any:
					if i != len(m)-1 {
						errs = append(errs, fmt.Errorf("widget %q: options before the end of %v", p.Title, m))
					}
					if s, ok := x["stat"].(string); ok {
						ref.stat = s
					}
				default:
					errs = append(errs, fmt.Errorf("widget %q: %v in %v", p.Title, e, m))
				}
			}
			if len(strs) < 2 || len(strs)%2 != 0 || strings.Contains(strings.Join(strs, ""), "..") || strs[0] == "." {
				errs = append(errs, fmt.Errorf("widget %q: %v is not namespace, name, dimension pairs", p.Title, m))
				continue
			}
			ref.namespace, ref.name = strs[0], strs[1]
			for i := 2; i < len(strs); i += 2 {
				ref.dims[strs[i]] = strs[i+1]
			}
			if ref.stat == "" {
				errs = append(errs, fmt.Errorf("widget %q: %v has no statistic", p.Title, ref))
			}
			out = append(out, ref)
		}
	}
	return out, errors.Join(errs...)
}

// metricChecker checks a metric a dashboard or an alarm reads exists: an
// SQS metric of one of the stack's queues, or a worker metric as the
// collector publishes it.
type metricChecker struct {
	queues    map[string]bool // queue names
	namespace string          // the workers' metrics
	cluster   string
	emf       emfMetrics
	fams      map[string]metricFamily
}

var sqsMetrics = set("ApproximateNumberOfMessagesVisible", "ApproximateNumberOfMessagesNotVisible",
	"ApproximateNumberOfMessagesDelayed", "ApproximateAgeOfOldestMessage", "NumberOfMessagesSent",
	"NumberOfMessagesReceived", "NumberOfMessagesDeleted", "NumberOfEmptyReceives")

// worker metric statistics that mean something: a histogram is a
// statistic set of count and sum (Prometheus keeps no minimum or maximum).
var histogramStats = set("Average", "SampleCount", "Sum")

func (mc metricChecker) check(m metricRef) error {
	switch m.namespace {
	case "AWS/SQS":
		if !sqsMetrics[m.name] {
			return fmt.Errorf("%v: not an SQS metric", m)
		}
		if len(m.dims) != 1 || !mc.queues[m.dims["QueueName"]] {
			return fmt.Errorf("%v: want the one dimension QueueName, a queue of the stack", m)
		}
		return nil
	case mc.namespace:
	default:
		return fmt.Errorf("%v: namespace neither AWS/SQS nor the workers' %q", m, mc.namespace)
	}
	fam, ok := mc.fams[m.name]
	if !ok {
		return fmt.Errorf("%v: internal/metrics declares no %s", m, m.name)
	}
	sets, ok := mc.emf.dims[m.name]
	if !ok {
		return fmt.Errorf("%v: deploy/otel-collector.yaml publishes no %s", m, m.name)
	}
	var names []string
	for k := range m.dims {
		names = append(names, k)
	}
	sort.Strings(names)
	declared := false
	for _, s := range sets {
		declared = declared || cmp.Equal(s, names)
	}
	if !declared {
		return fmt.Errorf("%v: published with the dimension sets %v only", m, sets)
	}
	for k, v := range m.dims {
		switch {
		case k == clusterLabel:
			if v != mc.cluster {
				return fmt.Errorf("%v: %s %q, want the stack's cluster %q", m, k, v, mc.cluster)
			}
		case k == "code":
			if _, err := strconv.Atoi(v); err != nil {
				return fmt.Errorf("%v: code %q is not an HTTP status", m, v)
			}
		case !fam.labels[k][v]:
			return fmt.Errorf("%v: the worker never sets %s=%q (it sets %v)", m, k, v, sortedKeys(fam.labels[k]))
		}
	}
	if fam.typ == dto.MetricType_HISTOGRAM && !histogramStats[m.stat] {
		return fmt.Errorf("%v: statistic %s of a histogram; want one of %v", m, m.stat, sortedKeys(histogramStats))
	}
	return nil
}

// newMetricChecker builds the checker from the template's defaults and the
// collector's configuration.
func newMetricChecker(t *testing.T, c *cfn) metricChecker {
	t.Helper()
	_, env, cfgText := collectorSetup(t, c)
	cc, err := parseCollectorConfig(cfgText, env)
	if err != nil {
		t.Fatal(err)
	}
	var emfCfg awsemfConfig
	if _, err := cc.exporter("awsemf", &emfCfg); err != nil {
		t.Fatal(err)
	}
	static := map[string]string{}
	for _, sc := range cc.Receivers.Prometheus.Config.ScrapeConfigs {
		for _, s := range sc.StaticConfigs {
			for k, v := range s.Labels {
				static[k] = v
			}
		}
	}
	fams := workerMetrics(t)
	emf, err := checkEMF(emfCfg, fams, static)
	if err != nil {
		t.Fatal(err)
	}
	queues := map[string]bool{}
	for _, q := range c.resourcesOfType("AWS::SQS::Queue") {
		n, err := c.queueName(q)
		if err != nil {
			t.Fatal(err)
		}
		queues[n] = true
	}
	return metricChecker{
		queues:    queues,
		namespace: fmt.Sprint(c.params["PrometheusNamespace"]),
		cluster:   mustString(t, c, map[string]any{"Ref": "Cluster"}),
		emf:       emf,
		fams:      fams,
	}
}

// TestDashboard checks every metric the dashboard reads exists as read
// (SQS's, or the workers' as the collector publishes them, names and
// dimensions from internal/metrics), and that it shows what operators ask.
func TestDashboard(t *testing.T) {
	c := loadTemplate(t)
	mc := newMetricChecker(t, c)
	r := c.resource(t, "Dashboard")
	if r["Type"] != "AWS::CloudWatch::Dashboard" || r["Condition"] != "HasPrometheusMetrics" {
		t.Errorf("Dashboard: %v with condition %v, want a dashboard created with the workers' metrics", r["Type"], r["Condition"])
	}
	body := mustString(t, c, c.props(t, "Dashboard")["DashboardBody"])
	refs, err := dashboardMetrics(body, testRegion)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range refs {
		if err := mc.check(m); err != nil {
			t.Error(err)
		}
	}

	// What it must show.
	q := func(res string) string {
		n, _ := c.queueName(res)
		return n
	}
	w := func(name string, dims ...string) metricRef {
		d := map[string]string{clusterLabel: mc.cluster}
		for i := 0; i+1 < len(dims); i += 2 {
			d[dims[i]] = dims[i+1]
		}
		return metricRef{namespace: mc.namespace, name: name, dims: d}
	}
	sqs := func(name, res string) metricRef {
		return metricRef{namespace: "AWS/SQS", name: name, dims: map[string]string{"QueueName": q(res)}}
	}
	for _, want := range []metricRef{
		sqs("ApproximateNumberOfMessagesVisible", "ChatbotQueue"),
		sqs("ApproximateNumberOfMessagesVisible", "BulkQueue"),
		sqs("ApproximateAgeOfOldestMessage", "ChatbotQueue"),
		sqs("ApproximateAgeOfOldestMessage", "BulkQueue"),
		sqs("ApproximateNumberOfMessagesVisible", "ChatbotDeadLetterQueue"),
		sqs("ApproximateNumberOfMessagesVisible", "BulkDeadLetterQueue"),
		w("sixpotify_spotify_requests_total", "code", "429"),
		w("sixpotify_spotify_cooldown_remaining_seconds"),
		w("sixpotify_messages_postponed_total", "reason", "cooldown"),
		w("sixpotify_outage_breaker_opened_total", "cause", "spotify"),
		w("sixpotify_message_process_duration_seconds", "lane", worker.LaneChatbot),
	} {
		found := false
		for _, m := range refs {
			found = found || m.namespace == want.namespace && m.name == want.name && cmp.Equal(m.dims, want.dims)
		}
		if !found {
			t.Errorf("the dashboard does not show %v", want)
		}
	}

	// The checker itself: each kind of mistake fails.
	for name, m := range map[string]metricRef{
		"misspelt name":      w("sixpotify_spotify_request_total", "code", "429"),
		"undeclared set":     w("sixpotify_spotify_requests_total"),
		"unknown lane":       w("sixpotify_message_process_duration_seconds", "lane", "chatbots"),
		"other cluster":      {namespace: mc.namespace, name: "sixpotify_spotify_cooldown_remaining_seconds", dims: map[string]string{clusterLabel: "x"}},
		"other namespace":    {namespace: "Sixpotify/Other", name: "sixpotify_spotify_cooldown_remaining_seconds", dims: map[string]string{clusterLabel: mc.cluster}},
		"foreign queue":      {namespace: "AWS/SQS", name: "ApproximateAgeOfOldestMessage", dims: map[string]string{"QueueName": "elsewhere"}},
		"p99 of a histogram": {namespace: mc.namespace, name: "sixpotify_message_process_duration_seconds", stat: "p99", dims: map[string]string{clusterLabel: mc.cluster, "lane": worker.LaneChatbot}},
	} {
		if m.stat == "" {
			m.stat = "Sum"
		}
		if mc.check(m) == nil {
			t.Errorf("the metric checker accepts a %s: %v", name, m)
		}
	}
}

// TestWorkerMetricAlarms checks every alarm on the workers' metrics reads a
// metric the collector publishes, as it publishes it.
func TestWorkerMetricAlarms(t *testing.T) {
	c := loadTemplate(t)
	mc := newMetricChecker(t, c)
	n := 0
	for _, name := range c.resourcesOfType("AWS::CloudWatch::Alarm") {
		p := c.props(t, name)
		if !refersTo(p["Namespace"], "PrometheusNamespace") {
			continue
		}
		if cond, _ := c.resource(t, name)["Condition"].(string); cond != "HasPrometheusMetrics" {
			t.Errorf("%s reads the workers' metrics with the condition %q, want HasPrometheusMetrics", name, cond)
		}
		n++
		ev, err := c.eval(p)
		if err != nil {
			t.Fatal(err)
		}
		pm := ev.(map[string]any)
		ref := metricRef{namespace: fmt.Sprint(pm["Namespace"]), name: fmt.Sprint(pm["MetricName"]), stat: fmt.Sprint(pm["Statistic"]), dims: map[string]string{}}
		dims, _ := pm["Dimensions"].([]any)
		for _, d := range dims {
			dm, _ := d.(map[string]any)
			ref.dims[fmt.Sprint(dm["Name"])] = fmt.Sprint(dm["Value"])
		}
		if err := mc.check(ref); err != nil {
			t.Errorf("alarm %s: %v", name, err)
		}
	}
	if n == 0 {
		t.Error("no alarm reads the workers' metrics (the throttling alarm did)")
	}
}

// TestGoMaxProcs checks the worker's (and the collector's) GOMAXPROCS is
// the task's CPU units / 1024, at least 1, for every task size allowed.
func TestGoMaxProcs(t *testing.T) {
	c := loadTemplate(t)
	p, _ := c.section("Parameters")["TaskCpu"].(map[string]any)
	allowed, _ := p["AllowedValues"].([]any)
	if len(allowed) == 0 {
		t.Fatal("TaskCpu has no AllowedValues: GOMAXPROCS cannot follow a value the mapping does not know")
	}
	for _, a := range allowed {
		cpu := fmt.Sprint(a)
		units, err := strconv.Atoi(cpu)
		if err != nil {
			t.Fatalf("TaskCpu allows %q", cpu)
		}
		want := strconv.Itoa(max(1, units/1024))
		tc := withParams(t, map[string]any{"TaskCpu": cpu})
		for _, name := range []string{"worker", collectorContainer} {
			env, _ := tc.containerEnv(t, tc.evalContainer(t, "WorkerTaskDefinition", name))
			if env["GOMAXPROCS"] != want {
				t.Errorf("TaskCpu %s: the %s's GOMAXPROCS %q, want %s", cpu, name, env["GOMAXPROCS"], want)
			}
		}
	}
	if !refersTo(c.props(t, "WorkerTaskDefinition")["Cpu"], "TaskCpu") {
		t.Error("the worker's task CPU is not TaskCpu")
	}
}
