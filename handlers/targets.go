package handlers

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/autograph/pgbackup/jobs/coord"
	"github.com/autograph/pgbackup/jobs/policy"
	"github.com/autograph/pgbackup/jobs/tasks"
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
// published it (coord.WALStatus). ArchivedThrough, LagSeconds and Window
// are null until the archiver knows archived_through.
type pitrJSON struct {
	Archive         string      `json:"archive"`
	ArchivedThrough *time.Time  `json:"archived_through"`
	LagSeconds      *float64    `json:"lag_seconds"`
	SlotLagBytes    int64       `json:"slot_lag_bytes"`
	Window          *windowJSON `json:"window"`
	Timeline        uint32      `json:"timeline"`
	ArchivedLSN     string      `json:"archived_lsn"`
	ServerLSN       string      `json:"server_lsn"`
	LastSegment     string      `json:"last_segment"`
	Updated         time.Time   `json:"updated"`
}

// windowJSON is the oldest and newest second a restore can reach. From is
// when the archive started (its first published state) until base
// backups bound it: WAL replays only onto a base backup.
type windowJSON struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
}

func newPITRJSON(w *coord.WALStatus, now time.Time) *pitrJSON {
	if w == nil {
		return nil
	}
	p := &pitrJSON{Archive: w.Archive, SlotLagBytes: w.SlotLagBytes, Timeline: w.Timeline, ArchivedLSN: w.ArchivedLSN,
		ServerLSN: w.ServerLSN, LastSegment: w.LastSegment, Updated: w.Updated}
	if !w.ArchivedThrough.IsZero() {
		through := w.ArchivedThrough.UTC()
		lag := w.LagSeconds(now)
		p.ArchivedThrough, p.LagSeconds = &through, &lag
		from := w.Started.UTC()
		if from.IsZero() || from.After(through) {
			from = through
		}
		p.Window = &windowJSON{From: from, To: through}
	}
	return p
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
			tj.PITR = newPITRJSON(st.WAL, now)
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
// now, and why each kept backup stays.
func (a *API) prunePreview(c echo.Context) error {
	t, err := a.target(c)
	if err != nil {
		return err
	}
	out := policy.PruneOutcome{Target: t.Name, Deleted: []string{}}
	if t.Retention.Enabled() {
		inUse, err := tasks.BackupsInUse(a.d.Tasks)
		if err != nil {
			return err
		}
		if out.Decisions, err = policy.PlanPrune(c.Request().Context(), a.d.Backups, inUse, t); err != nil {
			return err
		}
		for _, d := range out.Decisions {
			if !d.Keep {
				out.Deleted = append(out.Deleted, d.Name)
			}
		}
	}
	return c.JSON(http.StatusOK, map[string]any{"target": t.Name, "dry_run": true, "retention": t.Retention,
		"would_delete": out.Deleted, "decisions": out.Decisions})
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
