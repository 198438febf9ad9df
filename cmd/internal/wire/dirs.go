package wire

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/autograph/pgbackup/configs"
	"github.com/autograph/pgbackup/jobs/engine"
)

// checkStoreDir refuses a local store directory that every user may write
// (o+w): anyone on the host could then plant a backup, a catalogue or a
// file a restore reads, or remove backups. The sticky bit does not help
// here: it stops others removing our files, not adding their own.
func checkStoreDir(setting, dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("%s: %w", setting, err)
	}
	if fi.Mode().Perm()&0o002 != 0 {
		return fmt.Errorf("%s: directory %s is writable by every user (mode %04o), who could plant or remove backups; run chmod o-w %s",
			setting, dir, fi.Mode().Perm(), dir)
	}
	return nil
}

// checkWorkDir refuses a WORK_DIR every user may write unless it is
// sticky (as /tmp is). The engine only ever works inside private (0700)
// directories it creates there with random names; in a sticky directory
// no one else can rename or remove them, elsewhere someone could swap one
// for a directory of their own between our steps. A WORK_DIR that does not
// exist yet is left to the first task to report.
func checkWorkDir(dir string) error {
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return configs.Bad("WORK_DIR", "%w", err)
	}
	if m := fi.Mode(); m.Perm()&0o002 != 0 && m&fs.ModeSticky == 0 {
		return configs.Bad("WORK_DIR", "directory %s is writable by every user (mode %04o) without the sticky bit; run chmod o-w %s (or chmod +t %s)",
			dir, m.Perm(), dir, dir)
	}
	return nil
}

// warnOldBackupDir warns when BACKUP_DIR is left at its default while the
// old default, oldDir, still holds backups: after an upgrade they would
// silently vanish from listings and retention.
func warnOldBackupDir(cfg configs.Config, oldDir string, log *logrus.Entry) {
	if cfg.BackupDir != configs.DefaultBackupDir {
		return
	}
	n := countManifests(oldDir)
	if n == 0 {
		return
	}
	log.WithFields(logrus.Fields{"old_backup_dir": oldDir, "manifests": n, "backup_dir": cfg.BackupDir}).
		Warnf("%s (BACKUP_DIR's old default) holds %d backups this program no longer sees: BACKUP_DIR now defaults to %s; "+
			"set BACKUP_DIR=%s to keep using them (better: move them to a directory only this service can write)",
			oldDir, n, cfg.BackupDir, oldDir)
}

// countManifests counts the manifests a local store rooted at dir holds,
// without creating anything there.
func countManifests(dir string) int {
	entries, err := os.ReadDir(filepath.Join(dir, filepath.FromSlash(strings.TrimSuffix(engine.Prefix, "/"))))
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range entries {
		if e.Type().IsRegular() && engine.IsManifestKey(engine.Prefix+e.Name()) {
			n++
		}
	}
	return n
}
