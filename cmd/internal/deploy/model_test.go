package deploy

import (
	"errors"
	"slices"
	"testing"

	"gopkg.in/yaml.v3"
)

// The checks are only as good as the model of compose under them: these
// pin down the parts they rely on.

func tree(t *testing.T, src string) any {
	t.Helper()
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(src), &n); err != nil {
		t.Fatal(err)
	}
	return toTree(&n)
}

func TestMergeLikeCompose(t *testing.T) {
	t.Parallel()
	base := tree(t, `
x-common: &common
  depends_on: {db: {condition: service_healthy}, cache: {}}
  ports: ["127.0.0.1:80:80"]
services:
  db: {image: "postgres:16.11"}
  app:
    <<: *common
    command: ["a", "b"]
    environment: {A: "1"}
`)
	over := tree(t, `
services:
  db: {profiles: [extra]}
  app:
    depends_on: {db: !reset null}
    ports: !override ["8443:80"]
    command: ["c"]
    environment: {B: "2"}
    volumes: ["v:/data"]
`)
	merged := map[string]any{}
	for _, f := range []any{base, over} {
		normalize(f)
		merge("", merged, f)
	}
	app := merged["services"].(map[string]any)["app"].(map[string]any)
	if deps := app["depends_on"].(map[string]any); len(deps) != 1 || deps["cache"] == nil {
		t.Errorf("depends_on = %v, want only cache (db reset)", deps)
	}
	if ports := app["ports"].([]any); len(ports) != 1 || ports[0] != "8443:80" {
		t.Errorf("ports = %v, want [8443:80] (!override replaces)", ports)
	}
	if cmd := app["command"].([]any); len(cmd) != 1 || cmd[0] != "c" {
		t.Errorf("command = %v, want [c] (replaced, not appended)", cmd)
	}
	if env := app["environment"].(map[string]any); env["A"] != "1" || env["B"] != "2" {
		t.Errorf("environment = %v, want A and B merged", env)
	}
	p := &project{services: map[string]map[string]any{}}
	for k, v := range merged["services"].(map[string]any) {
		p.services[k] = v.(map[string]any)
	}
	if got := p.active(); !slices.Equal(got, []string{"app"}) {
		t.Errorf("active = %v, want [app] (db is in a profile)", got)
	}
}

func TestInterpolate(t *testing.T) {
	t.Parallel()
	env := map[string]string{"SET": "v", "EMPTY": ""}
	for _, tc := range []struct {
		name, in, want string
		missing        bool
	}{
		{name: "plain", in: "a${SET}b$SET", want: "avbv"},
		{name: "escaped", in: "$$SET $${SET}", want: "$SET ${SET}"},
		{name: "default when unset", in: "${NO:-d}", want: "d"},
		{name: "default when empty", in: "${EMPTY:-d}", want: "d"},
		{name: "dash keeps empty", in: "${EMPTY-d}", want: ""},
		{name: "nested default", in: "${NO:-${SET}x}", want: "vx"},
		{name: "alternative", in: "${SET:+alt}${NO:+alt}", want: "alt"},
		{name: "required set", in: "${SET:?need it}", want: "v"},
		{name: "required empty", in: "${EMPTY:?need it}", missing: true},
		{name: "required unset", in: "${NO?need it}", missing: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, _, err := interpolate(tc.in, env)
			var m *missingError
			if tc.missing != errors.As(err, &m) || (!tc.missing && err != nil) {
				t.Fatalf("interpolate(%q) error = %v, want missing=%v", tc.in, err, tc.missing)
			}
			if !tc.missing && got != tc.want {
				t.Errorf("interpolate(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestImageRefRules(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		ref string
		ok  bool
	}{
		{"postgres:16.11", true},
		{"redis:7.4.6-alpine", true},
		{"quay.io/minio/minio:RELEASE.2025-09-07T16-13-09Z", true},
		{"postgres@sha256:0123", true},
		{"postgres", false},
		{"postgres:16", false},
		{"redis:latest", false},
		{"minio/minio:RELEASE.2025-09-07T16-13-09Z", false},
		{"docker.io/minio/mc:RELEASE.2025-08-13T08-35-41Z", false},
		{"localhost:5000/tool:1.2", true},
	} {
		if err := checkImageRef(tc.ref); (err == nil) != tc.ok {
			t.Errorf("checkImageRef(%q) = %v, want ok=%v", tc.ref, err, tc.ok)
		}
	}
}
