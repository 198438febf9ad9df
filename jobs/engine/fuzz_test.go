package engine

import (
	"strings"
	"testing"

	"github.com/autograph/pgbackup/store"
)

// FuzzValidateName checks the property the rest of the system relies on:
// an accepted name can never produce a key outside the backup prefix.
func FuzzValidateName(f *testing.F) {
	for _, s := range []string{"nightly", "a.b-c_d", "../x", "a/b", "", ".x", "a\x00b", strings.Repeat("z", 129), "ü", "..", "x..y", "-", "_"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		n, err := ParseName(name)
		if err != nil {
			return
		}
		if len(name) == 0 || len(name) > MaxNameLen || name[0] == '.' || strings.ContainsAny(name, "/\\\x00 ") {
			t.Fatalf("ParseName accepted %q", name)
		}
		for _, f := range Formats {
			for _, key := range []string{ArchiveKey(n, f, Codec{}), ArchiveKey(n, f, DefaultCodec), ManifestKey(n)} {
				if err := store.ValidateKey(key); err != nil {
					t.Fatalf("accepted name %q gives invalid key %q: %v", name, key, err)
				}
				if !strings.HasPrefix(key, Prefix) || strings.Count(key, "/") != 1 {
					t.Fatalf("accepted name %q escapes the prefix: %q", name, key)
				}
			}
		}
	})
}
