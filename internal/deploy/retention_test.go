package deploy

import (
	"fmt"
	"testing"
	"time"

	"github.com/sixpotify/top-tracks/internal/export"
	"github.com/sixpotify/top-tracks/internal/store/dynamostore"
)

// TestRetention: both tables expire rows by the attribute the store writes,
// the workers get RETAIN_FOR from a parameter, and the lake's lifecycle
// expires each dataset's objects after LakeRetentionDays.
func TestRetention(t *testing.T) {
	c := loadTemplate(t)
	for _, table := range []string{"TracksTable", "ArtistsTable"} {
		ttl, err := c.eval(c.props(t, table)["TimeToLiveSpecification"])
		if err != nil {
			t.Fatal(err)
		}
		m, _ := ttl.(map[string]any)
		if m["AttributeName"] != dynamostore.TTLAttribute || fmt.Sprint(m["Enabled"]) != "true" {
			t.Errorf("%s: TimeToLiveSpecification %v; want %s enabled", table, ttl, dynamostore.TTLAttribute)
		}
	}

	_, env, _ := workerSetup(t, c)
	d, err := time.ParseDuration(env["RETAIN_FOR"])
	if err != nil || d < time.Hour {
		t.Errorf("worker RETAIN_FOR = %q (%v); want a duration of at least 1h", env["RETAIN_FOR"], err)
	}

	prefix, err := c.evalString(map[string]any{"Ref": "LakePrefix"})
	if err != nil {
		t.Fatal(err)
	}
	days, err := c.evalString(map[string]any{"Ref": "LakeRetentionDays"})
	if err != nil {
		t.Fatal(err)
	}
	lc, err := c.eval(c.props(t, "LakeBucket")["LifecycleConfiguration"])
	if err != nil {
		t.Fatal(err)
	}
	rules, _ := lc.(map[string]any)["Rules"].([]any)
	expires := map[string]string{}
	for _, r := range rules {
		m, _ := r.(map[string]any)
		if fmt.Sprint(m["Status"]) == "Enabled" && m["ExpirationInDays"] != nil {
			expires[fmt.Sprint(m["Prefix"])] = fmt.Sprint(m["ExpirationInDays"])
		}
	}
	for _, ds := range []string{export.TopTracks, export.Artists} {
		p := prefix + "/" + ds + "/"
		if got, ok := expires[p]; !ok || got != days {
			t.Errorf("lake: objects under %s expire after %q days (rule present %v); want LakeRetentionDays, %s", p, got, ok, days)
		}
	}
}
