package sqlitequeue_test

import (
	"strings"
	"testing"

	"github.com/sixpotify/top-tracks/internal/queue/sqlitequeue"
)

func TestParseURL(t *testing.T) {
	tests := []struct {
		url, path, name string
		wantErr         string // part of the error; "" for none
	}{
		{url: "sqlite:sixpotify.db", path: "sixpotify.db", name: "default"},
		{url: "sqlite:sixpotify.db?queue=bulk", path: "sixpotify.db", name: "bulk"},
		{url: "sqlite:/var/lib/sixpotify/q.db?queue=chat_bot-1", path: "/var/lib/sixpotify/q.db", name: "chat_bot-1"},
		{url: "sqlite:///var/lib/q.db", path: "/var/lib/q.db", name: "default"},
		{url: "sqlite:data/dir with space.db", path: "data/dir with space.db", name: "default"},
		{url: "sqlite:q.db?queue=" + strings.Repeat("a", 80), path: "q.db", name: strings.Repeat("a", 80)},
		{url: "sqlite:", wantErr: "no file path"},
		{url: "sqlite:?queue=bulk", wantErr: "no file path"},
		{url: "sqlite::memory:", wantErr: "not a file path"},
		{url: "sqlite:file:q.db?mode=memory", wantErr: "not a file path"},
		{url: "sqlite://host/q.db", wantErr: "names a host"},
		{url: "sqlite:q.db?queue=", wantErr: "queue name"},
		{url: "sqlite:q.db?queue=a.b", wantErr: "queue name"},
		{url: "sqlite:q.db?queue=" + strings.Repeat("a", 81), wantErr: "queue name"},
		{url: "sqlite:q.db?queue=a&queue=b", wantErr: "2 times"},
		{url: "sqlite:q.db?lane=bulk", wantErr: `unknown parameter "lane"`},
		{url: "sqlite:q.db?queue=%zz", wantErr: "bad query"},
		{url: "https://sqs.us-east-1.amazonaws.com/1/q", wantErr: "want sqlite:PATH"},
		{url: "sixpotify.db", wantErr: "want sqlite:PATH"},
		{url: "", wantErr: "want sqlite:PATH"},
	}
	for _, tt := range tests {
		path, name, err := sqlitequeue.ParseURL(tt.url)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), tt.url) {
				t.Errorf("ParseURL(%q) = %q, %q, %v; want an error naming the URL and saying %q", tt.url, path, name, err, tt.wantErr)
			}
			continue
		}
		if err != nil || path != tt.path || name != tt.name {
			t.Errorf("ParseURL(%q) = %q, %q, %v; want %q, %q", tt.url, path, name, err, tt.path, tt.name)
		}
	}
}
