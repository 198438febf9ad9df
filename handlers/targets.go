package handlers

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/autograph/pgbackup/jobs/coord"
	"github.com/autograph/pgbackup/jobs/engine"
	"github.com/autograph/pgbackup/jobs/policy"
	"github.com/autograph/pgbackup/jobs/tasks"
	"github.com/autograph/pgbackup/jobs/wal"
)

// StateReader reads what the service observed about its targets (a
// *coord.State).
type StateReader interface {
	Status(ctx context.Context, target string) (coord.TargetStatus, error)
	Counters(ctx context.Context) (map[[2]string]int64, error)
	Drills(ctx context.Context, target string, limit int) ([]tasks.DrillResult, error)
}

type targetJSON struct {
	Name     string `json:"name"`
	Kind     string `json:"kind,omitempty"`
	Bucket   string `json:"bucket,omitempty"`
	Database string `json:"database"`
	// Server is host:port of a target on a server of its own.
	Server        string     `json:"server,omitempty"`
	Format        string     `json:"format"`
	Stores        []string   `json:"stores"`
	Schedule      string     `json:"schedule,omitempty"`
	NextRun       *time.Time `json:"next_run,omitempty"`
	DrillSchedule string     `json:"drill_schedule,omitempty"`
	NextDrill     *time.Time `json:"next_drill,omitempty"`
	// BaseBackupSchedule is a pitr target's, when base backups are
	// scheduled.
	BaseBackupSchedule string           `json:"base_backup_schedule,omitempty"`
	NextBaseBackup     *time.Time       `json:"next_base_backup,omitempty"`
	Retention          policy.Retention `json:"retention"`
	RPOSeconds         float64          `json:"rpo_seconds,omitempty"`
	// NewestBackup is the newest good backup as the stores list it.
	NewestBackup *newestJSON        `json:"newest_backup"`
	AgeSeconds   *float64           `json:"age_seconds"`
	RPOMet       *bool              `json:"rpo_met,omitempty"`
	LastDrill    *tasks.DrillResult `json:"last_drill"`
	// PITR is the continuous WAL archive's state, for a target whose
	// archiver has published one.
	PITR *pitrJSON `json:"pitr,omitempty"`
}

// pitrJSON is a pitr target's WAL archive as the archiver last
// published it (coord.WALStatus). ArchivedThrough and LagSeconds are null
// until the archiver knows archived_through; Window also until a base
// backup bounds it.
type pitrJSON struct {
	Archive         string          `json:"archive"`
	ArchivedThrough *time.Time      `json:"archived_through"`
	LagSeconds      *float64        `json:"lag_seconds"`
	SlotLagBytes    int64           `json:"slot_lag_bytes"`
	Window          *windowJSON     `json:"window"`
	BaseBackup      *baseBackupJSON `json:"base_backup"`
	Timeline        uint32          `json:"timeline"`
	ArchivedLSN     string          `json:"archived_lsn"`
	ServerLSN       string          `json:"server_lsn"`
	LastSegment     string          `json:"last_segment"`
	Updated         time.Time       `json:"updated"`
}

// windowJSON is the oldest and newest second a restore can reach: from
// the end of the oldest base backup whose WAL the archive holds (WAL
// replays only onto a base backup) to archived_through.
type windowJSON struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
}

// baseBackupJSON is the newest base backup of a pitr target's archive.
type baseBackupJSON struct {
	Name       string    `json:"backup_name"`
	FinishedAt time.Time `json:"finished_at"`
	AgeSeconds float64   `json:"age_seconds"`
	StopLSN    string    `json:"stop_lsn"`
}

// newPITRJSON is w with the window and base backup its archive's base
// backups among entries give.
func newPITRJSON(w *coord.WALStatus, entries []engine.Entry, now time.Time) *pitrJSON {
	if w == nil {
		return nil
	}
	p := &pitrJSON{Archive: w.Archive, SlotLagBytes: w.SlotLagBytes, Timeline: w.Timeline, ArchivedLSN: w.ArchivedLSN,
		ServerLSN: w.ServerLSN, LastSegment: w.LastSegment, Updated: w.Updated}
	if b := policy.NewestBase(entries, w.Archive); b != nil {
		p.BaseBackup = &baseBackupJSON{Name: b.Name.String(), FinishedAt: b.FinishedAt.UTC(),
			AgeSeconds: max(0, now.Sub(b.FinishedAt).Seconds()), StopLSN: b.Base.StopLSN}
	}
	if w.ArchivedThrough.IsZero() {
		return p
	}
	through := w.ArchivedThrough.UTC()
	lag := w.LagSeconds(now)
	p.ArchivedThrough, p.LagSeconds = &through, &lag
	if b := policy.OldestBase(entries, w.Archive, archiveHolds(w)); b != nil {
		from := b.FinishedAt.UTC()
		if from.After(through) {
			from = through
		}
		p.Window = &windowJSON{From: from, To: through}
	}
	return p
}

// archiveHolds reports whether the archive, as w describes it, holds the
// WAL from start to stop: stop is archived, and start is not before where
// the archive's WAL starts (when the WAL watcher has published that).
func archiveHolds(w *coord.WALStatus) func(start, stop wal.Position) bool {
	archived, err := wal.ParseLSN(w.ArchivedLSN)
	oldest, oerr := wal.ParseLSN(w.OldestLSN)
	return func(start, stop wal.Position) bool {
		return err == nil && stop.Timeline <= w.Timeline && stop.LSN <= archived && (oerr != nil || start.LSN >= oldest)
	}
}

type newestJSON struct {
	Name      string    `json:"backup_name"`
	CreatedAt time.Time `json:"created_at"`
	SizeBytes int64     `json:"size_bytes"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// listTargets answers each target's schedule, next run, newest good backup
// (read from the stores: they are the truth), its age against the RPO,
// retention and last drill.
func (a *API) listTargets(c echo.Context) error {
	ctx := c.Request().Context()
	entries, err := a.d.Backups.List(ctx, nil)
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	out := []targetJSON{}
	for _, t := range a.d.Targets.All() {
		tj := targetJSON{Name: t.Name, Kind: t.Source, Bucket: t.Bucket, Database: t.Database, Format: t.Format.String(), Stores: t.Stores,
			Retention: t.Retention, RPOSeconds: t.RPO.Seconds()}
		if t.Server != nil {
			tj.Server = t.Server.Addr()
		}
		if tj.Stores == nil {
			tj.Stores = a.d.Backups.StoreNames()
		}
		if t.Schedule != nil {
			tj.Schedule, tj.NextRun = t.Schedule.Spec, timePtr(t.Schedule.Next(now))
		}
		if t.DrillSchedule != nil {
			tj.DrillSchedule, tj.NextDrill = t.DrillSchedule.Spec, timePtr(t.DrillSchedule.Next(now))
		}
		if t.BaseBackupSchedule != nil {
			tj.BaseBackupSchedule, tj.NextBaseBackup = t.BaseBackupSchedule.Spec, timePtr(t.BaseBackupSchedule.Next(now))
		}
		if m := policy.NewestOf(entries, t); m != nil {
			tj.NewestBackup = &newestJSON{Name: m.Name.String(), CreatedAt: m.FinishedAt, SizeBytes: m.SizeBytes}
		}
		if tj.NewestBackup != nil {
			age := now.Sub(tj.NewestBackup.CreatedAt).Seconds()
			tj.AgeSeconds = &age
		}
		if a.d.State != nil {
			st, err := a.d.State.Status(ctx, t.Name)
			if err != nil {
				return fmt.Errorf("%w: %w", errQueueUnavailable, err)
			}
			tj.LastDrill = st.LastDrill
			tj.PITR = newPITRJSON(st.WAL, entries, now)
		}
		if t.RPO > 0 {
			met := tj.AgeSeconds != nil && *tj.AgeSeconds <= t.RPO.Seconds()
			// A pitr target can recover to archived_through, which the
			// RPO watcher counts from too.
			if p := tj.PITR; p != nil && p.LagSeconds != nil && *p.LagSeconds <= t.RPO.Seconds() {
				met = true
			}
			tj.RPOMet = &met
		}
		out = append(out, tj)
	}
	return c.JSON(http.StatusOK, map[string]any{"targets": out, "count": len(out)})
}

func (a *API) target(c echo.Context) (policy.Target, error) {
	t, ok := a.d.Targets.Get(c.Param("name"))
	if !ok {
		return policy.Target{}, fmt.Errorf("%w: target %q is not configured", errTargetNotFound, truncate(c.Param("name"), 40))
	}
	c.Set(auditTarget, t.Name)
	return t, nil
}

// prunePreview is the dry run: what the target's retention would delete
// now, and why each kept backup stays; for a pitr target, also which base
// backups its WAL archive's pitr_window keeps and how much WAL before the
// oldest kept one would go.
func (a *API) prunePreview(c echo.Context) error {
	t, err := a.target(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	out := policy.PruneOutcome{Target: t.Name, Deleted: []string{}}
	arch, pitr := a.d.PITR[t.Name]
	var inUse map[string]bool
	if t.Retention.Enabled() || pitr {
		if inUse, err = tasks.BackupsInUse(a.d.Tasks); err != nil {
			return err
		}
	}
	if t.Retention.Enabled() {
		if out.Decisions, err = policy.PlanPrune(ctx, a.d.Backups, inUse, t); err != nil {
			return err
		}
		for _, d := range out.Decisions {
			if !d.Keep {
				out.Deleted = append(out.Deleted, d.Name)
			}
		}
	}
	body := map[string]any{"target": t.Name, "dry_run": true, "retention": t.Retention,
		"would_delete": out.Deleted, "decisions": out.Decisions}
	if pitr {
		p, err := a.pitrPreview(ctx, arch, inUse)
		if err != nil {
			return err
		}
		for _, d := range p.BaseBackups {
			if !d.Keep {
				out.Deleted = append(out.Deleted, d.Name)
			}
		}
		body["would_delete"], body["pitr"] = out.Deleted, p
	}
	return c.JSON(http.StatusOK, body)
}

// pitrPreviewJSON is a pitr target's part of the prune dry run.
type pitrPreviewJSON struct {
	WALArchive    string                 `json:"wal_archive"`
	WindowSeconds float64                `json:"window_seconds"`
	BaseBackups   []policy.PruneDecision `json:"base_backups"`
	// WAL is what would be pruned of the archive; null when nothing
	// would (no trusted base backup: all of it may be needed).
	WAL *wal.PruneReport `json:"wal"`
}

func (a *API) pitrPreview(ctx context.Context, arch policy.PITRArchive, inUse map[string]bool) (pitrPreviewJSON, error) {
	plan, err := policy.PlanPITR(ctx, a.d.Backups, inUse, arch, time.Now())
	if err != nil {
		return pitrPreviewJSON{}, err
	}
	out := pitrPreviewJSON{WALArchive: arch.Name, WindowSeconds: arch.Window.Seconds(), BaseBackups: plan.Decisions}
	if out.BaseBackups == nil {
		out.BaseBackups = []policy.PruneDecision{}
	}
	if plan.Cut != (wal.Position{}) && arch.WAL != nil {
		r, err := arch.WAL.Prune(ctx, plan.Cut, true)
		if err != nil {
			return out, err
		}
		out.WAL = &r
	}
	return out, nil
}

func (a *API) pruneTarget(c echo.Context) error {
	t, err := a.target(c)
	if err != nil {
		return err
	}
	return a.accepted(c, tasks.PrunePayload{Target: t.Name})
}

func (a *API) drillTarget(c echo.Context) error {
	t, err := a.target(c)
	if err != nil {
		return err
	}
	return a.accepted(c, tasks.DrillPayload{Target: t.Name})
}

// baseBackupTarget enqueues a base backup of a pitr target's server. Its
// name is chosen and reserved here, as create's are, so that the 202
// answer names the backup and two requests in one second cannot both
// take it.
func (a *API) baseBackupTarget(c echo.Context) error {
	t, err := a.target(c)
	if err != nil {
		return err
	}
	if !t.PITR {
		return badRequest("target %s has no pitr: a base backup is only useful with the server's WAL archived (set pitr: true)", t.Name)
	}
	name := policy.BaseBackupName(t.Name, time.Now())
	return a.acceptedNamed(c, name, tasks.BaseBackupPayload{Target: t.Name, BackupName: name})
}

func (a *API) listDrills(c echo.Context) error {
	target := c.QueryParam("target")
	if target != "" {
		if _, ok := a.d.Targets.Get(target); !ok {
			return fmt.Errorf("%w: target %q is not configured", errTargetNotFound, truncate(target, 40))
		}
	}
	drills := []tasks.DrillResult{}
	if a.d.State != nil {
		found, err := a.d.State.Drills(c.Request().Context(), target, 1000)
		if err != nil {
			return fmt.Errorf("%w: %w", errQueueUnavailable, err)
		}
		drills = append(drills, found...)
	}
	return c.JSON(http.StatusOK, map[string]any{"drills": drills, "count": len(drills)})
}
