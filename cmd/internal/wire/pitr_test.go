package wire

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/autograph/pgbackup/configs"
)

// TestWALArchivesOnePerServer: pitr targets on one server share one
// archive and slot, named after the first; another server has its own;
// the default target's server is POSTGRES_*'s, with its password.
func TestWALArchivesOnePerServer(t *testing.T) {
	t.Parallel()
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"POSTGRES_HOST=db1", "POSTGRES_PASSWORD=pgpw", "WAL_PARTIAL_INTERVAL=2s", `BACKUP_TARGETS=[
		{"name":"plain"},
		{"name":"app","pitr":true,"pitr_window":"7d"},
		{"name":"app2","database":"other","pitr":true,"pitr_window":"240h"},
		{"name":"far","host":"db2","user":"rep","password_file":"` + pw + `","pitr":true,"sync":true,"allow_unlimited_slot":true}]`}
	s, err := LoadAs(Archiver, "", env)
	if err != nil {
		t.Fatal(err)
	}
	if s.Config.WALPartialInterval != 2*time.Second {
		t.Errorf("WAL_PARTIAL_INTERVAL = %s", s.Config.WALPartialInterval)
	}
	if len(s.WALArchives) != 2 {
		t.Fatalf("archives = %+v, want 2", s.WALArchives)
	}
	a, b := s.WALArchives[0], s.WALArchives[1]
	if a.Name != "app" || a.Slot != "pgbackup_app" || !slices.Equal(a.Targets, []string{"app", "app2"}) ||
		a.Window != 10*24*time.Hour || a.Conn.Host != "db1" || a.Conn.Password != "pgpw" || a.Sync || a.AllowUnlimitedSlot {
		t.Errorf("first archive = %+v", a)
	}
	if b.Name != "far" || b.Slot != "pgbackup_far" || b.Conn.Host != "db2" || b.Conn.User != "rep" || b.Conn.Password != "secret" ||
		!b.Sync || !b.AllowUnlimitedSlot || b.Window != DefaultPITRWindow {
		t.Errorf("second archive = %+v", b)
	}
	if got, ok := s.WALArchiveOf("app2"); !ok || got.Name != "app" {
		t.Errorf("WALArchiveOf(app2) = %+v, %v", got, ok)
	}
	if _, ok := s.WALArchiveOf("plain"); ok {
		t.Error("a target without pitr has a WAL archive")
	}
	if got := s.walArchiveFor("plain", nil); got.Name != "plain" {
		t.Errorf("walArchiveFor(plain) = %+v", got)
	}
}

func TestWALArchiveSettingsRefused(t *testing.T) {
	t.Parallel()
	for name, targets := range map[string]string{
		"window":             `[{"name":"a","pitr":true,"pitr_window":"a week"}]`,
		"negative window":    `[{"name":"a","pitr":true,"pitr_window":"-1h"}]`,
		"window without":     `[{"name":"a","pitr_window":"7d"}]`,
		"sync without":       `[{"name":"a","sync":true}]`,
		"bucket":             `[{"name":"a","kind":"bucket","bucket":"files","pitr":true}]`,
		"shared, sync apart": `[{"name":"a","pitr":true},{"name":"b","database":"x","pitr":true,"sync":true}]`,
	} {
		_, err := LoadAs(Archiver, "", []string{"BACKUP_TARGETS=" + targets})
		if !slices.Contains(configs.Settings(err), "BACKUP_TARGETS") {
			t.Errorf("%s: err = %v, want one naming BACKUP_TARGETS", name, err)
		}
	}
	_, err := LoadAs(Archiver, "", []string{"WAL_PARTIAL_INTERVAL=10ms"})
	if !slices.Contains(configs.Settings(err), "WAL_PARTIAL_INTERVAL") {
		t.Errorf("WAL_PARTIAL_INTERVAL=10ms: err = %v", err)
	}
	if _, err := LoadAs(Worker, "", []string{`BACKUP_TARGETS=[{"name":"a","rpo":"2d"}]`}); err != nil {
		t.Errorf("rpo 2d: %v", err)
	}
}

// TestArchiverReadsNoIdentities: the archiver only encrypts, so an
// unreadable ENCRYPTION_IDENTITY_FILE does not stop it; it reads the
// targets' password files, which it connects with.
func TestArchiverReadsNoIdentities(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(t.TempDir(), "missing")
	if _, err := LoadAs(Archiver, "", []string{"ENCRYPTION_IDENTITY_FILE=" + missing}); err != nil {
		t.Errorf("archiver with an unreadable identity file: %v", err)
	}
	_, err := LoadAs(Archiver, "", []string{`BACKUP_TARGETS=[{"name":"a","host":"h","password_file":"` + missing + `","pitr":true}]`})
	if err == nil || !strings.Contains(err.Error(), "password_file") {
		t.Errorf("archiver with an unreadable password_file: %v", err)
	}
}

// TestBaseBackupSchedule: a pitr target takes base backups daily unless
// it says when, or "off"; a target without pitr has none, and none is
// scheduled while BACKUP_ENABLED is false; base_backup_schedule without
// pitr, or not a schedule, is refused naming BACKUP_TARGETS.
func TestBaseBackupSchedule(t *testing.T) {
	t.Parallel()
	targets := `BACKUP_TARGETS=[{"name":"plain"},{"name":"daily","database":"d","pitr":true},
		{"name":"hourly","host":"db2","pitr":true,"base_backup_schedule":"@every 1h"},
		{"name":"never","host":"db3","pitr":true,"base_backup_schedule":"off"},
		{"name":"shared","database":"e","pitr":true}, {"name":"shared_own","database":"f","pitr":true,"base_backup_schedule":"@every 2h"}]`
	s, err := LoadAs(Scheduler, "", []string{targets})
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"plain": "", "daily": DefaultBaseBackupSchedule, "hourly": "@every 1h", "never": "",
		// One server, one WAL archive: the default belongs to its first
		// pitr target only; another has base backups when it asks.
		"shared": "", "shared_own": "@every 2h"} {
		tg, _ := s.Targets.Get(name)
		got := ""
		if tg.BaseBackupSchedule != nil {
			got = tg.BaseBackupSchedule.Spec
		}
		if got != want || tg.PITR != (name != "plain") {
			t.Errorf("%s: base backup schedule %q, pitr %v; want %q, pitr %v", name, got, tg.PITR, want, name != "plain")
		}
	}
	if d, _ := s.Targets.Get("daily"); d.BaseBackupSchedule != nil && d.BaseBackupSchedule.Slot != 24*time.Hour {
		t.Errorf("default slot = %s, want 24h", d.BaseBackupSchedule.Slot)
	}
	s, err = LoadAs(Scheduler, "", []string{targets, "BACKUP_ENABLED=false"})
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := s.Targets.Get("daily"); d.BaseBackupSchedule != nil || !d.PITR {
		t.Errorf("BACKUP_ENABLED=false: daily = %+v, want pitr and no base backup schedule", d)
	}
	for name, targets := range map[string]string{
		"without pitr": `[{"name":"a","base_backup_schedule":"@daily"}]`,
		"not a spec":   `[{"name":"a","pitr":true,"base_backup_schedule":"daily"}]`,
	} {
		_, err := LoadAs(Scheduler, "", []string{"BACKUP_TARGETS=" + targets})
		if !slices.Contains(configs.Settings(err), "BACKUP_TARGETS") || !strings.Contains(fmt.Sprint(err), "base_backup_schedule") {
			t.Errorf("%s: err = %v, want one naming BACKUP_TARGETS and base_backup_schedule", name, err)
		}
	}
}
