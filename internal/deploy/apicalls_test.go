package deploy

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// The backends that call AWS, each through an interface named API that
// lists the SDK client's methods it uses.
var awsBackends = []struct{ dir, service string }{
	{"internal/queue/sqsqueue", "sqs"},
	{"internal/store/dynamostore", "dynamodb"},
	{"internal/export/s3dest", "s3"},
}

// The packages each binary is made of above the backends. Every name they
// call or mention that a backend declares is an entry into that backend.
var (
	workerPackages   = []string{"cmd/worker", "internal/workercmd", "worker", "internal/backend", "internal/backend/queues", "internal/backend/stores"}
	producerPackages = []string{"cmd/producer", "internal/producercmd", "producer", "producer/asker", "internal/backend", "internal/backend/queues", "internal/backend/stores"}
	// producer export: a package of its own below producercmd, so that its
	// task role is told apart from reprocess's.
	exportPackages = []string{"internal/exportcmd", "internal/export", "internal/export/filedest", "internal/backend", "internal/backend/stores"}
)

// devOnlyEntry is the backend method the worker calls only with
// CREATE_TABLES=true, for development and tests: production tables belong
// to the infrastructure (deploy/template.yaml), so the operations it alone
// reaches are the documented exception of devOnlyActions and must stay out
// of every production policy.
const devOnlyEntry = "CreateTables"

var devOnlyActions = set("dynamodb:CreateTable")

// iamActions maps an SDK client method to the IAM action that authorizes it.
// A batch call is authorized by its single-message action. A method missing
// here fails the test: add it with the action AWS documents for it.
// extraActions are the further actions a method needs.
var extraActions = map[string][]string{
	"s3.CopyObject": {"s3:GetObject"}, // reads the source object
}

var iamActions = map[string]string{
	"sqs.ReceiveMessage":               "sqs:ReceiveMessage",
	"sqs.DeleteMessage":                "sqs:DeleteMessage",
	"sqs.DeleteMessageBatch":           "sqs:DeleteMessage",
	"sqs.ChangeMessageVisibility":      "sqs:ChangeMessageVisibility",
	"sqs.ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility",
	"sqs.SendMessage":                  "sqs:SendMessage",
	"sqs.SendMessageBatch":             "sqs:SendMessage",
	"sqs.GetQueueAttributes":           "sqs:GetQueueAttributes",
	"sqs.GetQueueUrl":                  "sqs:GetQueueUrl",
	"dynamodb.GetItem":                 "dynamodb:GetItem",
	"dynamodb.BatchGetItem":            "dynamodb:BatchGetItem",
	"dynamodb.PutItem":                 "dynamodb:PutItem",
	"dynamodb.UpdateItem":              "dynamodb:UpdateItem",
	"dynamodb.DeleteItem":              "dynamodb:DeleteItem",
	"dynamodb.BatchWriteItem":          "dynamodb:BatchWriteItem",
	"dynamodb.Query":                   "dynamodb:Query",
	"dynamodb.Scan":                    "dynamodb:Scan",
	"dynamodb.CreateTable":             "dynamodb:CreateTable",
	"dynamodb.DescribeTable":           "dynamodb:DescribeTable",
	"s3.PutObject":                     "s3:PutObject",
	"s3.CreateMultipartUpload":         "s3:PutObject",
	"s3.UploadPart":                    "s3:PutObject",
	"s3.CompleteMultipartUpload":       "s3:PutObject",
	"s3.AbortMultipartUpload":          "s3:AbortMultipartUpload",
	"s3.ListObjectsV2":                 "s3:ListBucket",
	"s3.CopyObject":                    "s3:PutObject",
	"s3.DeleteObjects":                 "s3:DeleteObject",
	"s3.GetObject":                     "s3:GetObject",
	"s3.HeadObject":                    "s3:GetObject",
}

// sdkHelpers are the SDK's waiters and paginators, which call the client
// they are given: constructor name → the client method they call.
var sdkHelpers = map[string]string{
	"NewTableExistsWaiter":      "DescribeTable",
	"NewTableNotExistsWaiter":   "DescribeTable",
	"NewQueryPaginator":         "Query",
	"NewScanPaginator":          "Scan",
	"NewListObjectsV2Paginator": "ListObjectsV2",
}

// sdkClients are the SDK's higher-level clients that take a service client
// and call it: package.Func → the client methods they call. The S3
// transfer manager's UploadObject sends a PutObject or a multipart upload
// (aborted on failure); its download methods are not used.
var sdkClients = map[string][]string{
	"transfermanager.New": {"PutObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload", "AbortMultipartUpload"},
}

// backendGraph is what one backend package calls, by name: methods on
// different receivers with one name are merged, which can only
// over-approximate what a caller reaches.
type backendGraph struct {
	service string
	api     map[string]bool            // the methods of its API interface
	calls   map[string]map[string]bool // declared func/method → names it calls or mentions
	direct  map[string]map[string]bool // declared func/method → API methods it calls
}

func parseDir(t *testing.T, rel string) []*ast.File {
	t.Helper()
	dir := filepath.Join(repoRoot(t), rel)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	var files []*ast.File
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, name), nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	if len(files) == 0 {
		t.Fatalf("%s: no Go files", rel)
	}
	return files
}

// calledNames returns the names n calls: the function of every call
// (f(), x.f(), x.f[T]()) and every function or method value passed as an
// argument (retry(ctx, s.save)). Types, fields and declarations do not
// count, so that a type store.Artist is not taken for a call of a method
// Artist.
func calledNames(n ast.Node) map[string]bool {
	names := map[string]bool{}
	name := func(e ast.Expr) {
		for {
			switch x := e.(type) {
			case *ast.IndexExpr:
				e = x.X
				continue
			case *ast.IndexListExpr:
				e = x.X
				continue
			case *ast.ParenExpr:
				e = x.X
				continue
			case *ast.Ident:
				names[x.Name] = true
			case *ast.SelectorExpr:
				names[x.Sel.Name] = true
			}
			return
		}
	}
	ast.Inspect(n, func(n ast.Node) bool {
		if call, ok := n.(*ast.CallExpr); ok {
			name(call.Fun)
			for _, a := range call.Args {
				name(a)
			}
		}
		return true
	})
	return names
}

// mentionedNames returns the names called in files' function bodies and
// package-level initializers: the entries a package can take into another.
func mentionedNames(files []*ast.File) map[string]bool {
	names := map[string]bool{}
	collect := func(n ast.Node) {
		for k := range calledNames(n) {
			names[k] = true
		}
	}
	for _, f := range files {
		for _, d := range f.Decls {
			switch d := d.(type) {
			case *ast.FuncDecl:
				if d.Body != nil {
					collect(d.Body)
				}
			case *ast.GenDecl:
				for _, s := range d.Specs {
					if vs, ok := s.(*ast.ValueSpec); ok {
						for _, v := range vs.Values {
							collect(v)
						}
					}
				}
			}
		}
	}
	return names
}

func loadBackend(t *testing.T, dir, service string) *backendGraph {
	t.Helper()
	files := parseDir(t, dir)
	g := &backendGraph{service: service, api: map[string]bool{}, calls: map[string]map[string]bool{}, direct: map[string]map[string]bool{}}
	for _, f := range files {
		for _, d := range f.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok {
				continue
			}
			for _, s := range gd.Specs {
				ts, ok := s.(*ast.TypeSpec)
				if !ok || ts.Name.Name != "API" {
					continue
				}
				it, ok := ts.Type.(*ast.InterfaceType)
				if !ok {
					t.Fatalf("%s: API is not an interface", dir)
				}
				for _, m := range it.Methods.List {
					if len(m.Names) == 0 {
						t.Fatalf("%s: API embeds an interface; list its methods instead", dir)
					}
					for _, n := range m.Names {
						g.api[n.Name] = true
					}
				}
			}
		}
	}
	if len(g.api) == 0 {
		t.Fatalf("%s: no API interface", dir)
	}
	for _, f := range files {
		for _, d := range f.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok || fd.Body == nil {
				continue
			}
			name := fd.Name.Name
			if g.calls[name] == nil {
				g.calls[name], g.direct[name] = map[string]bool{}, map[string]bool{}
			}
			for callee := range calledNames(fd.Body) {
				g.calls[name][callee] = true
			}
			// API methods count wherever they appear (called, or passed as
			// a method value), and so do the SDK helpers that call them.
			ast.Inspect(fd.Body, func(n ast.Node) bool {
				x, ok := n.(*ast.SelectorExpr)
				if !ok {
					return true
				}
				sel := x.Sel.Name
				if g.api[sel] {
					g.direct[name][sel] = true
				}
				if pkg, ok := x.X.(*ast.Ident); ok {
					for _, m := range sdkClients[pkg.Name+"."+sel] {
						g.direct[name][m] = true
					}
				}
				if pkg, ok := x.X.(*ast.Ident); ok && pkg.Name == service && strings.HasPrefix(sel, "New") &&
					(strings.HasSuffix(sel, "Waiter") || strings.HasSuffix(sel, "Paginator")) {
					m, known := sdkHelpers[sel]
					if !known {
						t.Errorf("%s: %s calls %s.%s: add the client method it calls to sdkHelpers", dir, name, service, sel)
					}
					g.direct[name][m] = true
				}
				return true
			})
		}
	}
	return g
}

// reach returns the API methods reachable from the declared names in entries.
func (g *backendGraph) reach(entries map[string]bool) map[string]bool {
	seen := map[string]bool{}
	var queue []string
	for e := range entries {
		if _, declared := g.calls[e]; declared && !seen[e] {
			seen[e] = true
			queue = append(queue, e)
		}
	}
	api := map[string]bool{}
	for len(queue) > 0 {
		fn := queue[0]
		queue = queue[1:]
		for m := range g.direct[fn] {
			api[m] = true
		}
		for callee := range g.calls[fn] {
			if _, declared := g.calls[callee]; declared && !seen[callee] {
				seen[callee] = true
				queue = append(queue, callee)
			}
		}
	}
	return api
}

// all returns every API method the package calls anywhere.
func (g *backendGraph) all() map[string]bool {
	api := map[string]bool{}
	for _, ms := range g.direct {
		for m := range ms {
			api[m] = true
		}
	}
	return api
}

// codeActions are the IAM actions derived from the code.
type codeActions struct {
	all      map[string]bool // every action the backends call, the dev-only ones included
	worker   map[string]bool // what the worker binary reaches, without CREATE_TABLES
	producer map[string]bool // what the producer's enqueue and reprocess reach
	export   map[string]bool // what producer export reaches
	devOnly  map[string]bool // what only CreateTables reaches
}

func deriveActions(t *testing.T) codeActions {
	t.Helper()
	names := func(dirs []string) map[string]bool {
		all := map[string]bool{}
		for _, d := range dirs {
			for n := range mentionedNames(parseDir(t, d)) {
				all[n] = true
			}
		}
		return all
	}
	workerEntries, producerEntries, exportEntries := names(workerPackages), names(producerPackages), names(exportPackages)
	if !workerEntries[devOnlyEntry] {
		t.Errorf("the worker no longer mentions %s: update devOnlyEntry and the exception", devOnlyEntry)
	}
	delete(workerEntries, devOnlyEntry)
	delete(producerEntries, devOnlyEntry)
	delete(exportEntries, devOnlyEntry)

	ca := codeActions{all: map[string]bool{}, worker: map[string]bool{}, producer: map[string]bool{}, export: map[string]bool{}, devOnly: map[string]bool{}}
	toActions := func(g *backendGraph, methods map[string]bool, into map[string]bool) {
		for m := range methods {
			a, ok := iamActions[g.service+"."+m]
			if !ok {
				t.Errorf("the code calls %s.%s: add its IAM action to iamActions", g.service, m)
				continue
			}
			into[a] = true
			for _, x := range extraActions[g.service+"."+m] {
				into[x] = true
			}
		}
	}
	for _, b := range awsBackends {
		g := loadBackend(t, b.dir, b.service)
		toActions(g, g.all(), ca.all)
		toActions(g, g.reach(workerEntries), ca.worker)
		toActions(g, g.reach(producerEntries), ca.producer)
		toActions(g, g.reach(exportEntries), ca.export)
		toActions(g, g.reach(set(devOnlyEntry)), ca.devOnly)
	}
	return ca
}

func set(items ...string) map[string]bool {
	m := make(map[string]bool, len(items))
	for _, it := range items {
		m[it] = true
	}
	return m
}

func sortedKeys(m map[string]bool) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func union(sets ...map[string]bool) map[string]bool {
	u := map[string]bool{}
	for _, s := range sets {
		for k := range s {
			u[k] = true
		}
	}
	return u
}

func minus(a, b map[string]bool) map[string]bool {
	d := map[string]bool{}
	for k := range a {
		if !b[k] {
			d[k] = true
		}
	}
	return d
}

// TestDerivedActions checks the derivation itself: the development-only
// operations are reached only through CreateTables, and every operation
// the backends call is reached by one of the two binaries (otherwise a
// policy would either miss it or carry dead permissions).
func TestDerivedActions(t *testing.T) {
	ca := deriveActions(t)
	t.Logf("worker:   %v", sortedKeys(ca.worker))
	t.Logf("producer: %v", sortedKeys(ca.producer))
	t.Logf("export:   %v", sortedKeys(ca.export))
	t.Logf("dev only: %v", sortedKeys(ca.devOnly))
	for a := range devOnlyActions {
		if !ca.devOnly[a] {
			t.Errorf("%s is no longer reached through %s: update devOnlyActions", a, devOnlyEntry)
		}
		if ca.worker[a] || ca.producer[a] || ca.export[a] {
			t.Errorf("%s is reached without %s (CREATE_TABLES): production code must not create or describe tables", a, devOnlyEntry)
		}
	}
	prod := minus(ca.all, devOnlyActions)
	if got := union(ca.worker, ca.producer, ca.export); fmt.Sprint(sortedKeys(got)) != fmt.Sprint(sortedKeys(prod)) {
		t.Errorf("actions reached by the binaries %v, want every action the backends call %v", sortedKeys(got), sortedKeys(prod))
	}
	if len(ca.worker) == 0 || len(ca.producer) == 0 || len(ca.export) == 0 {
		t.Errorf("derived nothing for a binary: worker %v, producer %v, export %v", sortedKeys(ca.worker), sortedKeys(ca.producer), sortedKeys(ca.export))
	}
}
