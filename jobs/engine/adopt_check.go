package engine

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/autograph/pgbackup/jobs/pgtool"
	"github.com/autograph/pgbackup/store"
)

// rooted is a store kept as files under a directory (the local store,
// BACKUP_DIR): the old manager wrote its files at that directory's root,
// and into the bucket under Prefix.
type rooted interface{ Root() string }

// packedTime is the modification time every file of a directory dump gets
// in its packed copy, so that the same dump packs to the same bytes in
// every store and in every run (the plan's digest depends on it).
var packedTime = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// scanOld lists what in s is named as the old manager named its dumps:
// {name}.dump, .sql, .tar, and folders holding toc.dat, at the root of a
// local store or under Prefix elsewhere. Names starting with '.' (the
// service's own records, temporary files) are not looked at.
func scanOld(ctx context.Context, s store.Store) ([]*adoptCandidate, error) {
	base := Prefix
	if _, ok := s.(rooted); ok {
		base = ""
	}
	objs, err := s.List(ctx, base)
	if err != nil {
		return nil, fmt.Errorf("adopt: list %s: %w", s.Name(), err)
	}
	var out []*adoptCandidate
	folders := map[string][]store.ObjectInfo{}
	for _, o := range objs {
		rel := strings.TrimPrefix(o.Key, base)
		if strings.HasPrefix(rel, ".") {
			continue
		}
		dir, file, inFolder := strings.Cut(rel, "/")
		if inFolder {
			if !strings.Contains(file, "/") {
				folders[dir] = append(folders[dir], o)
			}
			continue
		}
		for _, f := range oldFormats {
			if name, ok := strings.CutSuffix(rel, f.ext); ok && name != "" {
				out = append(out, newCandidate(s, o.Key, name, f.format, nil, o.LastModified))
			}
		}
	}
	for _, dir := range sortedKeys(folders) {
		files := folders[dir]
		if !slices.ContainsFunc(files, func(o store.ObjectInfo) bool { return path.Base(o.Key) == "toc.dat" }) {
			continue
		}
		newest := files[0].LastModified
		for _, f := range files {
			if f.LastModified.After(newest) {
				newest = f.LastModified
			}
		}
		out = append(out, newCandidate(s, base+dir+"/", dir, FormatDirectory, files, newest))
	}
	return out, nil
}

func newCandidate(s store.Store, key, name string, f Format, files []store.ObjectInfo, mod time.Time) *adoptCandidate {
	return &adoptCandidate{store: s, key: key, name: name, format: f, files: files, modTime: mod,
		item: AdoptItem{BackupName: name, Store: s.Name(), Key: key, Format: f.String()}}
}

// checkOld reads one archive into dir, hashes it as stored and checks it
// is what its name claims: custom, tar and directory dumps must list
// (pg_restore --list), a plain file must pass the checks of every plain
// restore. It returns what it learnt, or why the archive is skipped.
func (e *Engine) checkOld(ctx context.Context, tools pgtool.Tools, c *adoptCandidate, dir string) (*checkedArchive, string, error) {
	if c.format == FormatDirectory {
		return e.checkOldDirectory(ctx, tools, c, dir)
	}
	file := filepath.Join(dir, "archive")
	defer os.Remove(file)
	size, sum, err := download(ctx, c.store, c.key, file)
	if err != nil {
		return nil, SkipUnreadable, err
	}
	chk := &checkedArchive{size: size, sha: sum}
	if c.format == FormatPlain {
		err = checkOldPlain(file, chk)
	} else {
		err = listTOC(ctx, tools, c.format, file, chk)
	}
	if err != nil {
		return nil, SkipNotADump, err
	}
	return chk, "", nil
}

// checkOldDirectory fetches a directory dump's files, lists it, and packs
// it as the service stores the directory format (writeTar), with fixed
// file times; the size and checksum are the packed copy's.
func (e *Engine) checkOldDirectory(ctx context.Context, tools pgtool.Tools, c *adoptCandidate, dir string) (*checkedArchive, string, error) {
	dump := filepath.Join(dir, "dump")
	if err := os.Mkdir(dump, 0o700); err != nil {
		return nil, SkipUnreadable, err
	}
	defer os.RemoveAll(dump)
	for _, f := range c.files {
		local := filepath.Join(dump, path.Base(f.Key))
		if _, _, err := download(ctx, c.store, f.Key, local); err != nil {
			return nil, SkipUnreadable, err
		}
		if err := os.Chtimes(local, packedTime, packedTime); err != nil {
			return nil, SkipUnreadable, err
		}
	}
	chk := &checkedArchive{packed: filepath.Join(dir, "packed.dirtar")}
	if err := listTOC(ctx, tools, FormatDirectory, dump, chk); err != nil {
		return nil, SkipNotADump, err
	}
	out, err := os.OpenFile(chk.packed, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, SkipUnreadable, err
	}
	h, n := sha256.New(), &countWriter{}
	err = writeTar(io.MultiWriter(out, h, n), dump)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, SkipUnreadable, err
	}
	chk.size, chk.sha = n.n, hex.EncodeToString(h.Sum(nil))
	return chk, "", nil
}

// countWriter counts the bytes written through it.
type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}

// download copies key to file, returning the stored size and SHA-256.
func download(ctx context.Context, s store.Store, key, file string) (int64, string, error) {
	rc, err := s.Get(ctx, key)
	if err != nil {
		return 0, "", err
	}
	defer rc.Close()
	f, err := os.OpenFile(file, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return 0, "", err
	}
	d := newDigestReader(rc, "", nil)
	_, err = io.Copy(f, d)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, "", fmt.Errorf("read %s from %s: %w", key, s.Name(), err)
	}
	return d.Size(), d.Sum(), nil
}

// listTOC has pg_restore list the archive's table of contents, and reads
// the database and versions from its header (";     dbname: app").
func listTOC(ctx context.Context, tools pgtool.Tools, f Format, file string, chk *checkedArchive) error {
	cmd := tools.Command(ctx, pgtool.Conn{}, "pg_restore", "--list", "--format="+f.spec().flag, file)
	head := &headWriter{max: 16 << 10}
	cmd.Stdout = head
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%w: pg_restore --list: %w", ErrUnreadable, err)
	}
	for _, line := range strings.Split(head.b.String(), "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(strings.TrimPrefix(line, ";")), ": ")
		if !ok {
			continue
		}
		switch k {
		case "dbname":
			if pgtool.ValidIdentifier(v) {
				chk.database = v
			}
		case "Dumped from database version":
			chk.serverVersion = v
		case "Dumped by pg_dump version":
			chk.pgDumpVersion = v
		}
	}
	return nil
}

// checkOldPlain accepts a plain file that starts as pg_dump's plain output
// does and passes checkPlainSQL, the check every plain restore makes.
func checkOldPlain(file string, chk *checkedArchive) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(io.LimitReader(f, 8<<10))
	sawHeader := false
	for n := 0; sc.Scan() && n < 20; n++ {
		line := sc.Text()
		sawHeader = sawHeader || line == "-- PostgreSQL database dump"
		if v, ok := strings.CutPrefix(line, "-- Dumped from database version "); ok {
			chk.serverVersion = v
		}
		if v, ok := strings.CutPrefix(line, "-- Dumped by pg_dump version "); ok {
			chk.pgDumpVersion = v
		}
	}
	if !sawHeader {
		return fmt.Errorf("%w: no pg_dump header (\"-- PostgreSQL database dump\")", ErrInvalidArchive)
	}
	return checkFile(file, checkPlainSQL)
}

// headWriter keeps the first max bytes written to it and drops the rest,
// so a huge table of contents cannot fill memory.
type headWriter struct {
	b   bytes.Buffer
	max int
}

func (h *headWriter) Write(p []byte) (int, error) {
	if room := h.max - h.b.Len(); room > 0 {
		h.b.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

// deletedDir holds the deletion records, under Prefix. Backup names never
// start with '.', so no backup's key is there, and adoption does not scan it.
const deletedDir = ".deleted/"

// deletionKey is the key of a backup name's deletion record.
func deletionKey(name Name) string { return Prefix + deletedDir + name.s + ".json" }

// IsDeletionRecord reports whether key is a deletion record (see
// recordDeletion): the one object a deleted backup leaves on purpose.
func IsDeletionRecord(key string) bool {
	_, ok := deletionName(key)
	return ok
}

// deletionName reads the backup name out of a deletion record's key.
func deletionName(key string) (string, bool) {
	rest, ok := strings.CutPrefix(key, Prefix+deletedDir)
	if !ok {
		return "", false
	}
	return strings.CutSuffix(rest, ".json")
}

// recordDeletion writes, before a backup's manifest is removed from s, a
// small record that the service deleted it: a delete that fails half way
// leaves an archive without a manifest, which with codec none looks like
// one of the old manager's, and adoption must never bring it back. The
// records are kept (they are a few hundred bytes each) for as long as
// adoption may run.
func (e *Engine) recordDeletion(ctx context.Context, s store.Store, m *Manifest) error {
	body, err := json.Marshal(deletionRecord{Name: m.Name, DeletedAt: time.Now().UTC(), ArchiveKeys: m.objectKeys()})
	if err != nil {
		return fmt.Errorf("record the deletion of %s: %w", m.Name, err)
	}
	if err := s.Put(ctx, deletionKey(m.Name), bytes.NewReader(append(body, '\n')), nil); err != nil {
		return fmt.Errorf("record the deletion of %s in %s: %w", m.Name, s.Name(), err)
	}
	return nil
}

// deletionRecord is a deletion record's content, for whoever looks.
type deletionRecord struct {
	Name        Name      `json:"name"`
	DeletedAt   time.Time `json:"deleted_at"`
	ArchiveKeys []string  `json:"archive_keys"`
}

// adoptedRootKey is where the old manager's local files lie: at the root
// of the store, {name}{ext}. An adopted manifest may name it.
func adoptedRootKey(name Name, f Format) string { return name.s + f.Extension() }

// adoptedKeyOK says whether an adopted manifest's archive key is one
// adoption writes: the service's own key with codec none, or the old
// manager's file at the store's root; never encrypted or compressed.
func adoptedKeyOK(m *Manifest) bool {
	if m.Codec != "" || m.Encrypted || m.Globals != nil {
		return false
	}
	if m.ArchiveKey == archiveKey(m.Name, m.Format, Codec{}, false) {
		return true
	}
	return !m.Format.spec().toDir && m.ArchiveKey == adoptedRootKey(m.Name, m.Format)
}
