package main

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/autograph/pgbackup/handlers/client"
)

func TestProgramEnvReplacesSettings(t *testing.T) {
	t.Setenv("CONFIG_FILE", "/etc/elsewhere.yaml")
	t.Setenv("POSTGRES_HOST", "db.example.com")
	t.Setenv("DEMO_UNRELATED", "kept")
	env := programEnv([][2]string{{"POSTGRES_HOST", "127.0.0.1"}})
	for _, want := range []string{"POSTGRES_HOST=127.0.0.1", "DEMO_UNRELATED=kept"} {
		if !slices.Contains(env, want) {
			t.Errorf("programEnv lacks %s", want)
		}
	}
	for _, kv := range env {
		if strings.HasPrefix(kv, "CONFIG_FILE=") || kv == "POSTGRES_HOST=db.example.com" {
			t.Errorf("programEnv keeps %s, which would override the demo's settings", kv)
		}
	}
}

func TestTaskStatusLine(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, json, want string
	}{
		{"pending", `{"state":"pending"}`, "state=pending  phase=-  bytes=0"},
		{"active", `{"state":"active","progress":{"phase":"dump","bytes":42},"worker":"vm:7"}`,
			"state=active  phase=dump  bytes=42  worker=vm:7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var st client.Task
			if err := json.Unmarshal([]byte(tt.json), &st); err != nil {
				t.Fatal(err)
			}
			if got := statusLine(&st); got != tt.want {
				t.Errorf("line() = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestDemoSignsManifests: every program the demo starts gets the same
// signing key, made once per scratch directory and long enough for the
// programs to accept it.
func TestDemoSignsManifests(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	key, err := signingKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	again, err := signingKey(dir)
	if err != nil || again != key {
		t.Fatalf("second call: %q, %v; want the key made once, %q", again, err, key)
	}
	if len(key) < 32 {
		t.Fatalf("key %q is shorter than the 32 characters the programs require", key)
	}
	d := &demo{dir: dir, signingKey: key}
	if !slices.Contains(programEnv(d.settings(8080)), "BACKUP_SIGNING_KEY="+key) {
		t.Error("the programs' environment lacks BACKUP_SIGNING_KEY")
	}
}
