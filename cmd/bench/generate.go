package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/autograph/pgbackup/jobs/pgtool"
)

// The generated table. Each row is about 265 bytes on disk with its two
// index entries (id bigint, an md5 text, a small jsonb holding another md5,
// 40 random bytes), so 3 million rows make a database of about 800 MB. Its
// contents are random hex and random bytes: they compress about as well as
// typical application data, not as well as repeated test strings would.
const (
	createTableSQL = `CREATE TABLE bench_data (
  id   bigint NOT NULL,
  txt  text   NOT NULL,
  doc  jsonb  NOT NULL,
  blob bytea  NOT NULL
)`
	insertBatchSQL = `INSERT INTO bench_data
SELECT g, md5(random()::text),
       jsonb_build_object('k', md5(random()::text), 'n', g),
       decode(md5(random()::text) || md5(random()::text) || substr(md5(random()::text), 1, 16), 'hex')
FROM generate_series($1::bigint, $2::bigint) AS g`
	// Written last: a database without this row was interrupted while being
	// generated and is made again.
	markerTableSQL = `CREATE TABLE bench_meta (key text PRIMARY KEY, value text NOT NULL)`
	markerKey      = "generated_rows"
	batchRows      = 500_000
)

// connect opens a connection to db as the bench's password role.
func connect(ctx context.Context, env benchEnv, db string) (*pgx.Conn, error) {
	return pgtool.Connect(ctx, env.pg.WithDatabase(db))
}

// dropDatabase drops db if it exists. A plain DROP DATABASE stops
// autovacuum workers itself (a freshly restored table gets auto-analyzed at
// once), which WITH (FORCE) would refuse to do for a role that is not a
// superuser; FORCE is only the fallback for client sessions left behind by
// an interrupted run.
func dropDatabase(ctx context.Context, env benchEnv, db string) error {
	err := pgtool.DropDatabase(ctx, env.pg, db)
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "55006" { // object_in_use
		return err
	}
	conn, err := connect(ctx, env, "postgres")
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgtool.QuoteIdent(db)+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop database %s with force: %w", db, err)
	}
	return nil
}

func createDatabase(ctx context.Context, env benchEnv, db string) error {
	return pgtool.CreateDatabase(ctx, env.pg, db)
}

// generatedRows returns the row count recorded by a finished generation,
// or 0 when the database or its marker is missing.
func generatedRows(ctx context.Context, env benchEnv, db string) (int64, error) {
	conn, err := connect(ctx, env, db)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "3D000" { // invalid_catalog_name
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var v string
	err = conn.QueryRow(ctx, "SELECT value FROM bench_meta WHERE key = $1", markerKey).Scan(&v)
	switch {
	case errors.As(err, &pgErr) && pgErr.Code == "42P01": // undefined_table
		return 0, nil
	case errors.Is(err, pgx.ErrNoRows):
		return 0, nil
	case err != nil:
		return 0, fmt.Errorf("read marker in %s: %w", db, err)
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("marker in %s: %q is not a row count", db, v)
	}
	return n, nil
}

// ensureDatabase generates db with rows rows unless a finished generation
// of the same size is already there, and returns its size in bytes.
func ensureDatabase(ctx context.Context, env benchEnv, db string, rows int64) (int64, error) {
	have, err := generatedRows(ctx, env, db)
	if err != nil {
		return 0, err
	}
	if have == rows {
		fmt.Printf("database %s: reusing the generated %d rows\n", db, rows)
	} else {
		if have != 0 {
			fmt.Printf("database %s holds %d rows, want %d: generating it again\n", db, have, rows)
		}
		if err := generate(ctx, env, db, rows); err != nil {
			return 0, fmt.Errorf("generate %s: %w", db, err)
		}
	}
	conn, err := connect(ctx, env, db)
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var size int64
	if err := conn.QueryRow(ctx, "SELECT pg_database_size(current_database())").Scan(&size); err != nil {
		return 0, fmt.Errorf("size of %s: %w", db, err)
	}
	return size, nil
}

// generate (re)creates db: load without indexes in a few large batches,
// build the indexes once, freeze and analyze (so the first dump does not
// also write hint bits), then write the marker.
func generate(ctx context.Context, env benchEnv, db string, rows int64) error {
	start := time.Now()
	fmt.Printf("generating database %s with %d rows (done once; the bench keeps it)...\n", db, rows)
	if err := dropDatabase(ctx, env, db); err != nil {
		return err
	}
	if err := createDatabase(ctx, env, db); err != nil {
		return err
	}
	conn, err := connect(ctx, env, db)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	for _, sql := range []string{
		"SET synchronous_commit = off",
		"SET maintenance_work_mem = '256MB'",
		createTableSQL,
	} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			return fmt.Errorf("%s: %w", sql, err)
		}
	}
	for lo := int64(1); lo <= rows; lo += batchRows {
		hi := min(lo+batchRows-1, rows)
		if _, err := conn.Exec(ctx, insertBatchSQL, lo, hi); err != nil {
			return fmt.Errorf("insert rows %d-%d: %w", lo, hi, err)
		}
		fmt.Printf("  rows %d-%d inserted (%.0f s)\n", lo, hi, time.Since(start).Seconds())
	}
	for _, sql := range []string{
		"ALTER TABLE bench_data ADD PRIMARY KEY (id)",
		"CREATE INDEX bench_data_txt_idx ON bench_data (txt)",
		"VACUUM (FREEZE, ANALYZE) bench_data",
		markerTableSQL,
	} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			return fmt.Errorf("%s: %w", sql, err)
		}
	}
	if _, err := conn.Exec(ctx, "INSERT INTO bench_meta VALUES ($1, $2)", markerKey, strconv.FormatInt(rows, 10)); err != nil {
		return fmt.Errorf("write marker: %w", err)
	}
	fmt.Printf("  indexes built, vacuumed and analyzed; generation took %.0f s\n", time.Since(start).Seconds())
	return nil
}

// countRows returns the number of rows of bench_data in db.
func countRows(ctx context.Context, env benchEnv, db string) (int64, error) {
	conn, err := connect(ctx, env, db)
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var n int64
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM bench_data").Scan(&n); err != nil {
		return 0, fmt.Errorf("count rows in %s: %w", db, err)
	}
	return n, nil
}
