package engine

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/sirupsen/logrus"

	"github.com/autograph/pgbackup/jobs/pgtool"
	"github.com/autograph/pgbackup/store"
)

// applyGlobals restores the backup's globals, in a work directory of its own.
func (e *Engine) applyGlobals(ctx context.Context, s store.Store, m *Manifest, log *logrus.Entry) error {
	tools, err := e.toolsFor(ctx)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(e.workDir, "pgbackup-globals-*")
	if err != nil {
		return fmt.Errorf("globals: work dir: %w", err)
	}
	defer os.RemoveAll(tmp)
	return e.restoreGlobals(ctx, tools, s, m, tmp, log)
}

// restoreGlobals applies a backup's roles and tablespaces before its
// database is restored. Roles that already exist are left as they are:
// their CREATE ROLE and ALTER ROLE lines are skipped, everything else
// (new roles, memberships) is applied with ON_ERROR_STOP.
func (e *Engine) restoreGlobals(ctx context.Context, tools pgtool.Tools, s store.Store, m *Manifest, tmp string, log *logrus.Entry) error {
	if m.Globals == nil {
		return fmt.Errorf("%w: backup %s was taken without globals (include_globals)", ErrInvalid, m.Name)
	}
	cm := m.companion(m.Globals)
	raw := filepath.Join(tmp, "globals.sql")
	if err := e.fetchVerified(ctx, s, cm, raw, nil); err != nil {
		return fmt.Errorf("globals: %w", err)
	}
	existing, err := existingRoles(ctx, e.conn.WithDatabase("postgres"))
	if err != nil {
		return err
	}
	super, err := isSuperuser(ctx, e.conn.WithDatabase("postgres"))
	if err != nil {
		return err
	}
	// The roles are filtered in the stream psql reads, so the scanner
	// checks the lines as filtered: a check of the file as stored could
	// pass lines that filtering then changes.
	filter, skipped := roleFilter(existing, super)
	if err := e.runPlain(ctx, tools, e.conn.WithDatabase("postgres"), raw, filter,
		"--no-psqlrc", "--quiet", "--no-password", "--set=ON_ERROR_STOP=1"); err != nil {
		return fmt.Errorf("globals: %w", err)
	}
	log.WithField("roles_kept", *skipped).Info("globals applied")
	return nil
}

func existingRoles(ctx context.Context, c pgtool.Conn) (map[string]bool, error) {
	conn, err := pgtool.Connect(ctx, c)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	rows, err := conn.Query(ctx, "SELECT rolname FROM pg_roles")
	if err != nil {
		return nil, fmt.Errorf("list roles: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("list roles: %w", err)
	}
	out := make(map[string]bool, len(names))
	for _, n := range names {
		out[n] = true
	}
	return out, nil
}

// superOnly are the role attributes only a superuser may set, even to
// their defaults: a role restoring without superuser leaves them out, so
// the roles it creates get the defaults (no superuser, no replication, no
// RLS bypass).
var superOnly = []string{" NOSUPERUSER", " SUPERUSER", " NOREPLICATION", " REPLICATION", " NOBYPASSRLS", " BYPASSRLS"}

// roleFilter returns a line filter for pg_dumpall's globals that drops
// the CREATE ROLE and ALTER ROLE lines of roles in existing (and, unless
// super, removes the attributes only a superuser may set), and the count
// of roles it left alone, valid once the filter has seen every line.
func roleFilter(existing map[string]bool, super bool) (func(string) (string, bool), *int) {
	skipped := new(int)
	return func(line string) (string, bool) {
		if role, ok := roleOf(line); ok && existing[role] {
			if strings.HasPrefix(line, "CREATE ROLE ") {
				*skipped++
			}
			return "", false
		}
		if !super && strings.HasPrefix(line, "ALTER ROLE ") {
			for _, attr := range superOnly {
				line = strings.ReplaceAll(line, attr+" ", " ")
				line = strings.ReplaceAll(line, attr+";", ";")
			}
		}
		return line, true
	}, skipped
}

// roleOf returns the role a "CREATE ROLE r" or "ALTER ROLE r ..." line of
// pg_dumpall is about, unquoted.
func roleOf(line string) (string, bool) {
	var rest string
	switch {
	case strings.HasPrefix(line, "CREATE ROLE "):
		rest = line[len("CREATE ROLE "):]
	case strings.HasPrefix(line, "ALTER ROLE "):
		rest = line[len("ALTER ROLE "):]
	default:
		return "", false
	}
	if strings.HasPrefix(rest, `"`) {
		var b strings.Builder
		for i := 1; i < len(rest); i++ {
			if rest[i] == '"' {
				if i+1 < len(rest) && rest[i+1] == '"' {
					b.WriteByte('"')
					i++
					continue
				}
				return b.String(), true
			}
			b.WriteByte(rest[i])
		}
		return "", false
	}
	end := strings.IndexAny(rest, " ;")
	if end < 0 {
		return "", false
	}
	return rest[:end], true
}
