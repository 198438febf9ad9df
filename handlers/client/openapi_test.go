package client

import (
	"bytes"
	"encoding/json"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// The document is read from the server's package as a file, not imported:
// the client must not depend on the server's code.
const openAPIPath = "../openapi.json"

// schema is the part of a JSON Schema the checks below walk.
type schema struct {
	Ref        string             `json:"$ref"`
	Type       any                `json:"type"`
	Properties map[string]*schema `json:"properties"`
	Required   []string           `json:"required"`
	Items      *schema            `json:"items"`
	AnyOf      []*schema          `json:"anyOf"`
}

type parameter struct {
	Name, In string
	Required bool
}

type operation struct {
	Parameters  []parameter `json:"parameters"`
	RequestBody *struct {
		Content map[string]struct {
			Schema *schema `json:"schema"`
		} `json:"content"`
	} `json:"requestBody"`
	Responses map[string]struct {
		Content map[string]struct {
			Schema *schema `json:"schema"`
		} `json:"content"`
	} `json:"responses"`
}

type document struct {
	raw        []byte
	Paths      map[string]map[string]json.RawMessage `json:"paths"`
	Components struct {
		Schemas map[string]*schema `json:"schemas"`
	} `json:"components"`
}

func loadDocument(t *testing.T) *document {
	t.Helper()
	raw, err := os.ReadFile(openAPIPath)
	if err != nil {
		t.Fatal(err)
	}
	d := &document{raw: raw}
	if err := json.Unmarshal(raw, d); err != nil {
		t.Fatalf("%s: %v", openAPIPath, err)
	}
	return d
}

// operation finds the documented operation a request's method and path
// fall under, with its template.
func (d *document) operation(method, path string) (*operation, string, bool) {
	for tmpl, ops := range d.Paths {
		re := "^" + regexp.MustCompile(`\\\{[a-z_]+\\\}`).ReplaceAllString(regexp.QuoteMeta(tmpl), `[^/]+`) + "$"
		if !regexp.MustCompile(re).MatchString(path) {
			continue
		}
		raw, ok := ops[strings.ToLower(method)]
		if !ok {
			continue
		}
		var op operation
		if err := json.Unmarshal(raw, &op); err != nil {
			return nil, "", false
		}
		if pp, ok := ops["parameters"]; ok {
			var shared []parameter
			_ = json.Unmarshal(pp, &shared)
			op.Parameters = append(op.Parameters, shared...)
		}
		return &op, tmpl, true
	}
	return nil, "", false
}

// resolve follows $ref and, for a value that may be null, picks the
// alternative that is not.
func (d *document) resolve(s *schema) *schema {
	for s != nil {
		switch {
		case s.Ref != "":
			s = d.Components.Schemas[strings.TrimPrefix(s.Ref, "#/components/schemas/")]
		case len(s.AnyOf) > 0:
			var next *schema
			for _, alt := range s.AnyOf {
				if alt.Type != "null" {
					next = alt
					break
				}
			}
			s = next
		default:
			return s
		}
	}
	return nil
}

// jsonFields are a struct's JSON names, and whether each is omitted when
// empty.
func jsonFields(t reflect.Type) map[string]reflect.StructField {
	out := map[string]reflect.StructField{}
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		out[name] = f
	}
	return out
}

var timeType = reflect.TypeFor[time.Time]()

// structOf is the struct a field's type holds (through pointers and
// slices), or nil.
func structOf(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || t == timeType {
		return nil
	}
	return t
}

// checkFields reports every JSON field of t that s does not describe,
// down through nested structs; with request set, also every property s
// requires that t lacks or omits when empty.
func (d *document) checkFields(t *testing.T, label string, typ reflect.Type, s *schema, request bool) {
	t.Helper()
	s = d.resolve(s)
	if s == nil {
		t.Errorf("%s: no schema for %s", label, typ)
		return
	}
	if s.Items != nil && len(s.Properties) == 0 {
		s = d.resolve(s.Items)
	}
	if len(s.Properties) == 0 {
		return // "type": "object" with no properties named: anything goes
	}
	fields := jsonFields(typ)
	for name, f := range fields {
		p, ok := s.Properties[name]
		if !ok {
			t.Errorf("%s: field %s (%s.%s) is not a property in openapi.json", label, name, typ.Name(), f.Name)
			continue
		}
		if st := structOf(f.Type); st != nil {
			d.checkFields(t, label+"."+name, st, p, request)
		}
	}
	if !request {
		return
	}
	for _, name := range s.Required {
		f, ok := fields[name]
		if !ok {
			t.Errorf("%s: required property %s is not a field of %s", label, name, typ.Name())
		} else if strings.Contains(f.Tag.Get("json"), "omitempty") {
			t.Errorf("%s: required property %s is omitted when empty in %s", label, name, typ.Name())
		}
	}
}

// TestTypesMatchOpenAPI checks every request and response type field by
// field against the schema of the same meaning: no field the document
// does not know, and (requests) every required property present.
func TestTypesMatchOpenAPI(t *testing.T) {
	t.Parallel()
	d := loadDocument(t)
	for _, tc := range []struct {
		typ     reflect.Type
		schema  string
		request bool
	}{
		{reflect.TypeFor[CreateBackupRequest](), "CreateRequest", true},
		{reflect.TypeFor[RestoreBackupRequest](), "RestoreRequest", true},
		{reflect.TypeFor[DeleteBackupRequest](), "DeleteRequest", true},
		{reflect.TypeFor[VerifyBackupRequest](), "VerifyRequest", true},
		{reflect.TypeFor[BucketBackupRequest](), "BucketBackupRequest", true},
		{reflect.TypeFor[AdoptRequest](), "AdoptRequest", true},
		{reflect.TypeFor[AdoptResult](), "AdoptResult", false},
		{reflect.TypeFor[AdoptItem](), "AdoptItem", false},
		{reflect.TypeFor[BucketRestoreRequest](), "BucketRestoreRequest", true},
		{reflect.TypeFor[Health](), "Health", false},
		{reflect.TypeFor[WhoAmI](), "WhoAmI", false},
		{reflect.TypeFor[TaskAccepted](), "TaskAccepted", false},
		{reflect.TypeFor[BackupList](), "BackupList", false},
		{reflect.TypeFor[Task](), "Task", false},
		{reflect.TypeFor[TargetList](), "TargetList", false},
		{reflect.TypeFor[DrillList](), "DrillList", false},
		{reflect.TypeFor[PrunePreview](), "PrunePreview", false},
		{reflect.TypeFor[AuditList](), "AuditList", false},
	} {
		s, ok := d.Components.Schemas[tc.schema]
		if !ok {
			t.Errorf("%s: no schema %s in openapi.json", tc.typ.Name(), tc.schema)
			continue
		}
		d.checkFields(t, tc.schema, tc.typ, s, tc.request)
	}
}

// compiler compiles schemas of the document by JSON pointer.
func compiler(t *testing.T, d *document) *jsonschema.Compiler {
	t.Helper()
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(d.raw))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.AddResource("openapi.json", doc); err != nil {
		t.Fatal(err)
	}
	return c
}

// validate checks a JSON body against the schema at the pointer.
func validate(c *jsonschema.Compiler, pointer string, body []byte) error {
	sch, err := c.Compile("openapi.json#" + pointer)
	if err != nil {
		return err
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return err
	}
	return sch.Validate(v)
}

func pointerEscape(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

// documentedParam reports whether op takes a parameter name in in.
func documentedParam(op *operation, in, name string) bool {
	return slices.ContainsFunc(op.Parameters, func(p parameter) bool {
		return p.In == in && strings.EqualFold(p.Name, name)
	})
}
