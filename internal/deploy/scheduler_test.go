package deploy

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// readmeSnippet returns the YAML block of deploy/README.md that declares an
// AWS::Scheduler::Schedule.
func readmeSnippet(t *testing.T) string {
	t.Helper()
	readme := string(readRepoFile(t, "deploy/README.md"))
	for _, block := range strings.Split(readme, "```yaml\n")[1:] {
		body, _, ok := strings.Cut(block, "\n```")
		if ok && strings.Contains(body, "AWS::Scheduler::Schedule") {
			return body
		}
	}
	t.Fatal("deploy/README.md: no ```yaml block with an AWS::Scheduler::Schedule")
	return ""
}

// TestSchedulerSnippet adds the README's schedule to the template and
// checks that it resolves and runs `producer reprocess --stale-after 168h`
// in the producer's container, with a flag the producer has.
func TestSchedulerSnippet(t *testing.T) {
	c := loadTemplate(t)
	snippet, err := parseCFN([]byte(readmeSnippet(t)))
	if err != nil {
		t.Fatalf("the README's scheduler snippet: %v", err)
	}
	added, _ := snippet["Resources"].(map[string]any)
	if len(added) == 0 {
		t.Fatal("the README's scheduler snippet declares no Resources")
	}
	resources := c.section("Resources")
	for name, r := range added {
		if _, clash := resources[name]; clash {
			t.Fatalf("the snippet's %s is already a resource of the template", name)
		}
		resources[name] = r
	}
	for name, r := range added {
		if _, err := c.eval(r); err != nil {
			t.Errorf("snippet %s: %v", name, err)
		}
	}

	var schedules []string
	for _, name := range c.resourcesOfType("AWS::Scheduler::Schedule") {
		if _, ok := added[name]; ok {
			schedules = append(schedules, name)
		}
	}
	if len(schedules) != 1 {
		t.Fatalf("snippet schedules %v, want one", schedules)
	}
	target, _ := c.props(t, schedules[0])["Target"].(map[string]any)
	ecs, _ := target["EcsParameters"].(map[string]any)
	if !refersTo(target["Arn"], "Cluster") || !refersTo(ecs["TaskDefinitionArn"], "ProducerTaskDefinition") {
		t.Errorf("the schedule targets %v / %v, want the Cluster and ProducerTaskDefinition", target["Arn"], ecs["TaskDefinitionArn"])
	}
	var input struct {
		ContainerOverrides []struct {
			Name    string   `json:"name"`
			Command []string `json:"command"`
		} `json:"containerOverrides"`
	}
	raw, _ := target["Input"].(string)
	if err := json.Unmarshal([]byte(raw), &input); err != nil || len(input.ContainerOverrides) != 1 {
		t.Fatalf("the schedule's Input %q is not one container override: %v", raw, err)
	}
	ov := input.ContainerOverrides[0]
	c.container(t, "ProducerTaskDefinition", ov.Name) // fails the test if there is none
	if diff := cmp.Diff(ov.Command, []string{"reprocess", "--stale-after", "168h"}); diff != "" {
		t.Errorf("the schedule's command (-got +want):\n%s", diff)
	}
	if d, err := time.ParseDuration(ov.Command[len(ov.Command)-1]); err != nil || d != 7*24*time.Hour {
		t.Errorf("--stale-after %q: %v", ov.Command[len(ov.Command)-1], err)
	}
	if !producerFlags(t)["stale-after"] {
		t.Error("the producer has no --stale-after flag")
	}

	// The scheduler's role may pass both roles the task runs with.
	passed := map[string]bool{}
	for _, name := range c.resourcesOfType("AWS::IAM::Role") {
		if _, ok := added[name]; !ok {
			continue
		}
		pols, _ := c.props(t, name)["Policies"].([]any)
		for _, p := range pols {
			doc := p.(map[string]any)["PolicyDocument"].(map[string]any)
			for _, st := range doc["Statement"].([]any) {
				sm := st.(map[string]any)
				if sm["Action"] != "iam:PassRole" {
					continue
				}
				res, _ := sm["Resource"].([]any)
				for _, r := range res {
					for _, role := range []string{"ExecutionRole", "ProducerTaskRole"} {
						if refersTo(r, role) {
							passed[role] = true
						}
					}
				}
			}
		}
	}
	if !passed["ExecutionRole"] || !passed["ProducerTaskRole"] {
		t.Errorf("the scheduler's role passes %v, want ExecutionRole and ProducerTaskRole", sortedKeys(passed))
	}
}
