package engine

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/autograph/pgbackup/jobs/pgtool"
)

// ErrRowCountMismatch means restored or archived data does not have the
// row counts recorded when the backup was taken.
var ErrRowCountMismatch = errors.New("row counts differ from the manifest")

// snapshot is an open repeatable-read transaction whose snapshot pg_dump
// imports (--snapshot), so that the row counts taken in it describe
// exactly the data in the dump.
type snapshot struct {
	conn *pgx.Conn
	tx   pgx.Tx
	id   string
}

// openSnapshot starts the transaction and exports its snapshot. It must
// stay open until pg_dump has started: the snapshot dies with it.
func openSnapshot(ctx context.Context, c pgtool.Conn) (*snapshot, error) {
	conn, err := pgtool.Connect(ctx, c)
	if err != nil {
		return nil, err
	}
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		conn.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("snapshot: begin: %w", err)
	}
	var id string
	if err := tx.QueryRow(ctx, "SELECT pg_export_snapshot()").Scan(&id); err != nil {
		_ = tx.Rollback(context.WithoutCancel(ctx))
		conn.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("snapshot: export: %w", err)
	}
	return &snapshot{conn: conn, tx: tx, id: id}, nil
}

// tablesSQL lists the tables whose rows pg_dump writes as COPY data:
// ordinary tables and partitions (partitioned parents hold no rows of
// their own; views, foreign tables and materialized views have no COPY).
const tablesSQL = `SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp\_%'
ORDER BY 1, 2`

// countRows counts every table's rows, in the snapshot's transaction.
func (s *snapshot) countRows(ctx context.Context) (map[string]int64, error) {
	return countTables(ctx, s.tx)
}

type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func countTables(ctx context.Context, q querier) (map[string]int64, error) {
	rows, err := q.Query(ctx, tablesSQL)
	if err != nil {
		return nil, fmt.Errorf("row counts: list tables: %w", err)
	}
	type table struct{ schema, name string }
	tables, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (table, error) {
		var t table
		return t, r.Scan(&t.schema, &t.name)
	})
	if err != nil {
		return nil, fmt.Errorf("row counts: list tables: %w", err)
	}
	out := make(map[string]int64, len(tables))
	for _, t := range tables {
		n, err := countTable(ctx, q, t.schema, t.name)
		if err != nil {
			return nil, err
		}
		out[tableKey(t.schema, t.name)] = n
	}
	return out, nil
}

func countTable(ctx context.Context, q querier, schema, name string) (int64, error) {
	var n int64
	if err := q.QueryRow(ctx, "SELECT count(*) FROM "+pgx.Identifier{schema, name}.Sanitize()).Scan(&n); err != nil {
		return 0, fmt.Errorf("row counts: count %s.%s: %w", schema, name, err)
	}
	return n, nil
}

// tableKey names a table in a manifest's row counts.
func tableKey(schema, name string) string { return schema + "." + name }

// close ends the transaction (it only read) and the connection.
func (s *snapshot) close(ctx context.Context) {
	ctx = context.WithoutCancel(ctx)
	_ = s.tx.Rollback(ctx)
	_ = s.conn.Close(ctx)
}

// countDatabase counts a database's tables now, outside any snapshot (for
// a restored copy that nobody else writes to).
func countDatabase(ctx context.Context, c pgtool.Conn) (map[string]int64, error) {
	conn, err := pgtool.Connect(ctx, c)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return countTables(ctx, conn)
}

// compareCounts describes how got differs from the manifest's want ("" if
// it does not); tables missing from got count as zero rows.
func compareCounts(want, got map[string]int64) string {
	var diffs []string
	for t, w := range want {
		if g := got[t]; g != w {
			diffs = append(diffs, fmt.Sprintf("%s has %d rows, manifest says %d", t, g, w))
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 5 {
		diffs = append(diffs[:5], fmt.Sprintf("and %d more", len(diffs)-5))
	}
	return strings.Join(diffs, "; ")
}

// copyRowCounts reads SQL as pg_dump writes it (a plain archive, or
// pg_restore -f - of another format) and counts the data rows of each
// COPY ... FROM stdin block, which is one line per row in COPY's text
// format (newlines inside values are escaped).
func copyRowCounts(r io.Reader) (map[string]int64, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 1<<20), 1<<30)
	out := map[string]int64{}
	table := ""
	for sc.Scan() {
		line := sc.Bytes()
		if table != "" {
			if string(line) == `\.` {
				table = ""
				continue
			}
			out[table]++
			continue
		}
		if t, ok := copyTarget(string(line)); ok {
			table = t
			if _, seen := out[t]; !seen {
				out[t] = 0
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("count rows in archive: %w", err)
	}
	return out, nil
}

// copyTarget recognises "COPY schema.table (cols) FROM stdin;" and returns
// the table as tableKey names it (quotes removed).
func copyTarget(line string) (string, bool) {
	rest, ok := strings.CutPrefix(line, "COPY ")
	if !ok || !strings.HasSuffix(line, " FROM stdin;") {
		return "", false
	}
	parts := splitQualified(rest)
	if len(parts) != 2 {
		return "", false
	}
	return tableKey(parts[0], parts[1]), true
}

// splitQualified reads a schema-qualified name, either part of which may
// be quoted, up to the first space outside quotes.
func splitQualified(s string) []string {
	var parts []string
	var cur strings.Builder
	quoted := false
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case ch == ' ' && !quoted:
			return append(parts, cur.String())
		case ch == '"' && quoted && i+1 < len(s) && s[i+1] == '"':
			cur.WriteByte('"')
			i++
		case ch == '"':
			quoted = !quoted
		case ch == '.' && !quoted:
			parts = append(parts, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(ch)
		}
	}
	return append(parts, cur.String())
}
