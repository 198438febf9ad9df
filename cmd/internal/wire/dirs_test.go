package wire

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/autograph/pgbackup/configs"
)

// TestWorldWritableStoreDirIsRefused: a BACKUP_DIR any user may write
// stops the start, naming the directory and the fix; 0750 starts.
func TestWorldWritableStoreDirIsRefused(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		mode os.FileMode
		ok   bool
	}{
		{"private", 0o750, true},
		{"group writable", 0o770, true},
		{"world writable", 0o777, false},
		{"world writable, sticky", 0o777 | os.ModeSticky, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			if err := os.Chmod(dir, tt.mode); err != nil {
				t.Fatal(err)
			}
			_, err := Stores(context.Background(), mustLoad(t, "BACKUP_DIR="+dir))
			if tt.ok {
				if err != nil {
					t.Fatalf("mode %v: %v, want the store to open", tt.mode, err)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), "BACKUP_DIR: ") || !strings.Contains(err.Error(), "chmod o-w "+dir) {
				t.Fatalf("mode %v: err = %v, want a refusal naming BACKUP_DIR and chmod o-w %s", tt.mode, err, dir)
			}
		})
	}
}

// TestWorldWritableWorkDirNeedsTheStickyBit: WORK_DIR may be like /tmp
// (o+w with the sticky bit), never o+w without it.
func TestWorldWritableWorkDirNeedsTheStickyBit(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := checkWorkDir(dir); err == nil || !strings.Contains(err.Error(), "WORK_DIR") || !strings.Contains(err.Error(), "chmod o-w "+dir) {
		t.Fatalf("WORK_DIR 0777: err = %v, want a refusal naming WORK_DIR and the fix", err)
	}
	if err := os.Chmod(dir, 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	if err := checkWorkDir(dir); err != nil {
		t.Fatalf("WORK_DIR 1777: %v, want it accepted (like /tmp)", err)
	}
	if err := checkWorkDir(filepath.Join(dir, "missing")); err != nil {
		t.Fatalf("missing WORK_DIR: %v, want it left to the first task", err)
	}
}

// TestOldBackupDirWarns: with BACKUP_DIR at its default, backups left in
// the old default directory are named in a warning with the setting that
// keeps them; an empty old directory says nothing.
func TestOldBackupDirWarns(t *testing.T) {
	t.Parallel()
	old := t.TempDir()
	var buf bytes.Buffer
	l := logrus.New()
	l.SetOutput(&buf)
	cfg := configs.Defaults()
	warnOldBackupDir(cfg, old, logrus.NewEntry(l))
	if buf.Len() != 0 {
		t.Fatalf("empty old directory: logged %q, want nothing", buf.String())
	}
	if err := os.MkdirAll(filepath.Join(old, "postgres"), 0o750); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"a_1.manifest.json", "a_1.dump.zst", "b_2.manifest.json"} {
		if err := os.WriteFile(filepath.Join(old, "postgres", f), []byte("{}"), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	warnOldBackupDir(cfg, old, logrus.NewEntry(l))
	if got := buf.String(); !strings.Contains(got, "holds 2 backups") || !strings.Contains(got, "BACKUP_DIR="+old) {
		t.Fatalf("old directory with 2 manifests: logged %q, want the count and BACKUP_DIR=%s", got, old)
	}
	buf.Reset()
	cfg.BackupDir = t.TempDir()
	warnOldBackupDir(cfg, old, logrus.NewEntry(l))
	if buf.Len() != 0 {
		t.Fatalf("BACKUP_DIR set: logged %q, want nothing", buf.String())
	}
}
