package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
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
			var st taskStatus
			if err := json.Unmarshal([]byte(tt.json), &st); err != nil {
				t.Fatal(err)
			}
			if got := st.line(); got != tt.want {
				t.Errorf("line() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestAPIClientCall(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" {
			http.Error(w, `{"error":"unauthorized"}`, http.StatusUnauthorized)
			return
		}
		if r.URL.Path == "/missing" {
			http.Error(w, `{"error":"not found"}`, http.StatusNotFound)
			return
		}
		var in map[string]any
		_ = json.NewDecoder(r.Body).Decode(&in)
		_ = json.NewEncoder(w).Encode(map[string]any{"echo": in["x"]})
	}))
	t.Cleanup(srv.Close)
	c := apiClient{base: srv.URL, token: "tok", http: srv.Client()}
	var out struct{ Echo string }
	if err := c.call(context.Background(), http.MethodPost, "/x", map[string]string{"x": "hello"}, &out); err != nil || out.Echo != "hello" {
		t.Errorf("call = %v, echo %q; want nil, hello", err, out.Echo)
	}
	err := c.call(context.Background(), http.MethodGet, "/missing", nil, nil)
	if err == nil || !strings.Contains(err.Error(), "HTTP 404") || !strings.Contains(err.Error(), "not found") {
		t.Errorf("call of a missing path = %v, want an error with the status and the answer", err)
	}
	if (apiClient{base: srv.URL, token: "wrong", http: srv.Client()}).ready(context.Background()) {
		t.Error("ready() = true for a 401 answer")
	}
}
