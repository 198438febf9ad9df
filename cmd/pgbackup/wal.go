package main

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/sirupsen/logrus"

	"github.com/autograph/pgbackup/cmd/internal/cli"
	"github.com/autograph/pgbackup/cmd/internal/remote"
	"github.com/autograph/pgbackup/cmd/internal/wire"
	"github.com/autograph/pgbackup/jobs/wal"
)

// walReport is what `pgbackup wal verify` prints.
type walReport struct {
	Target string `json:"target"`
	OK     bool   `json:"ok"`
	// Gaps are the chains' gaps as text, for people: timeline and LSN
	// range in PostgreSQL's notation, and why.
	Gaps   []string    `json:"gaps,omitempty"`
	Chains []wal.Chain `json:"chains"`
}

// runWAL runs `pgbackup wal verify --target T`: it walks the target's WAL
// archive in each of its stores, reading every object whole, prints the
// chains as JSON and fails (exit 1) when any has a gap.
func runWAL(ctx context.Context, setup *wire.Setup, f *cli.Flags, log *logrus.Entry, o remote.IO) error {
	if f.Arg != "verify" {
		return fmt.Errorf("wal: unknown subcommand %q: want `pgbackup wal verify --target T`", f.Arg)
	}
	t, ok := setup.Targets.Get(f.Target)
	if f.Target == "" || !ok {
		return fmt.Errorf("wal verify: --target %q is not a configured target", f.Target)
	}
	// A pitr target's server shares one archive with its other pitr
	// targets: verify that one.
	a, err := wire.OpenTargetWALArchive(ctx, setup, t.Name, t.Stores, log)
	if err != nil {
		return err
	}
	chains, err := a.Verify(ctx)
	if err != nil {
		return err
	}
	r := walReport{Target: t.Name, OK: true, Chains: chains}
	for _, c := range chains {
		for _, g := range c.Gaps {
			r.Gaps = append(r.Gaps, g.String())
		}
	}
	gaps := len(r.Gaps)
	r.OK = gaps == 0
	enc := json.NewEncoder(o.Stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return err
	}
	if gaps > 0 {
		return fmt.Errorf("wal verify %s: %d gaps in the archive", t.Name, gaps)
	}
	return nil
}
