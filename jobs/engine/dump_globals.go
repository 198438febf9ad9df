package engine

import (
	"context"
	"fmt"

	"github.com/autograph/pgbackup/jobs/pgtool"
	"github.com/autograph/pgbackup/store"
)

// dumpGlobals is the dump stage of a backup's globals: it streams
// pg_dumpall --globals-only through the encode and put stages.
func (e *Engine) dumpGlobals(ctx context.Context, tools pgtool.Tools, conn pgtool.Conn, name Name, targets []store.Store) (*Companion, error) {
	super, err := isSuperuser(ctx, conn)
	if err != nil {
		return nil, err
	}
	args := []string{"--globals-only", "--no-password", "--database=" + conn.Database}
	if !super {
		args = append(args, "--no-role-passwords")
	}
	src, stop, err := startTool(ctx, tools, conn, "pg_dumpall", args...)
	if err != nil {
		return nil, err
	}
	key := globalsKey(name, e.codec, e.enc.encrypts())
	digest, err := e.putStream(ctx, targets, key, src, stop, "uploading globals", nil)
	if err != nil {
		return nil, fmt.Errorf("globals: %w", err)
	}
	return &Companion{ArchiveKey: key, SizeBytes: digest.Size(), SHA256: digest.Sum(), ChunkSums: digest.Sums(), NoRolePasswords: !super}, nil
}

func isSuperuser(ctx context.Context, c pgtool.Conn) (bool, error) {
	conn, err := pgtool.Connect(ctx, c)
	if err != nil {
		return false, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var super bool
	if err := conn.QueryRow(ctx, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user").Scan(&super); err != nil {
		return false, fmt.Errorf("check superuser: %w", err)
	}
	return super, nil
}
