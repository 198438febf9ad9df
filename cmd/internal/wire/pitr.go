package wire

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/autograph/pgbackup/configs"
	"github.com/autograph/pgbackup/jobs/archiver"
	"github.com/autograph/pgbackup/jobs/engine"
	"github.com/autograph/pgbackup/jobs/pgtool"
	"github.com/autograph/pgbackup/jobs/policy"
	"github.com/autograph/pgbackup/jobs/wal"
	"github.com/autograph/pgbackup/store"
)

// DefaultPITRWindow is a pitr target's pitr_window when it sets none.
const DefaultPITRWindow = 7 * 24 * time.Hour

// WALArchive is one server's continuous WAL archive: WAL belongs to a
// server, not to a database, so the targets with pitr on one server
// (same host and port) share one replication slot and one archive. The
// first such target in BACKUP_TARGETS names it and gives its connection
// and stores.
type WALArchive struct {
	// Name is the archive's name: its objects live under wal/<Name>/ and
	// its lease is the archiver lease of Name.
	Name string
	// Targets are the pitr targets on the server, Name first.
	Targets []string
	// Conn is the first target's server, with its own credentials (its
	// user needs REPLICATION), or POSTGRES_* when it names none.
	Conn pgtool.Conn
	// Slot is the physical replication slot: "pgbackup_" + Name (target
	// names are lower-case letters, digits and _, at most 30, so it is
	// always a valid slot name).
	Slot string
	// Stores are the first target's stores; empty: every store.
	Stores []string
	// Window is the longest pitr_window of the targets.
	Window             time.Duration
	Sync               bool
	AllowUnlimitedSlot bool
}

// WALArchiveOf is the WAL archive target t's server shares, if t has pitr.
func (s *Setup) WALArchiveOf(target string) (WALArchive, bool) {
	for _, a := range s.WALArchives {
		if slices.Contains(a.Targets, target) {
			return a, true
		}
	}
	return WALArchive{}, false
}

// buildWALArchives groups the pitr targets by server. Targets sharing a
// server must agree on what the one archive does (sync,
// allow_unlimited_slot, stores): they are refused otherwise.
func (s *Setup) buildWALArchives() error {
	if s.Targets == nil {
		return nil // buildTargets reported why
	}
	var errs []error
	byServer := map[string]int{}
	for _, tc := range s.Config.BackupTargets {
		t, ok := s.Targets.Get(strings.TrimSpace(tc.Name))
		if !ok {
			continue
		}
		window, err := pitrWindow(tc)
		if err != nil {
			errs = append(errs, configs.Bad("BACKUP_TARGETS", "target %s: %w", t.Name, err))
			continue
		}
		if !tc.PITR {
			continue
		}
		if t.Source != "" {
			errs = append(errs, configs.Bad("BACKUP_TARGETS", "target %s: pitr archives a PostgreSQL server's WAL; a %s target has none", t.Name, t.Source))
			continue
		}
		conn := Conn(s.Config)
		if t.Server != nil {
			conn = *t.Server
		}
		key := net.JoinHostPort(conn.Host, strconv.Itoa(conn.Port))
		i, seen := byServer[key]
		if !seen {
			byServer[key] = len(s.WALArchives)
			s.WALArchives = append(s.WALArchives, WALArchive{Name: t.Name, Targets: []string{t.Name}, Conn: conn,
				Slot: archiver.SlotPrefix + t.Name, Stores: t.Stores, Window: window, Sync: tc.Sync, AllowUnlimitedSlot: tc.AllowUnlimitedSlot})
			continue
		}
		a := &s.WALArchives[i]
		if a.Sync != tc.Sync || a.AllowUnlimitedSlot != tc.AllowUnlimitedSlot || !slices.Equal(a.Stores, t.Stores) {
			errs = append(errs, configs.Bad("BACKUP_TARGETS", "target %s: shares server %s's WAL archive with target %s but differs in sync, allow_unlimited_slot or stores: give them the same", t.Name, key, a.Name))
			continue
		}
		a.Targets = append(a.Targets, t.Name)
		a.Window = max(a.Window, window)
	}
	return errors.Join(errs...)
}

// pitrWindow is tc's pitr_window; the pitr settings need pitr: true.
func pitrWindow(tc configs.TargetConfig) (time.Duration, error) {
	if !tc.PITR {
		if tc.PITRWindow != "" || tc.Sync || tc.AllowUnlimitedSlot {
			return 0, errors.New("pitr_window, sync and allow_unlimited_slot need pitr: true")
		}
		return 0, nil
	}
	if tc.PITRWindow == "" {
		return DefaultPITRWindow, nil
	}
	d, err := configs.ParseDuration(tc.PITRWindow)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("pitr_window %q: want a positive duration such as 7d or 36h", tc.PITRWindow)
	}
	return d, nil
}

// OpenWALArchive is a's archive over its stores among all (every store
// when a names none). The codec is COMPRESSION's, zstd when that is
// pg_dump's (it does not apply to WAL); every object names its own codec,
// so readers need none.
func OpenWALArchive(setup *Setup, a WALArchive, all []store.Store, log *logrus.Entry) (*wal.StoreArchive, error) {
	stores := all
	if len(a.Stores) > 0 {
		stores = slices.DeleteFunc(slices.Clone(all), func(s store.Store) bool { return !slices.Contains(a.Stores, s.Name()) })
	}
	codec := setup.Codec
	if codec.PgDump {
		codec = engine.DefaultCodec
	}
	arch, err := wal.New(wal.Options{Target: a.Name, Stores: stores, Codec: codec, Encryption: setup.Encryption,
		Signer: setup.Signer, Log: log})
	if err != nil {
		return nil, fmt.Errorf("open wal archive %s: %w", a.Name, err)
	}
	return arch, nil
}

// walArchiveFor is target t's WAL archive for reading: its server's
// shared one when t has pitr, else one named t (an archive written before
// the targets were grouped, or by hand).
func (s *Setup) walArchiveFor(t string, stores []string) WALArchive {
	if a, ok := s.WALArchiveOf(t); ok {
		return a
	}
	return WALArchive{Name: t, Targets: []string{t}, Stores: stores}
}

// OpenTargetWALArchive is target's WAL archive (see walArchiveFor) for
// `pgbackup wal verify`.
func OpenTargetWALArchive(ctx context.Context, setup *Setup, target string, stores []string, log *logrus.Entry) (*wal.StoreArchive, error) {
	all, err := Stores(ctx, setup)
	if err != nil {
		return nil, err
	}
	return OpenWALArchive(setup, setup.walArchiveFor(target, stores), all, log)
}

// StaleSlot reports whether slot is an archiver's slot (archiver.SlotPrefix
// + name) that no configured archive uses because target name lost pitr.
// The slot of every configured WAL archive, and of every pitr target, is
// never stale; nor is one named after no configured target.
func (s *Setup) StaleSlot(slot string) bool {
	name, ok := strings.CutPrefix(slot, archiver.SlotPrefix)
	if !ok {
		return false
	}
	for _, a := range s.WALArchives {
		if a.Slot == slot || slices.Contains(a.Targets, name) {
			return false
		}
	}
	// Only a configured target that lost pitr: a slot named after no
	// target at all may be another deployment's on the same server, and
	// dropping it would open a gap in that deployment's archive.
	for _, tc := range s.Config.BackupTargets {
		if strings.TrimSpace(tc.Name) == name {
			return !tc.PITR
		}
	}
	return false
}

// SlotServers lists each server of the database targets once, to look
// for stale slots on: reached with the credentials of a pitr target on it
// when there is one (its role has REPLICATION, which dropping a slot
// needs), else the first target's, in the database postgres.
func (s *Setup) SlotServers() []pgtool.Conn {
	if s.Targets == nil {
		return nil
	}
	var out []pgtool.Conn
	byServer := map[string]int{}
	withPITR := map[string]bool{}
	for _, tc := range s.Config.BackupTargets {
		t, ok := s.Targets.Get(strings.TrimSpace(tc.Name))
		if !ok || t.Source != "" {
			continue
		}
		conn := Conn(s.Config)
		if t.Server != nil {
			conn = *t.Server
		}
		conn = conn.WithDatabase("postgres")
		key := conn.Addr()
		i, seen := byServer[key]
		switch {
		case !seen:
			byServer[key] = len(out)
			out = append(out, conn)
		case tc.PITR && !withPITR[key]:
			out[i] = conn
		}
		withPITR[key] = withPITR[key] || tc.PITR
	}
	return out
}

// PITRArchives opens the WAL archive of every pitr target for its
// retention (policy.PITRArchive, by target name; targets sharing a server
// share one); nil when no target has pitr.
func PITRArchives(ctx context.Context, setup *Setup, log *logrus.Entry) (map[string]policy.PITRArchive, error) {
	if len(setup.WALArchives) == 0 {
		return nil, nil
	}
	all, err := Stores(ctx, setup)
	if err != nil {
		return nil, err
	}
	out := map[string]policy.PITRArchive{}
	for _, a := range setup.WALArchives {
		arch, err := OpenWALArchive(setup, a, all, log)
		if err != nil {
			return nil, err
		}
		for _, t := range a.Targets {
			out[t] = policy.PITRArchive{Name: a.Name, Window: a.Window, WAL: arch}
		}
	}
	return out, nil
}
