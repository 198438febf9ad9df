package pgtool

import (
	"encoding/json"
	"errors"
	"testing"
)

// TestIdentOnlyByParsing: an Ident read from JSON is parsed, not trusted,
// and JSON carries the plain name.
func TestIdentOnlyByParsing(t *testing.T) {
	t.Parallel()
	var id Ident
	if err := json.Unmarshal([]byte(`"a;b"`), &id); !errors.Is(err, ErrBadIdent) {
		t.Fatalf("Unmarshal of a;b: err = %v, want ErrBadIdent", err)
	}
	if err := json.Unmarshal([]byte(`"shop_1"`), &id); err != nil || id.String() != "shop_1" {
		t.Fatalf("Unmarshal of shop_1 = %q, %v", id, err)
	}
	if b, err := json.Marshal(id); err != nil || string(b) != `"shop_1"` {
		t.Fatalf("Marshal = %s, %v", b, err)
	}
	if err := json.Unmarshal([]byte(`""`), &id); err != nil || !id.IsZero() {
		t.Fatalf("Unmarshal of an empty name = %q, %v; want the zero Ident", id, err)
	}
	if _, err := ParseIdent(""); !errors.Is(err, ErrBadIdent) {
		t.Fatalf("ParseIdent(\"\") err = %v, want ErrBadIdent", err)
	}
}
