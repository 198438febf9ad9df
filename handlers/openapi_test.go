package handlers

import (
	"bytes"
	"cmp"
	"encoding"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/autograph/pgbackup/jobs/alert"
	"github.com/autograph/pgbackup/jobs/engine"
	"github.com/autograph/pgbackup/jobs/policy"
	"github.com/autograph/pgbackup/jobs/tasks"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

type openAPIDoc struct {
	OpenAPI string `json:"openapi"`
	Paths   map[string]map[string]struct {
		Responses map[string]struct {
			Content map[string]struct {
				Schema json.RawMessage `json:"schema"`
			} `json:"content"`
		} `json:"responses"`
	} `json:"paths"`
}

func loadOpenAPI(t *testing.T) openAPIDoc {
	t.Helper()
	var doc openAPIDoc
	if err := json.Unmarshal(openAPIDocument, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	return doc
}

// openAPIMethods are the methods an OpenAPI path item can describe.
var openAPIMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

var echoParam = regexp.MustCompile(`:([a-z_]+)`)

// TestOpenAPIRoutes walks the router and the document: every route is
// documented and every documented operation is routed.
func TestOpenAPIRoutes(t *testing.T) {
	t.Parallel()
	doc := loadOpenAPI(t)
	if doc.OpenAPI != "3.1.0" {
		t.Fatalf("openapi %q, want 3.1.0", doc.OpenAPI)
	}
	f := newFixtureWith(t, func(d *Deps) { d.Metrics = http.NotFoundHandler() })
	routed := map[string]bool{}
	for _, r := range f.e.Routes() {
		// Group middleware registers catch-alls that only answer 404.
		if strings.HasSuffix(r.Name, "glob..func1") || strings.Contains(r.Name, "NotFoundHandler") || strings.Contains(r.Name, "MethodNotAllowedHandler") {
			continue
		}
		m := strings.ToLower(r.Method)
		if !slices.Contains(openAPIMethods, m) {
			continue // PROPFIND and friends, from Any: OpenAPI cannot say them
		}
		p := echoParam.ReplaceAllString(r.Path, "{$1}")
		if strings.HasSuffix(p, "/*") {
			p = strings.TrimSuffix(p, "*") + "{path}"
		}
		routed[m+" "+p] = true
		if _, ok := doc.Paths[p][m]; !ok {
			t.Errorf("route %s %s (%s) is not in openapi.json", r.Method, r.Path, r.Name)
		}
	}
	for p, ops := range doc.Paths {
		for m := range ops {
			if slices.Contains(openAPIMethods, m) && !routed[m+" "+p] {
				t.Errorf("openapi.json documents %s %s, which is not routed", strings.ToUpper(m), p)
			}
		}
	}
}

// compiledOpenAPI is the document ready to validate against, by JSON
// pointer from "openapi.json".
func compiledOpenAPI(t *testing.T) *jsonschema.Compiler {
	t.Helper()
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	raw, err := jsonschema.UnmarshalJSON(bytes.NewReader(openAPIDocument))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.AddResource("openapi.json", raw); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestResponsesMatchOpenAPI sends real requests and checks each response
// against the document: its status is documented for the route, and its
// JSON body matches the schema given for that status.
func TestResponsesMatchOpenAPI(t *testing.T) {
	t.Parallel()
	doc := loadOpenAPI(t)
	c := compiledOpenAPI(t)
	f := newFixture(t)
	j := func(s string) *strings.Reader { return strings.NewReader(s) }
	cases := []struct {
		method, path, template, token string
		body                          *strings.Reader
	}{
		{"GET", "/healthz", "/healthz", "", nil},
		{"GET", "/readyz", "/readyz", "", nil},
		{"GET", "/api/openapi.json", "/api/openapi.json", "", nil},
		{"GET", "/api/admin/backup/list", "/api/admin/backup/list", testViewer, nil},
		{"GET", "/api/admin/backup/list?limit=1", "/api/admin/backup/list", testViewer, nil},
		{"GET", "/api/admin/backup/list?limit=0", "/api/admin/backup/list", testViewer, nil},
		{"GET", "/api/admin/backup/list", "/api/admin/backup/list", "", nil},
		{"POST", "/api/admin/backup/create", "/api/admin/backup/create", testAdmin, j(`{"backup_name":"fresh-one"}`)},
		{"POST", "/api/admin/backup/create", "/api/admin/backup/create", testAdmin, j(`{"backup_name":"existing"}`)},
		{"POST", "/api/admin/backup/create", "/api/admin/backup/create", testAdmin, j(`{"format":"zip"}`)},
		{"POST", "/api/admin/backup/create", "/api/admin/backup/create", testViewer, j(`{}`)},
		{"POST", "/api/admin/backup/restore", "/api/admin/backup/restore", testAdmin, j(`{"backup_name":"existing","target_database":"copy"}`)},
		{"POST", "/api/admin/backup/restore", "/api/admin/backup/restore", testAdmin, j(`{"backup_name":"missing"}`)},
		{"DELETE", "/api/admin/backup/existing", "/api/admin/backup/{name}", testAdmin, nil},
		{"POST", "/api/admin/backup/existing/verify", "/api/admin/backup/{name}/verify", testAdmin, nil},
		{"GET", "/api/admin/backup/existing/verify", "/api/admin/backup/{name}/verify", testAdmin, nil},
		{"GET", "/api/admin/tasks/no-such-task", "/api/admin/tasks/{id}", testViewer, nil},
		{"GET", "/api/admin/audit", "/api/admin/audit", testAdmin, nil},
		{"GET", "/api/whoami", "/api/whoami", testViewer, nil},
		{"GET", "/api/whoami", "/api/whoami", testAdmin, nil},
		{"GET", "/api/whoami", "/api/whoami", "", nil},
	}
	var created string
	for _, tc := range cases {
		req := httptest.NewRequest(tc.method, tc.path, nil)
		if tc.body != nil {
			req = httptest.NewRequest(tc.method, tc.path, tc.body)
			req.Header.Set("Content-Type", "application/json")
		}
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		rec := httptest.NewRecorder()
		f.e.ServeHTTP(rec, req)
		checkAgainstOpenAPI(t, c, doc, tc.method+" "+tc.path, tc.method, tc.template, rec)
		if tc.path == "/api/admin/backup/create" && rec.Code == http.StatusAccepted {
			var out taskResponse
			_ = json.Unmarshal(rec.Body.Bytes(), &out)
			created = out.TaskID
		}
	}
	// The task the create made, as the status route reports it.
	req := httptest.NewRequest("GET", "/api/admin/tasks/"+created, nil)
	req.Header.Set("Authorization", "Bearer "+testViewer)
	rec := httptest.NewRecorder()
	f.e.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("task status %d: %s", rec.Code, rec.Body)
	}
	checkAgainstOpenAPI(t, c, doc, "task status", "GET", "/api/admin/tasks/{id}", rec)
}

func checkAgainstOpenAPI(t *testing.T, c *jsonschema.Compiler, doc openAPIDoc, label, method, template string, rec *httptest.ResponseRecorder) {
	t.Helper()
	op, ok := doc.Paths[template][strings.ToLower(method)]
	if !ok {
		t.Errorf("%s: %s %s not documented", label, method, template)
		return
	}
	code := strconv.Itoa(rec.Code)
	resp, ok := op.Responses[code]
	if !ok {
		t.Errorf("%s: status %d is not documented for %s %s (body %s)", label, rec.Code, method, template, rec.Body)
		return
	}
	if _, ok := resp.Content["application/json"]; !ok {
		return // a redirect, the page, or metrics text
	}
	ptr := "openapi.json#/paths/" + jsonPointerEscape(template) + "/" + strings.ToLower(method) + "/responses/" + code + "/content/application~1json/schema"
	sch, err := c.Compile(ptr)
	if err != nil {
		t.Fatalf("%s: compile %s: %v", label, ptr, err)
	}
	body, err := jsonschema.UnmarshalJSON(bytes.NewReader(rec.Body.Bytes()))
	if err != nil {
		t.Errorf("%s: body is not JSON: %v: %s", label, err, rec.Body)
		return
	}
	if err := sch.Validate(body); err != nil {
		t.Errorf("%s: %d body does not match openapi.json: %v\n%s", label, rec.Code, err, rec.Body)
	}
}

func jsonPointerEscape(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

// openObjects are the object schemas of openapi.json that may hold
// properties the document does not name, each with its reason. Every
// other object schema must say "additionalProperties": false, so that a
// field the server sends without documenting it fails the response
// checks here and in the end-to-end test (TestEveryJSONOperationMatchesOpenAPI).
var openObjects = map[string]string{
	"/paths/~1api~1openapi.json/get/responses/200/content/application~1json/schema": "the OpenAPI document itself, whose schema is OpenAPI's, not ours",
}

// TestOpenAPISchemasClosed: every object schema in the document is closed,
// apart from openObjects.
func TestOpenAPISchemasClosed(t *testing.T) {
	t.Parallel()
	var doc any
	if err := json.Unmarshal(openAPIDocument, &doc); err != nil {
		t.Fatal(err)
	}
	objects := 0
	var walk func(v any, ptr string)
	walk = func(v any, ptr string) {
		switch v := v.(type) {
		case map[string]any:
			_, props := v["properties"]
			if v["type"] == "object" || props {
				objects++
				// A map (no properties, values of one schema) is closed too:
				// its keys are data, its values are described.
				_, typedMap := v["additionalProperties"].(map[string]any)
				if _, open := openObjects[ptr]; !open && v["additionalProperties"] != false && (props || !typedMap) {
					t.Errorf("%s: an object schema without \"additionalProperties\": false", ptr)
				}
			}
			for k, sub := range v {
				walk(sub, ptr+"/"+jsonPointerEscape(k))
			}
		case []any:
			for i, sub := range v {
				walk(sub, ptr+"/"+strconv.Itoa(i))
			}
		}
	}
	walk(doc, "")
	if objects < 20 {
		t.Fatalf("found %d object schemas; the walk is broken", objects)
	}
}

// TestTaskSchemasMatchTypes keeps the task results and payloads that
// openapi.json describes in step with the Go types the workers write: every
// JSON field of a type is a property of its schema and every property a
// field, down through nested structs. (The end-to-end test validates real
// answers; this also covers task types it does not run, such as alerts.)
func TestTaskSchemasMatchTypes(t *testing.T) {
	t.Parallel()
	var doc map[string]any
	if err := json.Unmarshal(openAPIDocument, &doc); err != nil {
		t.Fatal(err)
	}
	schemas := doc["components"].(map[string]any)["schemas"].(map[string]any)
	for name, typ := range map[string]reflect.Type{
		"ManifestResult":       reflect.TypeFor[engine.Manifest](),
		"RestoreResult":        reflect.TypeFor[engine.RestoreResult](),
		"BucketRestoreResult":  reflect.TypeFor[engine.BucketRestoreResult](),
		"DeleteResult":         reflect.TypeFor[tasks.DeleteOutcome](),
		"VerifyResult":         reflect.TypeFor[tasks.VerifyOutcome](),
		"PruneResult":          reflect.TypeFor[policy.PruneOutcome](),
		"DrillTaskResult":      reflect.TypeFor[tasks.DrillResult](),
		"AlertResult":          reflect.TypeFor[alert.DeliveryOutcome](),
		"BackupPayload":        reflect.TypeFor[tasks.BackupPayload](),
		"RestorePayload":       reflect.TypeFor[tasks.RestorePayload](),
		"DeletePayload":        reflect.TypeFor[tasks.DeletePayload](),
		"VerifyPayload":        reflect.TypeFor[tasks.VerifyPayload](),
		"PrunePayload":         reflect.TypeFor[tasks.PrunePayload](),
		"DrillPayload":         reflect.TypeFor[tasks.DrillPayload](),
		"BaseBackupPayload":    reflect.TypeFor[tasks.BaseBackupPayload](),
		"BucketBackupPayload":  reflect.TypeFor[tasks.BucketBackupPayload](),
		"BucketRestorePayload": reflect.TypeFor[tasks.BucketRestorePayload](),
		"AlertPayload":         reflect.TypeFor[alert.Payload](),
		"AdoptResult":          reflect.TypeFor[tasks.AdoptOutcome](),
		"AdoptPayload":         reflect.TypeFor[tasks.AdoptPayload](),
	} {
		s, ok := schemas[name].(map[string]any)
		if !ok {
			t.Errorf("no schema %s in openapi.json", name)
			continue
		}
		matchFields(t, schemas, name, typ, s)
	}
}

var textMarshaler = reflect.TypeFor[encoding.TextMarshaler]()

// matchFields compares a struct type's JSON fields with an object schema's
// properties (through $ref, a nullable anyOf, arrays and maps).
func matchFields(t *testing.T, schemas map[string]any, label string, typ reflect.Type, s map[string]any) {
	t.Helper()
	for {
		if ref, ok := s["$ref"].(string); ok {
			s = schemas[strings.TrimPrefix(ref, "#/components/schemas/")].(map[string]any)
			continue
		}
		if alts, ok := s["anyOf"].([]any); ok {
			s = alts[slices.IndexFunc(alts, func(a any) bool { return a.(map[string]any)["type"] != "null" })].(map[string]any)
			continue
		}
		break
	}
	for typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	switch {
	case typ.Kind() == reflect.Slice && typ.Elem().Kind() != reflect.Uint8:
		matchFields(t, schemas, label+"[]", typ.Elem(), s["items"].(map[string]any))
		return
	case typ.Kind() == reflect.Map:
		if vs, ok := s["additionalProperties"].(map[string]any); ok {
			matchFields(t, schemas, label+"{}", typ.Elem(), vs)
		} else {
			t.Errorf("%s: a map described without a schema for its values", label)
		}
		return
	case typ.Kind() != reflect.Struct || typ == reflect.TypeFor[time.Time]() || typ.Implements(textMarshaler):
		return
	}
	props, _ := s["properties"].(map[string]any)
	fields := map[string]reflect.Type{}
	var collect func(reflect.Type)
	collect = func(st reflect.Type) {
		for f := range st.Fields() {
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			switch {
			case name == "-" || !f.IsExported():
			case f.Anonymous && name == "":
				collect(f.Type)
			default:
				fields[cmp.Or(name, f.Name)] = f.Type
			}
		}
	}
	collect(typ)
	for name, ft := range fields {
		p, ok := props[name].(map[string]any)
		if !ok {
			t.Errorf("%s: field %s of %s is not a property in openapi.json", label, name, typ)
			continue
		}
		matchFields(t, schemas, label+"."+name, ft, p)
	}
	for name := range props {
		if _, ok := fields[name]; !ok {
			t.Errorf("%s: property %s is no field of %s", label, name, typ)
		}
	}
}
