package engine

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/autograph/pgbackup/jobs/pgtool"
	"github.com/autograph/pgbackup/store"
)

// newManifest starts the manifest of a database or whole-server backup
// as its dump stage begins; the dump fills in the archives.
func (e *Engine) newManifest(job *backupJob, tools pgtool.Tools, serverNum int) *Manifest {
	m := e.manifestFor(job.Name, job.targets, job.TaskID, job.Target, job.Scheduled)
	m.Database, m.Format = job.db, job.Format
	m.ServerVersion, m.PgDumpVersion = versionString(serverNum), tools.Version
	if job.Format.spec().pgCompress {
		m.Compression = e.pgDumpCompress()
	}
	return m
}

// manifestFor holds what every backup's manifest records about the
// request and how the engine stores archives (codec, encryption).
func (e *Engine) manifestFor(name Name, targets []store.Store, taskID, target string, scheduled bool) *Manifest {
	m := &Manifest{Name: name, StartedAt: time.Now().UTC(), Stores: names(targets), TaskID: taskID,
		Target: target, Scheduled: scheduled, Codec: e.codec.String()}
	if e.enc.encrypts() {
		m.Encrypted, m.Recipients = true, e.enc.fingerprints
	}
	return m
}

// publish is a backup's last stage: it signs the manifest (when signing
// is on) and writes it to every target, which is what makes the backup
// exist: List and Find show only backups whose manifest is there. On failure it removes the
// archives already written, so nothing is left half-published.
func (e *Engine) publish(ctx context.Context, targets []store.Store, m *Manifest) error {
	keys := m.objectKeys()
	body, err := e.encodeManifest(m)
	if err != nil {
		e.removeQuietly(targets, keys...)
		return err
	}
	for _, s := range targets {
		if err := s.Put(ctx, ManifestKey(m.Name), bytes.NewReader(body), nil); err != nil {
			e.removeQuietly(targets, append(keys, ManifestKey(m.Name))...)
			return fmt.Errorf("write manifest to %s: %w", s.Name(), err)
		}
	}
	return nil
}

// encodeManifest signs m (when signing is on) and encodes it: every
// manifest the engine writes, a backup's or an adopted one's, goes
// through here.
func (e *Engine) encodeManifest(m *Manifest) ([]byte, error) {
	if e.signer.Enabled() {
		if err := e.signer.sign(m); err != nil {
			return nil, err
		}
	}
	return m.encode()
}
