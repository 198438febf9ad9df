package engine

import (
	"errors"
	"fmt"
)

// This file lets manifests of base backups be decoded (listed, pruned)
// before the base backup engine lands; it is the same check as that
// branch's (base-engine: Manifest.checkBase, baseArchiveKey,
// backupManifestKey), and is deleted when that branch is merged.

// checkBase refuses a base backup manifest whose keys are not the ones a
// base backup writes.
func (m *Manifest) checkBase() error {
	codec, err := parseManifestCodec(m.Codec)
	if err != nil {
		return err
	}
	if m.ArchiveKey != baseArchiveKey(m.Name, codec, m.Encrypted) {
		return fmt.Errorf("archive key %q does not match a base backup's", m.ArchiveKey)
	}
	if m.Base == nil || m.Base.BackupManifest == nil || m.Base.BackupManifest.ArchiveKey != backupManifestKey(m.Name, codec, m.Encrypted) {
		return errors.New("not a valid base backup manifest: backup_manifest missing or misplaced")
	}
	if m.Globals != nil || len(m.Databases) > 0 {
		return errors.New("not a valid base backup manifest: it lists databases or globals")
	}
	return nil
}

// baseArchiveKey is a base backup's tar (pg_basebackup's base.tar).
func baseArchiveKey(name Name, c Codec, encrypted bool) string {
	return besideKey(name, "+base.tar", c, encrypted)
}

// backupManifestKey is the companion of a base backup holding
// PostgreSQL's backup_manifest.
func backupManifestKey(name Name, c Codec, encrypted bool) string {
	return besideKey(name, "+backup_manifest.json", c, encrypted)
}

// besideKey is the key of an object named after a backup with a suffix
// starting with '+', then the codec's and encryption's extensions.
func besideKey(name Name, suffix string, c Codec, encrypted bool) string {
	key := Prefix + name.s + suffix + c.Extension()
	if encrypted {
		key += encryptedExtension
	}
	return key
}
