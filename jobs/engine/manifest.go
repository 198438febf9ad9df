package engine

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/autograph/pgbackup/jobs/pgtool"
)

// Manifest describes one complete backup. It is written after the archive,
// and only once the archive is fully stored and its checksum known: a backup
// without a manifest is incomplete and is never listed.
type Manifest struct {
	Name          Name      `json:"name"`
	Database      string    `json:"database"`
	Format        Format    `json:"format"`
	ArchiveKey    string    `json:"archive_key"`
	SizeBytes     int64     `json:"size_bytes"`
	SHA256        string    `json:"sha256"`
	StartedAt     time.Time `json:"started_at"`
	FinishedAt    time.Time `json:"finished_at"`
	ServerVersion string    `json:"server_version"`
	PgDumpVersion string    `json:"pg_dump_version"`
	// Compression is pg_dump's own -Z, when it compressed.
	Compression string `json:"compression,omitempty"`
	// Codec is the compression the worker applied in the stream ("zstd:3",
	// "gzip:6"); empty for archives stored as pg_dump wrote them, which
	// includes every archive made before codecs existed.
	Codec string `json:"codec,omitempty"`
	// Encrypted archives are age-encrypted after compression to the
	// recipients whose fingerprints Recipients lists; the manifest itself
	// stays readable and holds no data.
	Encrypted bool `json:"encrypted,omitempty"`
	// Globals is the server's roles and tablespaces, stored beside the
	// archive when the backup asked for them (include_globals).
	Globals    *Companion `json:"globals,omitempty"`
	Recipients []string   `json:"recipients,omitempty"`
	Stores     []string   `json:"stores"`
	// Content says what the backup holds: ContentDatabase (empty) for one
	// database, ContentServer for every database of a server, ContentBucket
	// for an S3 bucket, then with the source bucket and prefix, and how
	// many objects and bytes it holds. Its JSON name, "kind", is older.
	Content      string `json:"kind,omitempty"`
	SourceBucket string `json:"source_bucket,omitempty"`
	SourcePrefix string `json:"source_prefix,omitempty"`
	Objects      int64  `json:"objects,omitempty"`
	ObjectBytes  int64  `json:"object_bytes,omitempty"`
	// Databases are a whole-server backup's archives (Content ContentServer),
	// one per database; ArchiveKey is then empty.
	Databases []DatabaseArchive `json:"databases,omitempty"`
	// Target names the target the backup was taken for, and Scheduled says
	// whether the scheduler (not a person) asked for it; only scheduled
	// backups are ever pruned.
	Target    string `json:"target,omitempty"`
	Scheduled bool   `json:"scheduled,omitempty"`
	// TaskID is the id of the task that made the backup, so a retried task
	// can recognise its own finished work instead of failing on "exists".
	TaskID string `json:"task_id,omitempty"`
	// RowCounts is every table's exact row count ("schema.table"), taken
	// in the snapshot pg_dump dumped, so a restore can be checked against
	// the data as it was. Absent when counting was off.
	RowCounts map[string]int64 `json:"row_counts,omitempty"`
	// ChunkSums are the archive's per-chunk checksums and raw size
	// (absent from manifests written before them, and from a whole-server
	// manifest, whose Databases hold their own).
	ChunkSums
	// Adopted marks a backup the old manager made and this service took
	// over (see Adopt): its archive lies where the old manager left it,
	// which may be outside Prefix, and retention keeps it unless the
	// operator opts in (ADOPTED_RETENTION).
	Adopted bool `json:"adopted,omitempty"`
	// Base is set on base backups (Content ContentBase).
	Base *BaseInfo `json:"base,omitempty"`
	// Signature is the HMAC-SHA256 (hex) of the rest of the manifest, when
	// manifests are signed (see Signer).
	Signature string `json:"signature,omitempty"`

	// raw is the manifest as read from its store, which is what a
	// signature is checked against.
	raw []byte
}

// ContentDatabase is the Content of a one-database backup (the manifests
// written before whole-server and bucket backups existed have none).
const ContentDatabase = ""

// ContentServer marks a whole-server backup: every database of the server,
// one archive each, under one backup name, plus the server's globals.
const ContentServer = "server"

// ContentBucket marks the manifest of a bucket backup: every object of an S3
// bucket (or of a prefix of it) in one tar archive.
const ContentBucket = "bucket"

// DatabaseArchive is one database's archive: the one of a backup, or one
// of a whole-server backup's.
type DatabaseArchive struct {
	Database   string           `json:"database"`
	ArchiveKey string           `json:"archive_key"`
	SizeBytes  int64            `json:"size_bytes"`
	SHA256     string           `json:"sha256"`
	RowCounts  map[string]int64 `json:"row_counts,omitempty"`
	ChunkSums
}

// Companion is an archive stored beside a backup's main archive: the
// server's roles and tablespaces (pg_dumpall --globals-only).
type Companion struct {
	ArchiveKey string `json:"archive_key"`
	SizeBytes  int64  `json:"size_bytes"`
	SHA256     string `json:"sha256"`
	// NoRolePasswords: dumped by a role that is not a superuser, which
	// cannot read passwords (pg_dumpall --no-role-passwords).
	NoRolePasswords bool `json:"no_role_passwords,omitempty"`
	ChunkSums
}

func (m *Manifest) encode() ([]byte, error) {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode manifest %s: %w", m.Name, err)
	}
	return append(b, '\n'), nil
}

func decodeManifest(b []byte) (*Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("decode manifest: %w", err)
	}
	m.raw = b
	// Name's UnmarshalText parsed the name; only its absence is left.
	if err := m.Name.required(); err != nil {
		return nil, fmt.Errorf("decode manifest: %w", err)
	}
	if m.Content == ContentBucket {
		codec, err := parseManifestCodec(m.Codec)
		if err != nil || m.ArchiveKey != bucketArchiveKey(m.Name, codec, m.Encrypted) {
			return nil, fmt.Errorf("decode manifest %s: archive key %q does not match a bucket backup's", m.Name, m.ArchiveKey)
		}
		return &m, nil
	}
	if m.Content == ContentBase {
		if err := m.checkBase(); err != nil {
			return nil, fmt.Errorf("decode manifest %s: %w", m.Name, err)
		}
		return &m, nil
	}
	// Format's UnmarshalText parsed the format too.
	if m.Content == ContentServer {
		codec, err := parseManifestCodec(m.Codec)
		if err != nil || m.ArchiveKey != "" || len(m.Databases) == 0 {
			return nil, fmt.Errorf("decode manifest %s: not a valid whole-server manifest", m.Name)
		}
		for _, d := range m.Databases {
			if !pgtool.ValidIdentifier(d.Database) || d.ArchiveKey != serverArchiveKey(m.Name, d.Database, m.Format, codec, m.Encrypted) {
				return nil, fmt.Errorf("decode manifest %s: database archive %q does not match its name", m.Name, d.ArchiveKey)
			}
		}
		if m.Globals != nil && m.Globals.ArchiveKey != globalsKey(m.Name, codec, m.Encrypted) {
			return nil, fmt.Errorf("decode manifest %s: globals key %q does not match name and codec", m.Name, m.Globals.ArchiveKey)
		}
		return &m, nil
	}
	if m.Content != ContentDatabase {
		return nil, fmt.Errorf("decode manifest %s: unknown kind %q", m.Name, m.Content)
	}
	codec, err := parseManifestCodec(m.Codec)
	if err != nil {
		return nil, fmt.Errorf("decode manifest %s: %w", m.Name, err)
	}
	if m.Globals != nil && m.Globals.ArchiveKey != globalsKey(m.Name, codec, m.Encrypted) {
		return nil, fmt.Errorf("decode manifest %s: globals key %q does not match name and codec", m.Name, m.Globals.ArchiveKey)
	}
	if m.Adopted && !adoptedKeyOK(&m) {
		return nil, fmt.Errorf("decode manifest %s: archive key %q is not one adoption writes", m.Name, m.ArchiveKey)
	}
	if !m.Adopted && m.ArchiveKey != archiveKey(m.Name, m.Format, codec, m.Encrypted) {
		return nil, fmt.Errorf("decode manifest %s: archive key %q does not match name and format", m.Name, m.ArchiveKey)
	}
	return &m, nil
}

// objectKeys are every object a backup consists of besides its manifest.
func (m *Manifest) objectKeys() []string {
	var keys []string
	if m.ArchiveKey != "" {
		keys = append(keys, m.ArchiveKey)
	}
	for _, d := range m.Databases {
		keys = append(keys, d.ArchiveKey)
	}
	return append(keys, m.companionKeys()...)
}

// companionKeys are the keys of the archives stored beside the main one:
// the globals, a base backup's backup_manifest.
func (m *Manifest) companionKeys() []string {
	var keys []string
	if m.Globals != nil {
		keys = append(keys, m.Globals.ArchiveKey)
	}
	if m.Base != nil && m.Base.BackupManifest != nil {
		keys = append(keys, m.Base.BackupManifest.ArchiveKey)
	}
	return keys
}

// companion is a companion archive as a manifest of its own, for the code
// that reads one archive (fetch, verify).
func (m *Manifest) companion(c *Companion) *Manifest {
	return &Manifest{Name: m.Name, ArchiveKey: c.ArchiveKey, SizeBytes: c.SizeBytes, SHA256: c.SHA256,
		ChunkSums: c.ChunkSums, Codec: m.Codec, Encrypted: m.Encrypted, Recipients: m.Recipients}
}

// requiredSizes are the objects that must be present, with these sizes,
// for the backup to be complete: the archive, or every database's.
func (m *Manifest) requiredSizes() map[string]int64 {
	if m.Content == ContentServer {
		out := make(map[string]int64, len(m.Databases))
		for _, d := range m.Databases {
			out[d.ArchiveKey] = d.SizeBytes
		}
		return out
	}
	return map[string]int64{m.ArchiveKey: m.SizeBytes}
}

// DatabaseNames are the databases of a whole-server backup, nil otherwise.
func (m *Manifest) DatabaseNames() []string {
	var out []string
	for _, d := range m.Databases {
		out = append(out, d.Database)
	}
	return out
}

// part is one database of a whole-server backup as a manifest of its own,
// for the restore and verify code that reads one archive.
func (m *Manifest) part(d DatabaseArchive) *Manifest {
	return &Manifest{Name: m.Name, Database: d.Database, Format: m.Format, ArchiveKey: d.ArchiveKey,
		SizeBytes: d.SizeBytes, SHA256: d.SHA256, ChunkSums: d.ChunkSums, RowCounts: d.RowCounts, Codec: m.Codec,
		Encrypted: m.Encrypted, Recipients: m.Recipients}
}

// Summary is a copy of the manifest without its chunk sums, for task
// results and other answers: only a restore or verify needs the sums, and
// reads them from the stored manifest; elsewhere they would make every
// result grow with the archive (about 8 KiB per GiB stored).
func (m *Manifest) Summary() *Manifest {
	c := *m
	c.ChunkSHA256 = nil
	if m.Databases != nil {
		c.Databases = make([]DatabaseArchive, len(m.Databases))
		for i, d := range m.Databases {
			d.ChunkSHA256 = nil
			c.Databases[i] = d
		}
	}
	if m.Globals != nil {
		g := *m.Globals
		g.ChunkSHA256 = nil
		c.Globals = &g
	}
	if m.Base != nil {
		b := *m.Base
		if b.BackupManifest != nil {
			bm := *b.BackupManifest
			bm.ChunkSHA256 = nil
			b.BackupManifest = &bm
		}
		c.Base = &b
	}
	return &c
}
