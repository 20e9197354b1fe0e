package deploy

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"
)

// What the evaluator answers for CloudFormation's pseudo parameters.
const (
	testRegion  = "eu-west-1"
	testAccount = "123456789012"
	testStack   = "sixpotify"
)

// repoRoot is the directory holding go.mod, found upwards from the test's
// working directory.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the working directory")
		}
		dir = parent
	}
}

func readRepoFile(t *testing.T, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// parseCFN parses a CloudFormation YAML document into plain values
// (map[string]any, []any, string, bool, int, float64), turning the short
// forms of the intrinsic functions into their long forms: !Ref X becomes
// {"Ref": "X"}, !GetAtt A.B becomes {"Fn::GetAtt": ["A", "B"]}, !Sub S
// becomes {"Fn::Sub": S}, and so on for every !Name.
func parseCFN(src []byte) (map[string]any, error) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(src))
	if err := dec.Decode(&doc); err != nil {
		return nil, err
	}
	v, err := fromNode(&doc)
	if err != nil {
		return nil, err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New("the document is not a mapping")
	}
	return m, nil
}

func fromNode(n *yaml.Node) (any, error) {
	var v any
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil, nil
		}
		return fromNode(n.Content[0])
	case yaml.AliasNode:
		return fromNode(n.Alias)
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i].Value
			if _, dup := m[k]; dup {
				return nil, fmt.Errorf("line %d: key %q twice", n.Content[i].Line, k)
			}
			val, err := fromNode(n.Content[i+1])
			if err != nil {
				return nil, err
			}
			m[k] = val
		}
		v = m
	case yaml.SequenceNode:
		s := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			val, err := fromNode(c)
			if err != nil {
				return nil, err
			}
			s = append(s, val)
		}
		v = s
	case yaml.ScalarNode:
		if isIntrinsicTag(n.Tag) {
			v = n.Value
		} else if err := n.Decode(&v); err != nil {
			return nil, fmt.Errorf("line %d: %w", n.Line, err)
		}
	default:
		return nil, fmt.Errorf("line %d: unexpected YAML node kind %v", n.Line, n.Kind)
	}
	if !isIntrinsicTag(n.Tag) {
		return v, nil
	}
	name := strings.TrimPrefix(n.Tag, "!")
	switch name {
	case "Ref", "Condition":
		return map[string]any{name: v}, nil
	case "GetAtt":
		if s, ok := v.(string); ok {
			res, attr, ok := strings.Cut(s, ".")
			if !ok {
				return nil, fmt.Errorf("line %d: !GetAtt %q is not Resource.Attribute", n.Line, s)
			}
			v = []any{res, attr}
		}
	}
	return map[string]any{"Fn::" + name: v}, nil
}

// isIntrinsicTag reports whether tag is a CloudFormation short form (!Ref)
// rather than a YAML core tag (!!str) or none.
func isIntrinsicTag(tag string) bool {
	return strings.HasPrefix(tag, "!") && !strings.HasPrefix(tag, "!!")
}

// cfn is a parsed template with an evaluator for the intrinsic functions,
// answering placeholders for what only AWS knows (queue URLs, ARNs).
type cfn struct {
	doc    map[string]any
	params map[string]any // parameter values: defaults, then overrides
}

// noValue is what AWS::NoValue evaluates to; lists and maps drop it.
type noValue struct{}

func loadTemplate(t *testing.T) *cfn {
	t.Helper()
	doc, err := parseCFN(readRepoFile(t, "deploy/template.yaml"))
	if err != nil {
		t.Fatalf("deploy/template.yaml: %v", err)
	}
	c := &cfn{doc: doc, params: map[string]any{}}
	for name, p := range c.section("Parameters") {
		pm, _ := p.(map[string]any)
		if d, ok := pm["Default"]; ok {
			c.params[name] = d
		}
	}
	return c
}

func (c *cfn) section(name string) map[string]any {
	m, _ := c.doc[name].(map[string]any)
	return m
}

// resource returns the resource named name, failing the test when missing.
func (c *cfn) resource(t *testing.T, name string) map[string]any {
	t.Helper()
	r, ok := c.section("Resources")[name].(map[string]any)
	if !ok {
		t.Fatalf("template: no resource %s", name)
	}
	return r
}

// props returns a resource's Properties.
func (c *cfn) props(t *testing.T, name string) map[string]any {
	t.Helper()
	p, _ := c.resource(t, name)["Properties"].(map[string]any)
	return p
}

// resourcesOfType returns the names of the resources of type typ, sorted.
func (c *cfn) resourcesOfType(typ string) []string {
	var names []string
	for name, r := range c.section("Resources") {
		if rm, ok := r.(map[string]any); ok && rm["Type"] == typ {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names
}

func (c *cfn) resourceType(name string) (string, bool) {
	r, ok := c.section("Resources")[name].(map[string]any)
	if !ok {
		return "", false
	}
	typ, _ := r["Type"].(string)
	return typ, true
}

// eval evaluates the intrinsic functions in v.
func (c *cfn) eval(v any) (any, error) {
	switch x := v.(type) {
	case map[string]any:
		if len(x) == 1 {
			for k, arg := range x {
				if k == "Ref" || strings.HasPrefix(k, "Fn::") {
					return c.intrinsic(k, arg)
				}
			}
		}
		out := make(map[string]any, len(x))
		for k, e := range x {
			ev, err := c.eval(e)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			if _, drop := ev.(noValue); !drop {
				out[k] = ev
			}
		}
		return out, nil
	case []any:
		out := make([]any, 0, len(x))
		for _, e := range x {
			ev, err := c.eval(e)
			if err != nil {
				return nil, err
			}
			if _, drop := ev.(noValue); !drop {
				out = append(out, ev)
			}
		}
		return out, nil
	}
	return v, nil
}

// evalString evaluates v and requires a string (numbers are formatted as
// CloudFormation passes them on: a Number parameter's Ref is a string).
func (c *cfn) evalString(v any) (string, error) {
	ev, err := c.eval(v)
	if err != nil {
		return "", err
	}
	return scalarString(ev)
}

func scalarString(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case int:
		return strconv.Itoa(x), nil
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), nil
	case bool:
		return strconv.FormatBool(x), nil
	}
	return "", fmt.Errorf("%v (%T) is not a scalar", v, v)
}

func (c *cfn) intrinsic(fn string, arg any) (any, error) {
	switch fn {
	case "Ref":
		name, ok := arg.(string)
		if !ok {
			return nil, fmt.Errorf("Ref of %v", arg)
		}
		return c.ref(name)
	case "Fn::GetAtt":
		parts, ok := arg.([]any)
		if !ok || len(parts) != 2 {
			return nil, fmt.Errorf("Fn::GetAtt of %v", arg)
		}
		res, _ := parts[0].(string)
		attr, err := c.evalString(parts[1])
		if err != nil {
			return nil, err
		}
		return c.getAtt(res, attr)
	case "Fn::Sub":
		return c.sub(arg)
	case "Fn::Join":
		parts, ok := arg.([]any)
		if !ok || len(parts) != 2 {
			return nil, fmt.Errorf("Fn::Join of %v", arg)
		}
		list, err := c.eval(parts[1])
		if err != nil {
			return nil, err
		}
		items, ok := list.([]any)
		if !ok {
			return nil, fmt.Errorf("Fn::Join of a non-list %v", list)
		}
		strs := make([]string, len(items))
		for i, it := range items {
			if strs[i], err = scalarString(it); err != nil {
				return nil, err
			}
		}
		sep, _ := parts[0].(string)
		return strings.Join(strs, sep), nil
	case "Fn::FindInMap":
		parts, ok := arg.([]any)
		if !ok || len(parts) != 3 {
			return nil, fmt.Errorf("Fn::FindInMap of %v", arg)
		}
		keys := make([]string, 3)
		for i, p := range parts {
			var err error
			if keys[i], err = c.evalString(p); err != nil {
				return nil, err
			}
		}
		m, _ := c.section("Mappings")[keys[0]].(map[string]any)
		top, _ := m[keys[1]].(map[string]any)
		v, ok := top[keys[2]]
		if !ok {
			return nil, fmt.Errorf("Fn::FindInMap: no %s.%s.%s in Mappings", keys[0], keys[1], keys[2])
		}
		return v, nil
	case "Fn::If":
		parts, ok := arg.([]any)
		if !ok || len(parts) != 3 {
			return nil, fmt.Errorf("Fn::If of %v", arg)
		}
		name, _ := parts[0].(string)
		cond, err := c.condition(name)
		if err != nil {
			return nil, err
		}
		if cond {
			return c.eval(parts[1])
		}
		return c.eval(parts[2])
	}
	return nil, fmt.Errorf("the tests' evaluator does not know %s", fn)
}

// condition evaluates the named entry of the Conditions section.
func (c *cfn) condition(name string) (bool, error) {
	def, ok := c.section("Conditions")[name]
	if !ok {
		return false, fmt.Errorf("no condition %s", name)
	}
	return c.evalCondition(def)
}

func (c *cfn) evalCondition(v any) (bool, error) {
	m, ok := v.(map[string]any)
	if !ok || len(m) != 1 {
		return false, fmt.Errorf("condition %v", v)
	}
	for fn, arg := range m {
		args, _ := arg.([]any)
		switch fn {
		case "Condition":
			name, _ := arg.(string)
			return c.condition(name)
		case "Fn::Equals":
			if len(args) != 2 {
				return false, fmt.Errorf("Fn::Equals of %v", arg)
			}
			a, err := c.evalString(args[0])
			if err != nil {
				return false, err
			}
			b, err := c.evalString(args[1])
			if err != nil {
				return false, err
			}
			return a == b, nil
		case "Fn::Not":
			if len(args) != 1 {
				return false, fmt.Errorf("Fn::Not of %v", arg)
			}
			b, err := c.evalCondition(args[0])
			return !b, err
		case "Fn::And", "Fn::Or":
			all := fn == "Fn::And"
			for _, a := range args {
				b, err := c.evalCondition(a)
				if err != nil {
					return false, err
				}
				if b != all {
					return b, nil
				}
			}
			return all, nil
		}
		return false, fmt.Errorf("the tests' evaluator does not know the condition function %s", fn)
	}
	panic("unreachable")
}

func (c *cfn) ref(name string) (any, error) {
	switch name {
	case "AWS::Region":
		return testRegion, nil
	case "AWS::AccountId":
		return testAccount, nil
	case "AWS::Partition":
		return "aws", nil
	case "AWS::URLSuffix":
		return "amazonaws.com", nil
	case "AWS::StackName":
		return testStack, nil
	case "AWS::NoValue":
		return noValue{}, nil
	}
	if p, ok := c.section("Parameters")[name].(map[string]any); ok {
		v, ok := c.params[name]
		if !ok {
			// A parameter with no default: a recognisable placeholder.
			v = "PARAM-" + name
		}
		if typ, _ := p["Type"].(string); strings.HasPrefix(typ, "List<") || strings.HasPrefix(typ, "CommaDelimitedList") {
			s, err := scalarString(v)
			if err != nil {
				return nil, err
			}
			var list []any
			for _, e := range strings.Split(s, ",") {
				list = append(list, e)
			}
			return list, nil
		}
		return v, nil
	}
	typ, ok := c.resourceType(name)
	if !ok {
		return nil, fmt.Errorf("Ref to %s, which is neither a parameter nor a resource", name)
	}
	switch typ {
	case "AWS::SQS::Queue":
		qn, err := c.queueName(name)
		if err != nil {
			return nil, err
		}
		return fmt.Sprintf("https://sqs.%s.amazonaws.com/%s/%s", testRegion, testAccount, qn), nil
	case "AWS::DynamoDB::Table":
		return c.namedProp(name, "TableName")
	case "AWS::Logs::LogGroup":
		return c.namedProp(name, "LogGroupName")
	case "AWS::S3::Bucket":
		return c.bucketName(name)
	case "AWS::Athena::WorkGroup":
		return c.namedProp(name, "Name")
	case "AWS::Glue::Database":
		r, _ := c.section("Resources")[name].(map[string]any)
		p, _ := r["Properties"].(map[string]any)
		in, _ := p["DatabaseInput"].(map[string]any)
		return c.evalString(in["Name"])
	case "AWS::ECS::TaskDefinition":
		fam, err := c.namedProp(name, "Family")
		if err != nil {
			return nil, err
		}
		return fmt.Sprintf("arn:aws:ecs:%s:%s:task-definition/%s:1", testRegion, testAccount, fam), nil
	}
	return testStack + "-" + name, nil
}

// namedProp evaluates the resource's name property prop, or makes up a
// name from the logical ID when the template leaves it to CloudFormation.
func (c *cfn) namedProp(res, prop string) (string, error) {
	r, _ := c.section("Resources")[res].(map[string]any)
	p, _ := r["Properties"].(map[string]any)
	if v, ok := p[prop]; ok {
		return c.evalString(v)
	}
	return testStack + "-" + res, nil
}

// bucketName is a bucket's BucketName, or the lower-case name
// CloudFormation would make up.
func (c *cfn) bucketName(res string) (string, error) {
	n, err := c.namedProp(res, "BucketName")
	return strings.ToLower(n), err
}

func (c *cfn) queueName(res string) (string, error) {
	return c.namedProp(res, "QueueName")
}

func (c *cfn) getAtt(res, attr string) (any, error) {
	typ, ok := c.resourceType(res)
	if !ok {
		return nil, fmt.Errorf("Fn::GetAtt of %s, which is not a resource", res)
	}
	switch typ + "." + attr {
	case "AWS::SQS::Queue.Arn":
		qn, err := c.queueName(res)
		return fmt.Sprintf("arn:aws:sqs:%s:%s:%s", testRegion, testAccount, qn), err
	case "AWS::SQS::Queue.QueueName":
		return c.queueName(res)
	case "AWS::SQS::Queue.QueueUrl":
		return c.ref(res)
	case "AWS::DynamoDB::Table.Arn":
		tn, err := c.namedProp(res, "TableName")
		return fmt.Sprintf("arn:aws:dynamodb:%s:%s:table/%s", testRegion, testAccount, tn), err
	case "AWS::S3::Bucket.Arn":
		bn, err := c.bucketName(res)
		return "arn:aws:s3:::" + bn, err
	case "AWS::IAM::Role.Arn":
		return fmt.Sprintf("arn:aws:iam::%s:role/%s-%s", testAccount, testStack, res), nil
	case "AWS::Logs::LogGroup.Arn":
		lg, err := c.namedProp(res, "LogGroupName")
		return fmt.Sprintf("arn:aws:logs:%s:%s:log-group:%s:*", testRegion, testAccount, lg), err
	case "AWS::ECS::Cluster.Arn":
		return fmt.Sprintf("arn:aws:ecs:%s:%s:cluster/%s-%s", testRegion, testAccount, testStack, res), nil
	case "AWS::ECS::Service.Name":
		return c.namedProp(res, "ServiceName")
	}
	return nil, fmt.Errorf("the tests' evaluator does not know Fn::GetAtt %s.%s (%s)", res, attr, typ)
}

var subVar = regexp.MustCompile(`\$\{([^}]*)\}`)

func (c *cfn) sub(arg any) (any, error) {
	var (
		tmpl string
		vars map[string]any
	)
	switch x := arg.(type) {
	case string:
		tmpl = x
	case []any:
		if len(x) != 2 {
			return nil, fmt.Errorf("Fn::Sub of %v", arg)
		}
		tmpl, _ = x[0].(string)
		vars, _ = x[1].(map[string]any)
	default:
		return nil, fmt.Errorf("Fn::Sub of %v", arg)
	}
	var firstErr error
	out := subVar.ReplaceAllStringFunc(tmpl, func(m string) string {
		name := m[2 : len(m)-1]
		if strings.HasPrefix(name, "!") {
			return "${" + name[1:] + "}"
		}
		var (
			v   any
			err error
		)
		if val, ok := vars[name]; ok {
			v, err = c.eval(val)
		} else if res, attr, ok := strings.Cut(name, "."); ok {
			v, err = c.getAtt(res, attr)
		} else {
			v, err = c.ref(name)
		}
		var s string
		if err == nil {
			s, err = scalarString(v)
		}
		if err != nil && firstErr == nil {
			firstErr = fmt.Errorf("Fn::Sub %q: %w", tmpl, err)
		}
		return s
	})
	return out, firstErr
}

// refersTo reports whether the unevaluated v names resource res through Ref,
// Fn::GetAtt or a ${res…} in Fn::Sub.
func refersTo(v any, res string) bool {
	m, ok := v.(map[string]any)
	if !ok {
		return false
	}
	if r, ok := m["Ref"]; ok {
		return r == res
	}
	if g, ok := m["Fn::GetAtt"].([]any); ok && len(g) > 0 {
		return g[0] == res
	}
	if s, ok := m["Fn::Sub"].(string); ok {
		return strings.Contains(s, "${"+res+"}") || strings.Contains(s, "${"+res+".")
	}
	return false
}

func TestParseCFNShortForms(t *testing.T) {
	src := `
A: !Ref X
B: !GetAtt Q.Arn
C: !Sub "dynamodb:${T}"
D: !If [Cond, [!Ref X], !Ref AWS::NoValue]
E: !Join [",", [a, !Ref X]]
F: plain
G: 30
`
	got, err := parseCFN([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"A": map[string]any{"Ref": "X"},
		"B": map[string]any{"Fn::GetAtt": []any{"Q", "Arn"}},
		"C": map[string]any{"Fn::Sub": "dynamodb:${T}"},
		"D": map[string]any{"Fn::If": []any{"Cond", []any{map[string]any{"Ref": "X"}}, map[string]any{"Ref": "AWS::NoValue"}}},
		"E": map[string]any{"Fn::Join": []any{",", []any{"a", map[string]any{"Ref": "X"}}}},
		"F": "plain",
		"G": 30,
	}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("parseCFN (-got +want):\n%s", diff)
	}
}
