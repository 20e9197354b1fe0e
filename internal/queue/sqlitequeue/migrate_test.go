package sqlitequeue_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sixpotify/top-tracks/internal/queue"
	"github.com/sixpotify/top-tracks/internal/queue/sqlitequeue"
	"github.com/sixpotify/top-tracks/internal/sqlitedb"
)

// A file written before messages carried attributes opens, keeps its
// messages, and carries attributes from then on.
func TestAFileWithoutAttributesIsMigrated(t *testing.T) {
	ctx := context.Background()
	path := dbPath(t)
	db, err := sqlitedb.Open(ctx, path, `
CREATE TABLE queue_messages (
	seq INTEGER PRIMARY KEY, queue TEXT NOT NULL, id TEXT NOT NULL, body BLOB NOT NULL,
	sent_at INTEGER NOT NULL, visible_at INTEGER NOT NULL,
	receive_count INTEGER NOT NULL DEFAULT 0, receipt TEXT);
CREATE TABLE queue_dead_letters (
	seq INTEGER PRIMARY KEY, queue TEXT NOT NULL, id TEXT NOT NULL, body BLOB NOT NULL,
	sent_at INTEGER NOT NULL, receive_count INTEGER NOT NULL, dead_at INTEGER NOT NULL);
INSERT INTO queue_messages (queue, id, body, sent_at, visible_at) VALUES ('q', 'old-1', 'old', 0, 0);`)
	if err != nil {
		t.Fatalf("writing an old file: %v", err)
	}
	db.Close()

	q := open(t, path, "q", sqlitequeue.Options{VisibilityTimeout: time.Minute})
	attrs := map[string]string{"postponed": "2"}
	if errs, err := q.SendBatch(ctx, []queue.Entry{{Body: []byte("new"), Attributes: attrs}}); err != nil || errs[0] != nil {
		t.Fatalf("SendBatch = %v, %v", errs, err)
	}
	got, err := q.Receive(ctx, 10, 0)
	if err != nil {
		t.Fatalf("Receive: %v", err)
	}
	bodies := map[string]map[string]string{}
	for _, m := range got {
		bodies[string(m.Body)] = m.Attributes
	}
	want := map[string]map[string]string{"old": nil, "new": attrs}
	if diff := cmp.Diff(bodies, want); diff != "" {
		t.Errorf("received (-got +want):\n%s", diff)
	}
}
