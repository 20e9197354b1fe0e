package deploy

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"testing"

	"github.com/awslabs/goformation/v7"
	"github.com/awslabs/goformation/v7/cloudformation"
	"github.com/awslabs/goformation/v7/intrinsics"
	"github.com/google/go-cmp/cmp"
	"github.com/parquet-go/parquet-go"

	"github.com/sixpotify/top-tracks/internal/export"
	"github.com/sixpotify/top-tracks/internal/export/s3dest"
	"github.com/sixpotify/top-tracks/internal/producercmd"
)

// hiveType is the Glue (Hive) type Athena reads a Parquet column as.
func hiveType(n parquet.Node) (string, error) {
	lt := ""
	if l := n.Type().LogicalType(); l != nil {
		lt = l.String()
	}
	if !n.Leaf() {
		if strings.HasPrefix(lt, "LIST") && len(n.Fields()) == 1 && len(n.Fields()[0].Fields()) == 1 {
			elem, err := hiveType(n.Fields()[0].Fields()[0])
			return "array<" + elem + ">", err
		}
		return "", fmt.Errorf("group column %s (%s): add its Hive type to hiveType", n.String(), lt)
	}
	switch kind := n.Type().Kind().String(); {
	case lt == "STRING":
		return "string", nil
	case lt == "INT(32,true)":
		return "int", nil
	case lt == "INT(64,true)":
		return "bigint", nil
	case strings.HasPrefix(lt, "TIMESTAMP"):
		return "timestamp", nil
	case lt == "" && kind == "BOOLEAN":
		return "boolean", nil
	default:
		return "", fmt.Errorf("column of kind %s, logical type %q: add its Hive type to hiveType", kind, lt)
	}
}

type column struct{ Name, Type string }

func schemaColumns(t *testing.T, dataset string) []column {
	t.Helper()
	var cols []column
	for _, f := range export.Schema(dataset).Fields() {
		typ, err := hiveType(f)
		if err != nil {
			t.Fatalf("%s.%s: %v", dataset, f.Name(), err)
		}
		cols = append(cols, column{f.Name(), typ})
	}
	return cols
}

func columnsOf(t *testing.T, c *cfn, v any) []column {
	t.Helper()
	list, _ := v.([]any)
	var cols []column
	for _, e := range list {
		m, _ := e.(map[string]any)
		cols = append(cols, column{mustString(t, c, m["Name"]), mustString(t, c, m["Type"])})
	}
	return cols
}

// TestGlueTables checks each lake table declares exactly the Parquet
// schema the export writes (names, order, types), is partitioned by dt with
// projection, and lives where the export writes.
func TestGlueTables(t *testing.T) {
	c := loadTemplate(t)
	bucket := mustString(t, c, map[string]any{"Ref": "LakeBucket"})
	prefix, _ := c.params["LakePrefix"].(string)
	for res, dataset := range map[string]string{"TopTracksLakeTable": export.TopTracks, "ArtistsLakeTable": export.Artists} {
		p := c.props(t, res)
		if !refersTo(p["DatabaseName"], "LakeDatabase") {
			t.Errorf("%s: DatabaseName %v, want the LakeDatabase", res, p["DatabaseName"])
		}
		in, _ := p["TableInput"].(map[string]any)
		if in["Name"] != dataset || in["TableType"] != "EXTERNAL_TABLE" {
			t.Errorf("%s: table %v (%v), want the external table %s", res, in["Name"], in["TableType"], dataset)
		}
		sd, _ := in["StorageDescriptor"].(map[string]any)
		if diff := cmp.Diff(columnsOf(t, c, sd["Columns"]), schemaColumns(t, dataset)); diff != "" {
			t.Errorf("%s: columns (-template +Parquet schema):\n%s", res, diff)
		}
		if diff := cmp.Diff(columnsOf(t, c, in["PartitionKeys"]), []column{{"dt", "string"}}); diff != "" {
			t.Errorf("%s: partition keys (-got +want):\n%s", res, diff)
		}
		location := "s3://" + bucket + "/" + prefix + "/" + export.PartitionPrefix(dataset, "")
		location = strings.TrimSuffix(location, "dt=/")
		if got := mustString(t, c, sd["Location"]); got != location {
			t.Errorf("%s: Location %q, want %q", res, got, location)
		}
		serde, _ := sd["SerdeInfo"].(map[string]any)
		if serde["SerializationLibrary"] != "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe" ||
			sd["InputFormat"] != "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat" {
			t.Errorf("%s: not read as Parquet: %v, %v", res, serde["SerializationLibrary"], sd["InputFormat"])
		}
		params, _ := in["Parameters"].(map[string]any)
		want := map[string]string{
			"projection.enabled":          "true",
			"projection.dt.type":          "date",
			"projection.dt.format":        "yyyy-MM-dd", // export.DateFormat in Java's letters
			"projection.dt.interval":      "1",
			"projection.dt.interval.unit": "DAYS",
			"storage.location.template":   location + "dt=${dt}/",
		}
		for k, v := range want {
			if got := mustString(t, c, params[k]); got != v {
				t.Errorf("%s: %s = %q, want %q", res, k, got, v)
			}
		}
		if r, _ := params["projection.dt.range"].(string); !strings.HasSuffix(r, ",NOW") {
			t.Errorf("%s: projection.dt.range %q, want FIRST,NOW", res, r)
		}
	}
	if export.DateFormat != "2006-01-02" {
		t.Errorf("export.DateFormat %q no longer matches projection.dt.format yyyy-MM-dd", export.DateFormat)
	}
}

// TestExportTask checks the export's task runs `producer export --to` the
// lake's bucket and prefix with the variables the command reads, as
// ExportTaskRole, and that the daily schedule runs that task.
func TestExportTask(t *testing.T) {
	c := loadTemplate(t)
	ctr := c.container(t, "ExportTaskDefinition", "export")
	if ep, _ := ctr["EntryPoint"].([]any); len(ep) != 1 || ep[0] != "/usr/local/bin/producer" {
		t.Errorf("export EntryPoint %v, want [/usr/local/bin/producer]", ep)
	}
	cmdv := asStrings(t, c, ctr["Command"])
	if len(cmdv) != 3 || cmdv[0] != "export" || cmdv[1] != "--to" {
		t.Fatalf("export Command %v, want [export --to s3://…]", cmdv)
	}
	bucket, prefix, err := s3dest.ParseURL(cmdv[2])
	if err != nil || bucket != mustString(t, c, map[string]any{"Ref": "LakeBucket"}) || prefix != c.params["LakePrefix"] {
		t.Errorf("--to %q (%v), want s3://LakeBucket/LakePrefix", cmdv[2], err)
	}
	env, secrets := c.containerEnv(t, ctr)
	if len(secrets) != 0 {
		t.Errorf("the export task gets secrets %v it does not need", sortedKeys(boolKeys(secrets)))
	}
	// The variables the export command reads, as it parses this command line.
	asked := map[string]bool{}
	probe := map[string]string{"STORE_URL": "sqlite:" + t.TempDir() + "/missing.db"}
	code := producercmd.Run(t.Context(), cmdv, getenvFrom(probe, asked), strings.NewReader(""), io.Discard, io.Discard)
	if code != 2 {
		t.Fatalf("producer %v on a missing store exited %d, want 2 (the line parses, the store is refused)", cmdv, code)
	}
	for name := range env {
		if !asked[name] && !sdkVariables[name] {
			t.Errorf("the export task sets %s, which producer export does not read", name)
		}
	}
	if got, want := env["STORE_URL"], "dynamodb:"+mustString(t, c, map[string]any{"Ref": "TracksTable"}); got != want {
		t.Errorf("STORE_URL %q, want %q", got, want)
	}
	if !refersTo(c.props(t, "ExportTaskDefinition")["TaskRoleArn"], "ExportTaskRole") {
		t.Error("the export task does not run as ExportTaskRole")
	}

	sched := c.props(t, "DailyExport")
	target, _ := sched["Target"].(map[string]any)
	ecs, _ := target["EcsParameters"].(map[string]any)
	if !refersTo(target["Arn"], "Cluster") || !refersTo(ecs["TaskDefinitionArn"], "ExportTaskDefinition") || !refersTo(target["RoleArn"], "DailyExportRole") {
		t.Errorf("DailyExport targets %v / %v as %v, want the Cluster, ExportTaskDefinition, DailyExportRole", target["Arn"], ecs["TaskDefinitionArn"], target["RoleArn"])
	}
	if sched["ScheduleExpressionTimezone"] != "UTC" {
		t.Errorf("DailyExport runs in %v: the export's default date is UTC's", sched["ScheduleExpressionTimezone"])
	}
	if expr := mustString(t, c, sched["ScheduleExpression"]); !strings.HasPrefix(expr, "cron(") || strings.Count(expr, " ") != 5 {
		t.Errorf("DailyExport ScheduleExpression %q, want a daily cron(…)", expr)
	}
	var runs, passes []string
	for _, st := range roleStatements(t, c, "DailyExportRole") {
		for _, a := range st.Actions {
			switch a {
			case "ecs:RunTask":
				runs = append(runs, st.Resources...)
			case "iam:PassRole":
				passes = append(passes, st.Resources...)
			default:
				t.Errorf("DailyExportRole grants %s", a)
			}
		}
	}
	sort.Strings(passes)
	td := mustString(t, c, map[string]any{"Ref": "ExportTaskDefinition"})
	roles := []string{mustString(t, c, map[string]any{"Fn::GetAtt": []any{"ExecutionRole", "Arn"}}), mustString(t, c, map[string]any{"Fn::GetAtt": []any{"ExportTaskRole", "Arn"}})}
	sort.Strings(roles)
	if !cmp.Equal(runs, []string{td}) || !cmp.Equal(passes, roles) {
		t.Errorf("DailyExportRole runs %v and passes %v, want %v and %v", runs, passes, td, roles)
	}
}

// TestAthenaWorkGroup checks the workgroup writes its results into the
// lake's bucket, outside the tables, and enforces that.
func TestAthenaWorkGroup(t *testing.T) {
	c := loadTemplate(t)
	wg, _ := c.props(t, "AthenaWorkGroup")["WorkGroupConfiguration"].(map[string]any)
	rc, _ := wg["ResultConfiguration"].(map[string]any)
	bucket := mustString(t, c, map[string]any{"Ref": "LakeBucket"})
	out := mustString(t, c, rc["OutputLocation"])
	prefix, _ := c.params["LakePrefix"].(string)
	if !strings.HasPrefix(out, "s3://"+bucket+"/") || strings.HasPrefix(out, "s3://"+bucket+"/"+prefix+"/") {
		t.Errorf("Athena results at %q, want the lake bucket outside %s/", out, prefix)
	}
	if wg["EnforceWorkGroupConfiguration"] != true {
		t.Error("the workgroup does not enforce its result location")
	}
}

// TestTemplateModel parses the whole template with goformation, AWS
// CloudFormation's resource specification as Go types: an unknown resource
// type, a misspelt property or a literal of the wrong type fails. The
// intrinsic functions are left out of the typing (each stands for a value
// only CloudFormation computes; TestTemplateResolves checks what they
// name), so a property set by !Ref is checked for its name only.
func TestTemplateModel(t *testing.T) {
	src := readRepoFile(t, "deploy/template.yaml")
	opts := &intrinsics.ProcessorOptions{IntrinsicHandlerOverrides: map[string]intrinsics.IntrinsicHandler{}}
	for _, fn := range []string{"Ref", "Fn::GetAtt", "Fn::Sub", "Fn::If", "Fn::Join", "Fn::Select", "Fn::Split",
		"Fn::Base64", "Fn::And", "Fn::Or", "Fn::Not", "Fn::Equals", "Fn::FindInMap", "Fn::GetAZs",
		"Fn::ImportValue", "Fn::Cidr", "Fn::Transform", "Fn::Length", "Fn::ToJsonString"} {
		opts.IntrinsicHandlerOverrides[fn] = func(string, any, any) any { return nil }
	}
	if err := checkModel(src, opts); err != nil {
		t.Error(err)
	}

	// The check itself: each kind of mistake fails.
	for name, bad := range map[string]string{
		"unknown type":       "Resources:\n  Q:\n    Type: AWS::SQS::Queu\n",
		"misspelt property":  "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n    Properties:\n      QueueNmae: x\n",
		"nested misspelling": "Resources:\n  T:\n    Type: AWS::Glue::Table\n    Properties:\n      TableInput:\n        StorageDescriptor:\n          Colums: []\n",
		"wrong type":         "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n    Properties:\n      VisibilityTimeout: [60]\n",
	} {
		if err := checkModel([]byte(bad), opts); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// checkModel parses src's resources one at a time, so that an error names
// its resource.
func checkModel(src []byte, opts *intrinsics.ProcessorOptions) error {
	doc, err := parseCFN(src)
	if err != nil {
		return err
	}
	resources, _ := doc["Resources"].(map[string]any)
	known := cloudformation.AllResources()
	var errs []string
	names := make([]string, 0, len(resources))
	for name := range resources {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		r, _ := resources[name].(map[string]any)
		typ, _ := r["Type"].(string)
		if _, ok := known[typ]; !ok && !strings.HasPrefix(typ, "Custom::") {
			errs = append(errs, fmt.Sprintf("%s: unknown resource type %q", name, typ))
			continue
		}
		one, err := json.Marshal(map[string]any{"Resources": map[string]any{name: r}})
		if err == nil {
			_, err = goformation.ParseJSONWithOptions(one, opts)
		}
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s (%s): %v", name, typ, err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("deploy/template.yaml against CloudFormation's resource model:\n%s", strings.Join(errs, "\n"))
	}
	return nil
}
