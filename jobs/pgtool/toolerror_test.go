package pgtool

import (
	"errors"
	"testing"
)

// TestClassifyWhatToolsPrint covers what the real-server test cannot
// produce: translated messages, pg_restore's nesting, truncated output.
func TestClassifyWhatToolsPrint(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, stderr, first string
		want                error
	}{
		{"pg_restore nests the server's error",
			"pg_restore: error: could not execute query: ERROR:  schema \"sales\" already exists\nCommand was: CREATE SCHEMA sales;\n",
			`ERROR:  schema "sales" already exists`, ErrObjectExists},
		{"psql verbose, translated", "psql:/w/archive:25: FEHLER:  42P07: Relation »t« existiert bereits\n", "", ErrObjectExists},
		{"translated without SQLSTATE is retried", "psql:/w/archive:25: FEHLER:  Relation »t« existiert bereits\n", "", nil},
		{"notices before the error are skipped",
			"psql:a:1: NOTICE:  00000: table \"x\" does not exist, skipping\npsql:a:2: ERROR:  57P01: terminating connection due to administrator command\n",
			"ERROR:  57P01: terminating connection due to administrator command", nil},
		{"connection to a missing database",
			"pg_restore: error: connection to server at \"h\" (127.0.0.1), port 5432 failed: FATAL:  database \"nope\" does not exist\n",
			`FATAL:  database "nope" does not exist`, ErrNoDatabase},
		{"lost connection", "pg_restore: error: could not execute query: server closed the connection unexpectedly\n",
			"could not execute query: server closed the connection unexpectedly", nil},
		{"out of disk", "pg_restore: error: could not execute query: ERROR:  could not extend file \"base/1/2\": No space left on device\n",
			`ERROR:  could not extend file "base/1/2": No space left on device`, nil},
		{"nothing recognisable", "Segmentation fault\n", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := Classify(tt.stderr); got != tt.want {
				t.Errorf("Classify = %v, want %v", got, tt.want)
			}
			if tt.first != "" {
				if got := FirstErrorLine(tt.stderr); got != tt.first {
					t.Errorf("FirstErrorLine = %q, want %q", got, tt.first)
				}
			}
		})
	}
}

// TestToolErrorKeepsTheFirstErrorOfLongOutput: the tail of stderr may no
// longer hold the error that stopped the tool; the head does.
func TestToolErrorKeepsTheFirstErrorOfLongOutput(t *testing.T) {
	t.Parallel()
	head := "pg_restore: error: could not execute query: ERROR:  relation \"t\" already exists\n"
	err := newToolError("pg_restore", errors.New("exit status 1"), head, "...noise\nmore noise")
	if err.FirstError != `ERROR:  relation "t" already exists` || !errors.Is(err, ErrObjectExists) {
		t.Fatalf("FirstError = %q, Kind = %v; want the head's error, ErrObjectExists", err.FirstError, err.Kind)
	}
	if want := `pg_restore: exit status 1: ERROR:  relation "t" already exists: ...noise` + "\nmore noise"; err.Error() != want {
		t.Fatalf("Error() = %q, want %q", err.Error(), want)
	}
}
