package engine

import (
	"errors"
	"strings"
	"testing"
)

// TestParseWALRanges: the ranges are found past a list of files of any
// length, in PostgreSQL's notation, and a manifest without them, or with
// ranges out of order, is refused.
func TestParseWALRanges(t *testing.T) {
	t.Parallel()
	files := strings.Repeat(`{ "Path": "base/1/1", "Size": 8192, "Checksum": "[{x}]" },`, 1000)
	good := `{ "PostgreSQL-Backup-Manifest-Version": 1, "Files": [` + files + `{ "Path": "PG_VERSION", "Size": 3 }],
"WAL-Ranges": [
{ "Timeline": 1, "Start-LSN": "0/2000028", "End-LSN": "0/2000100" },
{ "Timeline": 2, "Start-LSN": "0/2000100", "End-LSN": "1/A0" }
],
"Manifest-Checksum": "7f59"}`
	ranges, err := parseWALRanges(strings.NewReader(good))
	if err != nil {
		t.Fatalf("parseWALRanges: %v", err)
	}
	if len(ranges) != 2 || ranges[0].start.String() != "0/2000028" || ranges[1].end.String() != "1/A0" || ranges[1].Timeline != 2 {
		t.Fatalf("ranges = %+v; want 0/2000028 on 1 to 1/A0 on 2", ranges)
	}
	for name, bad := range map[string]string{
		"no ranges":     `{"Files": []}`,
		"empty":         `{"WAL-Ranges": []}`,
		"bad LSN":       `{"WAL-Ranges": [{"Timeline": 1, "Start-LSN": "0/X", "End-LSN": "0/2"}]}`,
		"backwards":     `{"WAL-Ranges": [{"Timeline": 1, "Start-LSN": "0/3", "End-LSN": "0/2"}]}`,
		"not an object": `[1]`,
	} {
		if _, err := parseWALRanges(strings.NewReader(bad)); !errors.Is(err, ErrInvalidArchive) {
			t.Errorf("%s: err = %v; want ErrInvalidArchive", name, err)
		}
	}
}

func TestParseBackupLabel(t *testing.T) {
	t.Parallel()
	start, tli, err := parseBackupLabel([]byte("START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\n" +
		"CHECKPOINT LOCATION: 0/2000060\nBACKUP METHOD: streamed\nLABEL: pgbackup x\nSTART TIMELINE: 3\n"))
	if err != nil || start.String() != "0/2000028" || tli != 3 {
		t.Fatalf("parseBackupLabel = %s, %d, %v; want 0/2000028 on timeline 3", start, tli, err)
	}
	if _, _, err := parseBackupLabel([]byte("START WAL LOCATION: 0/2000028 (file x)\n")); !errors.Is(err, ErrInvalidArchive) {
		t.Errorf("a label without START TIMELINE: %v; want ErrInvalidArchive", err)
	}
}
