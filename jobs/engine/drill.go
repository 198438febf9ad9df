package engine

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/autograph/pgbackup/jobs/pgtool"
)

// DrillReport is what a restore drill measured.
type DrillReport struct {
	Manifest *Manifest
	// RTO is the whole recovery: download, check, restore and the row count
	// comparison.
	RTO time.Duration
	// Tables is how many tables' row counts were compared.
	Tables int
}

// Drill restores a backup into the scratch database scratch (created for
// it), checks every table's row count against the manifest, measures the
// time it all took, and drops the scratch database whatever happened.
// Nothing else is touched.
//
// The scratch name was parsed where it was made; only a missing one (the
// zero Ident) is refused here.
func (e *Engine) Drill(ctx context.Context, name Name, scratchDB pgtool.Ident, server *pgtool.Conn, progress ProgressFunc) (*DrillReport, error) {
	e = e.on(server)
	start := time.Now()
	if scratchDB.IsZero() {
		return nil, fmt.Errorf("drill %s: %w: no scratch database", name, ErrInvalid)
	}
	scratch := scratchDB.String()
	m, where, err := e.Find(ctx, name, nil)
	if err != nil {
		return nil, fmt.Errorf("drill: %w", err)
	}
	rep := &DrillReport{Manifest: m.Summary()}
	if m.Content == ContentBase {
		return rep, errIsBase("drill", name)
	}
	if err := e.checkSignature(m, false); err != nil {
		return rep, fmt.Errorf("drill %s: %w", name, err)
	}
	s, _ := e.pick(where[:1])
	log := e.log.WithFields(logrus.Fields{"backup_name": name, "scratch": scratch})
	tmp, err := os.MkdirTemp(e.workDir, "pgbackup-drill-*")
	if err != nil {
		return rep, fmt.Errorf("drill %s: work dir: %w", name, err)
	}
	defer os.RemoveAll(tmp)
	archive, err := e.materialize(ctx, s[0], m, tmp, progress)
	if err != nil {
		return rep, fmt.Errorf("drill %s: %w", name, err)
	}
	serverNum, err := pgtool.ServerVersion(ctx, e.conn.WithDatabase("postgres"))
	if err != nil {
		return rep, fmt.Errorf("drill %s: %w", name, err)
	}
	tools, err := e.finder.Find(ctx, serverNum)
	if err != nil {
		return rep, fmt.Errorf("drill %s: %w", name, err)
	}
	if err := pgtool.CreateDatabase(ctx, e.conn, scratch); err != nil {
		return rep, fmt.Errorf("drill %s: %w", name, err)
	}
	defer e.dropQuietly(ctx, scratch, log)
	report(progress, Progress{Phase: "restoring", Bytes: m.SizeBytes})
	if err := e.runRestore(ctx, tools, e.conn.WithDatabase(scratch), m.Format, archive, false); err != nil {
		return rep, fmt.Errorf("drill %s: %w", name, err)
	}
	report(progress, Progress{Phase: "checking", Bytes: m.SizeBytes})
	if err := e.checkRestoredCounts(ctx, m, scratch); err != nil {
		return rep, fmt.Errorf("drill %s: %w", name, err)
	}
	rep.Tables, rep.RTO = len(m.RowCounts), time.Since(start)
	log.WithField("rto_ms", rep.RTO.Milliseconds()).Info("restore drill passed")
	return rep, nil
}
