package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/template"

	"github.com/autograph/pgbackup/handlers/client"
	"github.com/autograph/pgbackup/jobs/pgtool"
	"github.com/autograph/pgbackup/store"
)

const (
	sourceDB   = "demo_source"
	restoredDB = "demo_restored"
)

// sampleSQL fills demo_source: customers and their orders, with a foreign
// key and an index, the same rows on every run.
const sampleSQL = `
CREATE TABLE customers (
	id         integer PRIMARY KEY,
	name       text NOT NULL,
	email      text NOT NULL UNIQUE,
	created_at timestamptz NOT NULL
);
CREATE TABLE orders (
	id          integer PRIMARY KEY,
	customer_id integer NOT NULL REFERENCES customers(id),
	amount      numeric(10,2) NOT NULL,
	status      text NOT NULL,
	placed_at   timestamptz NOT NULL
);
CREATE INDEX orders_customer_id_idx ON orders(customer_id);
INSERT INTO customers
SELECT i, 'Customer ' || i, 'customer' || i || '@example.com',
       timestamptz '2024-01-01 00:00:00+00' + i * interval '37 minutes'
FROM generate_series(1, 2000) AS i;
INSERT INTO orders
SELECT i, 1 + (i * 7919) % 2000, round(((i * 104729) % 50000) / 100.0, 2),
       (ARRAY['new', 'paid', 'shipped', 'returned'])[1 + i % 4],
       timestamptz '2024-02-01 00:00:00+00' + i * interval '11 minutes'
FROM generate_series(1, 5000) AS i;
ANALYZE customers;
ANALYZE orders;
`

// sampleTables are the tables compared after the restore.
var sampleTables = []string{"customers", "orders"}

func (d *demo) createSample(ctx context.Context) error {
	d.out.step("Creating the sample database %s", sourceDB)
	if err := pgtool.CreateDatabase(ctx, d.pg, sourceDB); err != nil {
		return err
	}
	conn, err := pgtool.Connect(ctx, d.pg.WithDatabase(sourceDB))
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, sampleSQL); err != nil {
		return fmt.Errorf("fill %s: %w", sourceDB, err)
	}
	for _, t := range sampleTables {
		var n int64
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+pgtool.QuoteIdent(t)).Scan(&n); err != nil {
			return fmt.Errorf("count %s: %w", t, err)
		}
		d.out.say("%s: %d rows", t, n)
	}
	return nil
}

// backupAndRestore backs demo_source up into the local directory and
// MinIO through the API, restores it from MinIO into demo_restored, and
// compares the two.
func (d *demo) backupAndRestore(ctx context.Context) error {
	d.out.step("Backing up %s (custom format, local directory and MinIO)", sourceDB)
	d.out.say("POST /api/admin/backup/create")
	created, err := d.api.CreateBackup(ctx, client.CreateBackupRequest{Format: "custom",
		Stores: []string{store.LocalName, store.MinIOName}})
	if err != nil {
		return err
	}
	d.out.say("backup %s, task %s", created.BackupName, created.TaskID)
	st, err := d.waitTask(ctx, "backup", created.TaskID)
	if err != nil {
		return err
	}
	var result bytes.Buffer
	if json.Compact(&result, st.Result) != nil {
		result.Write(st.Result)
	}
	d.out.say("result: %s", result.String())

	d.out.step("Listing backups")
	d.out.say("GET /api/admin/backup/list")
	list, err := d.api.ListBackups(ctx, client.ListBackupsOptions{})
	if err != nil {
		return err
	}
	d.out.say("%d backup(s)", list.Count)
	for _, b := range list.Backups {
		d.out.say("%s  %s  db=%s  %d bytes  in %s", b.BackupName, b.Format, b.Database, b.SizeBytes, strings.Join(b.Locations, ","))
	}

	d.out.step("Restoring %s from MinIO into a new database %s", created.BackupName, restoredDB)
	d.out.say("POST /api/admin/backup/restore")
	restore, err := d.api.RestoreBackup(ctx, client.RestoreBackupRequest{BackupName: created.BackupName,
		From: store.MinIOName, TargetDatabase: restoredDB})
	if err != nil {
		return err
	}
	d.out.say("task %s", restore.TaskID)
	if _, err := d.waitTask(ctx, "restore", restore.TaskID); err != nil {
		return err
	}
	return d.compare(ctx, created.BackupName)
}

// compare checks that demo_restored holds what demo_source holds: per
// table the row count and an md5 over all rows in key order.
func (d *demo) compare(ctx context.Context, backupName string) error {
	d.out.step("Comparing %s with %s", sourceDB, restoredDB)
	const row = "    %-10s %12s %14s  %s\n"
	fmt.Fprintf(d.out.out, row, "table", sourceDB, restoredDB, "content")
	mismatch := false
	for _, t := range sampleTables {
		var got [2]struct{ n, sum string }
		for i, db := range []string{sourceDB, restoredDB} {
			conn, err := pgtool.Connect(ctx, d.pg.WithDatabase(db))
			if err != nil {
				return err
			}
			err = conn.QueryRow(ctx, "SELECT count(*)::text, md5(coalesce(string_agg(x::text, ',' ORDER BY x.id), '')) FROM "+
				pgtool.QuoteIdent(t)+" AS x").Scan(&got[i].n, &got[i].sum)
			conn.Close(context.WithoutCancel(ctx))
			if err != nil {
				return fmt.Errorf("fingerprint %s.%s: %w", db, t, err)
			}
		}
		same := "identical"
		if got[0] != got[1] {
			same, mismatch = d.out.red+"DIFFERENT"+d.out.reset, true
		}
		fmt.Fprintf(d.out.out, row, t, got[0].n, got[1].n, same)
	}
	if mismatch {
		return fmt.Errorf("%s differs from %s", restoredDB, sourceDB)
	}
	fmt.Fprintf(d.out.out, "    %sthe restored database matches the source%s\n", d.out.green, d.out.reset)
	d.backupName = backupName
	return nil
}

// summary writes demo.env and prints how to use the running service.
func (d *demo) summary(context.Context) error {
	envFile := filepath.Join(d.dir, "demo.env")
	content := fmt.Sprintf("export PGBACKUP_URL=%s\nexport ADMIN_TOKEN=%s\nexport VIEWER_TOKEN=%s\n", d.api.BaseURL(), d.adminToken, d.viewerToken)
	if err := os.WriteFile(envFile, []byte(content), 0o600); err != nil {
		return err
	}
	d.out.step("The service is running")
	return summaryText.Execute(d.out.out, map[string]string{
		"URL": d.api.BaseURL(), "Admin": d.adminToken, "Viewer": d.viewerToken, "EnvFile": envFile,
		"Backup": d.backupName, "PGPort": d.env.PGPort, "PGUser": d.env.PGUser,
		"Source": sourceDB, "Restored": restoredDB, "BenchEnv": filepath.Join(d.bench.Dir(), "env"),
		"Logs": filepath.Join(d.dir, "logs"), "Backups": filepath.Join(d.dir, "backups"), "MinIO": d.env.MinIOEndpoint,
		"SigningKey": filepath.Join(d.dir, "signing-key"),
	})
}

var summaryText = template.Must(template.New("summary").Parse(`    API:          {{.URL}}
    Backups page: {{.URL}}/ui/#token={{.Admin}}
    Queue UI:     {{.URL}}/monitoring/
                  (the browser asks for a user name and password: any user
                  name, and the admin token as password; the viewer token
                  opens it read-only)
    Admin token:  {{.Admin}}
    Viewer token: {{.Viewer}}

    In another shell:
      source {{.EnvFile}}
      curl -s -H "Authorization: Bearer $ADMIN_TOKEN" $PGBACKUP_URL/api/admin/backup/list
      curl -s -H "Authorization: Bearer $ADMIN_TOKEN" -H 'Content-Type: application/json' \
           -d '{"format":"custom"}' $PGBACKUP_URL/api/admin/backup/create
      curl -s -H "Authorization: Bearer $ADMIN_TOKEN" $PGBACKUP_URL/api/admin/tasks/TASK_ID
      curl -s -H "Authorization: Bearer $ADMIN_TOKEN" -H 'Content-Type: application/json' \
           -d '{"backup_name":"{{.Backup}}","target_database":"demo_copy"}' $PGBACKUP_URL/api/admin/backup/restore
      curl -s -X DELETE -H "Authorization: Bearer $ADMIN_TOKEN" $PGBACKUP_URL/api/admin/backup/{{.Backup}}

    PostgreSQL:   127.0.0.1:{{.PGPort}}, user {{.PGUser}}, databases {{.Source}} and {{.Restored}}
                  (password: PGBACKUP_TEST_PG_PASSWORD in {{.BenchEnv}})
    Logs:         {{.Logs}}/api.log
                  {{.Logs}}/worker-1.log
                  {{.Logs}}/worker-2.log
                  {{.Logs}}/scheduler.log
    Backups:      {{.Backups}} and MinIO bucket backups at {{.MinIO}}
    Signing key:  {{.SigningKey}} (every manifest is signed with it; the
                  programs refuse a manifest it did not sign)
`))
