package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/autograph/pgbackup/jobs/pgtool"
	"github.com/autograph/pgbackup/store"
)

// Adoption takes over the archives the old Python manager wrote with
// pg_dump -F c|p|t|d -f and never described with a manifest: files
// {name}.dump, .sql and .tar (and directory dumps, a folder holding
// toc.dat) at the root of BACKUP_DIR, and the same under postgres/ in the
// bucket. Each is checked (pg_restore --list, or the plain-SQL scanner),
// then published with a manifest marked adopted that points at the
// archive where it lies: nothing is renamed, rewritten or deleted, except
// that a directory dump gets a packed copy in the service's directory
// format beside it.

// ErrPlanChanged means an adoption was asked to apply a dry run's plan and
// the archives found now are not the ones that dry run listed.
var ErrPlanChanged = errors.New("adoption plan changed since the dry run")

// Why an archive was not adopted (AdoptItem.Reason).
const (
	SkipBadName     = "not a valid backup name"
	SkipHasManifest = "already has a manifest"
	SkipDeleted     = "deleted by this service"
	SkipRecent      = "modified in the last minute"
	SkipUnreadable  = "unreadable"
	SkipNotADump    = "not a dump"
	SkipDiffers     = "differs between stores"
	SkipAmbiguous   = "several archives of this name"
)

// oldScheduledPrefix starts the names the old manager's scheduler gave
// (policy.ScheduledPrefix, which this package cannot import).
const oldScheduledPrefix = "autograph_scheduled_"

// oldFormats are the file suffixes the old manager wrote, by format.
var oldFormats = []struct {
	ext    string
	format Format
}{{".dump", FormatCustom}, {".sql", FormatPlain}, {".tar", FormatTar}}

// nameTime is the timestamp the old manager put at the end of its names
// (autograph_scheduled_20240101_020000, backup_20240101_020000), in UTC.
var nameTime = regexp.MustCompile(`(\d{8}_\d{6})$`)

// AdoptRequest asks for one adoption run.
type AdoptRequest struct {
	// DryRun checks and lists, and changes nothing.
	DryRun bool
	// Plan is the Plan of the dry run whose list is to be applied; the
	// run fails with ErrPlanChanged when the list is not the same now.
	// Required unless DryRun.
	Plan string
	// ScheduledTarget names the target whose database db is, so that the
	// old scheduler's backups (autograph_scheduled_*) list as that
	// target's scheduled backups; nil, or "", records no target.
	ScheduledTarget func(db string) string
}

// AdoptItem is one archive found: adopted, or skipped with its reason.
type AdoptItem struct {
	BackupName string `json:"backup_name"`
	Store      string `json:"store"`
	// Key is the archive's key; a directory dump's ends in "/".
	Key       string    `json:"key"`
	Format    string    `json:"format,omitempty"`
	Database  string    `json:"database,omitempty"`
	SizeBytes int64     `json:"size_bytes,omitempty"`
	SHA256    string    `json:"sha256,omitempty"`
	CreatedAt time.Time `json:"created_at,omitzero"`
	// ArchiveKey is the key the manifest names: Key, or for a directory
	// dump its packed copy.
	ArchiveKey string `json:"archive_key,omitempty"`
	Reason     string `json:"reason,omitempty"`
	Detail     string `json:"detail,omitempty"`
}

// AdoptResult is what an adoption run adopted (or, dry, would adopt) and
// what it skipped.
type AdoptResult struct {
	DryRun bool `json:"dry_run"`
	// Plan is a digest of Adopted: give it back to apply exactly this list.
	Plan    string      `json:"plan"`
	Adopted []AdoptItem `json:"adopted"`
	Skipped []AdoptItem `json:"skipped"`
	// Manifests are the manifests adopted (or, dry, that would be), one
	// per backup name, for the retention preview.
	Manifests []Manifest `json:"-"`
}

// adoptCandidate is one archive named as the old manager named them.
type adoptCandidate struct {
	store  store.Store
	key    string
	name   string
	format Format
	// files are a directory dump's files; modTime the newest of them.
	files   []store.ObjectInfo
	modTime time.Time
	item    AdoptItem
	checked *checkedArchive
}

// checkedArchive is what the checks learnt of an archive.
type checkedArchive struct {
	size          int64
	sha           string
	database      string
	serverVersion string
	pgDumpVersion string
	// packed is a directory dump's copy in the service's format.
	packed string
}

// Adopt finds the old manager's archives that have no manifest in every
// store, checks them and (unless req.DryRun) publishes a manifest for
// each, signed when signing is on. Adopting twice changes nothing: what
// was adopted has a manifest the second time.
func (e *Engine) Adopt(ctx context.Context, req AdoptRequest) (*AdoptResult, error) {
	if !req.DryRun && req.Plan == "" {
		return nil, fmt.Errorf("adopt: %w: give the plan of a dry run (it lists what will be adopted)", ErrInvalid)
	}
	tmp, err := os.MkdirTemp(e.workDir, "pgbackup-adopt-*")
	if err != nil {
		return nil, fmt.Errorf("adopt: work dir: %w", err)
	}
	defer os.RemoveAll(tmp)
	groups, err := e.adoptCandidates(ctx)
	if err != nil {
		return nil, err
	}
	res := &AdoptResult{DryRun: req.DryRun, Adopted: []AdoptItem{}, Skipped: []AdoptItem{}}
	var tools pgtool.Tools
	if slices.ContainsFunc(groups, func(g []*adoptCandidate) bool { return g[0].item.Reason == "" }) {
		// pg_restore --list reads archives of its own and older versions
		// without a server.
		if tools, err = e.finder.Newest(ctx); err != nil {
			return nil, fmt.Errorf("adopt: %w", err)
		}
	}
	var ready [][]*adoptCandidate
	for _, g := range groups {
		if err := e.judgeGroup(ctx, tools, g, tmp); err != nil {
			return nil, err
		}
		if g[0].item.Reason != "" {
			for _, c := range g {
				res.Skipped = append(res.Skipped, c.item)
			}
			continue
		}
		ready = append(ready, g)
		for _, c := range g {
			res.Adopted = append(res.Adopted, c.item)
		}
	}
	res.Plan = adoptPlan(res.Adopted)
	for _, g := range ready {
		res.Manifests = append(res.Manifests, *e.adoptedManifest(g, req.ScheduledTarget, g[0].store))
	}
	if req.DryRun {
		return res, nil
	}
	if req.Plan != res.Plan {
		return res, fmt.Errorf("adopt: %w: run the dry run again and check its list", ErrPlanChanged)
	}
	for _, g := range ready {
		if err := e.publishAdopted(ctx, g, req.ScheduledTarget); err != nil {
			return res, err
		}
	}
	return res, nil
}

// adoptCandidates scans every store and groups what it found by backup
// name, sorted by name; the cheap checks (name, manifest, deletion
// record, age) are already made.
func (e *Engine) adoptCandidates(ctx context.Context) ([][]*adoptCandidate, error) {
	byName := map[string][]*adoptCandidate{}
	manifests, deleted := map[string]bool{}, map[string]bool{}
	for _, s := range e.stores {
		found, err := scanOld(ctx, s)
		if err != nil {
			return nil, err
		}
		for _, c := range found {
			byName[c.name] = append(byName[c.name], c)
		}
		objs, err := s.List(ctx, Prefix)
		if err != nil {
			return nil, fmt.Errorf("adopt: list %s: %w", s.Name(), err)
		}
		for _, o := range objs {
			if n, ok := manifestName(o.Key); ok {
				manifests[n.s] = true
			}
			if n, ok := deletionName(o.Key); ok {
				deleted[n] = true
			}
		}
	}
	now := time.Now()
	var out [][]*adoptCandidate
	for _, name := range sortedKeys(byName) {
		g := byName[name]
		_, nameErr := ParseName(name)
		switch {
		case nameErr != nil:
			skipGroup(g, SkipBadName, "")
		case manifests[name]:
			skipGroup(g, SkipHasManifest, "")
		case deleted[name]:
			skipGroup(g, SkipDeleted, "a deletion record of this name is kept under "+Prefix+deletedDir)
		}
		// SkipRecent's words say a minute, the default ADOPT_MIN_AGE.
		for _, c := range g {
			if c.item.Reason == "" && now.Sub(c.modTime) < e.adoptAge {
				skipGroup(g, SkipRecent, fmt.Sprintf("%s in %s changed at %s", c.key, c.store.Name(), c.modTime.UTC().Format(time.RFC3339)))
			}
		}
		if c, ok := ambiguous(g); ok {
			skipGroup(g, SkipAmbiguous, fmt.Sprintf("%s holds more than one archive named %s", c.store.Name(), name))
		}
		out = append(out, g)
	}
	return out, nil
}

// ambiguous finds a store holding two archives of one name (foo.dump and
// foo.sql): which one the name means cannot be guessed.
func ambiguous(g []*adoptCandidate) (*adoptCandidate, bool) {
	seen := map[string]bool{}
	for _, c := range g {
		if seen[c.store.Name()] {
			return c, true
		}
		seen[c.store.Name()] = true
	}
	return nil, false
}

// skipGroup skips every archive of one name that is not skipped yet: a
// name is adopted whole, in every store holding it, or not at all.
func skipGroup(g []*adoptCandidate, reason, detail string) {
	for _, c := range g {
		if c.item.Reason == "" {
			c.item.Reason, c.item.Detail = reason, detail
		}
	}
}

// judgeGroup checks the archives of one name that passed the cheap checks
// and compares their bytes across stores. It returns an error only when
// the run cannot go on (the context ended, WORK_DIR failed).
func (e *Engine) judgeGroup(ctx context.Context, tools pgtool.Tools, g []*adoptCandidate, tmp string) error {
	if g[0].item.Reason != "" {
		return nil
	}
	for i, c := range g {
		dir := filepath.Join(tmp, fmt.Sprintf("%s-%d", c.name, i))
		if err := os.Mkdir(dir, 0o700); err != nil {
			return fmt.Errorf("adopt: work dir: %w", err)
		}
		chk, reason, err := e.checkOld(ctx, tools, c, dir)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if reason != "" {
			e.log.WithError(err).WithFields(logrus.Fields{"store": c.store.Name(), "key": c.key}).Warn("not adopting an archive: " + reason)
			skipGroup(g, reason, fmt.Sprintf("%s in %s: %v", c.key, c.store.Name(), err))
			return nil
		}
		c.checked = chk
	}
	for _, c := range g[1:] {
		if c.checked.sha != g[0].checked.sha {
			skipGroup(g, SkipDiffers, fmt.Sprintf("%s in %s and %s in %s hold different bytes",
				g[0].key, g[0].store.Name(), c.key, c.store.Name()))
			return nil
		}
	}
	at := adoptedTime(g)
	for _, c := range g {
		k := c.checked
		c.item.Format, c.item.Database, c.item.SizeBytes, c.item.SHA256 = c.format.String(), e.adoptedDatabase(k), k.size, k.sha
		c.item.CreatedAt, c.item.ArchiveKey = at, c.archiveKey()
	}
	return nil
}

// archiveKey is the key the adopted manifest names: the archive itself,
// or a directory dump's packed copy.
func (c *adoptCandidate) archiveKey() string {
	if c.format == FormatDirectory {
		return ArchiveKey(MustParseName(c.name), FormatDirectory, Codec{})
	}
	return c.key
}

func (e *Engine) adoptedDatabase(k *checkedArchive) string {
	if k.database != "" {
		return k.database
	}
	return e.DefaultDatabase()
}

// adoptedTime is the time the name gives (as the old manager wrote it, in
// UTC), else the oldest copy's modification time.
func adoptedTime(g []*adoptCandidate) time.Time {
	if m := nameTime.FindString(g[0].name); m != "" {
		if t, err := time.ParseInLocation("20060102_150405", m, time.UTC); err == nil {
			return t
		}
	}
	at := g[0].modTime
	for _, c := range g[1:] {
		if c.modTime.Before(at) {
			at = c.modTime
		}
	}
	return at.UTC().Truncate(time.Second)
}

// adoptedManifest is the manifest of one adopted name as written to store s.
func (e *Engine) adoptedManifest(g []*adoptCandidate, scheduledTarget func(string) string, s store.Store) *Manifest {
	var c *adoptCandidate
	var where []string
	for _, x := range g {
		where = append(where, x.store.Name())
		if x.store == s {
			c = x
		}
	}
	k := c.checked
	m := &Manifest{Name: MustParseName(c.name), Database: c.item.Database, Format: c.format, ArchiveKey: c.item.ArchiveKey,
		SizeBytes: k.size, SHA256: k.sha, StartedAt: c.item.CreatedAt, FinishedAt: c.item.CreatedAt,
		ServerVersion: k.serverVersion, PgDumpVersion: k.pgDumpVersion, Stores: where, Adopted: true}
	if strings.HasPrefix(c.name, oldScheduledPrefix) && scheduledTarget != nil {
		if t := scheduledTarget(m.Database); t != "" {
			m.Target, m.Scheduled = t, true
		}
	}
	return m
}

// publishAdopted writes one name's manifests, each store's naming its own
// copy; a directory dump's packed copy is stored first. A failure removes
// only what this run wrote.
func (e *Engine) publishAdopted(ctx context.Context, g []*adoptCandidate, scheduledTarget func(string) string) error {
	for _, c := range g {
		m := e.adoptedManifest(g, scheduledTarget, c.store)
		if c.checked.packed != "" {
			if err := putFile(ctx, c.store, m.ArchiveKey, c.checked.packed); err != nil {
				return fmt.Errorf("adopt %s: store the packed copy in %s: %w", c.name, c.store.Name(), err)
			}
		}
		body, err := e.encodeManifest(m)
		if err == nil {
			err = c.store.Put(ctx, ManifestKey(m.Name), strings.NewReader(string(body)), nil)
		}
		if err != nil {
			if c.checked.packed != "" {
				e.removeQuietly([]store.Store{c.store}, m.ArchiveKey)
			}
			return fmt.Errorf("adopt %s: write manifest to %s: %w", c.name, c.store.Name(), err)
		}
		e.log.WithFields(logrus.Fields{"backup_name": c.name, "store": c.store.Name(), "key": c.key}).Info("adopted an archive of the old manager")
	}
	return nil
}

func putFile(ctx context.Context, s store.Store, key, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return s.Put(ctx, key, f, nil)
}

// adoptPlan is the digest of an adoption list: every archive's store,
// key and checksum, in a fixed order.
func adoptPlan(items []AdoptItem) string {
	lines := make([]string, len(items))
	for i, it := range items {
		lines[i] = it.BackupName + "\x00" + it.Store + "\x00" + it.Key + "\x00" + it.SHA256 + "\n"
	}
	slices.Sort(lines)
	h := sha256.New()
	for _, l := range lines {
		io.WriteString(h, l)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
