package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/autograph/pgbackup/internal/harness"
)

// settings are the programs' configuration (configs/config.go): every
// setting they read is set, and the demo listens on loopback only.
func (d *demo) settings(apiPort int) [][2]string {
	return [][2]string{
		{"POSTGRES_HOST", d.env.PGHost},
		{"POSTGRES_PORT", d.env.PGPort},
		{"POSTGRES_USER", d.env.PGUser},
		{"POSTGRES_PASSWORD", d.env.PGPassword},
		{"POSTGRES_DB", sourceDB},
		{"POSTGRES_SSLMODE", "disable"},
		{"BACKUP_DIR", filepath.Join(d.dir, "backups")},
		{"WORK_DIR", filepath.Join(d.dir, "work")},
		{"MINIO_ENDPOINT", d.env.MinIOEndpoint},
		{"MINIO_ROOT_USER", d.env.MinIOUser},
		{"MINIO_ROOT_PASSWORD", d.env.MinIOPassword},
		{"REDIS_ADDR", d.env.RedisAddr},
		{"API_ADDR", "127.0.0.1:" + strconv.Itoa(apiPort)},
		{"API_ADMIN_TOKENS", d.adminToken},
		{"API_VIEWER_TOKENS", d.viewerToken},
		// Signed by default: one key for every program of this demo, so
		// a manifest written into the bucket by anyone else is refused.
		{"BACKUP_SIGNING_KEY", d.signingKey},
		{"BACKUP_ENABLED", "true"},
		{"BACKUP_INTERVAL_HOURS", "24"},
		{"TASK_RETRY_DELAY", "2s"},
		// Short, so that Ctrl-C does not wait a minute for a running task.
		{"WORKER_SHUTDOWN_TIMEOUT", "10s"},
		{"LOG_LEVEL", "info"},
	}
}

// unsetSettings would override the settings above; the programs must not
// inherit them.
var unsetSettings = []string{"CONFIG_FILE", "PG_BIN_DIR", "API_AUTH_DISABLED", "BACKUP_SCHEDULE",
	"BACKUP_SIGNING_KEY_FILE", "BACKUP_SIGNING_OLD_KEYS", "BACKUP_SIGNING_OLD_KEYS_FILE", "REFUSE_UNSIGNED_RESTORES"}

// programEnv is this process's environment with the settings replaced:
// the programs must not inherit a setting the demo means to leave unset.
func programEnv(settings [][2]string) []string {
	names := slices.Clone(unsetSettings)
	for _, kv := range settings {
		names = append(names, kv[0])
	}
	out := harness.Inherit(harness.Names(names...))
	for _, kv := range settings {
		out = append(out, kv[0]+"="+kv[1])
	}
	return out
}

func (d *demo) startPrograms(ctx context.Context) error {
	port, err := d.apiPort()
	if err != nil {
		return err
	}
	d.adminToken, d.viewerToken = token("demo-admin-"), token("demo-viewer-")
	if d.signingKey, err = signingKey(d.dir); err != nil {
		return err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	hc := &http.Client{Timeout: 10 * time.Second}
	if d.api, err = newAPIClient(addr, d.adminToken, hc); err != nil {
		return err
	}
	// Should the demo die without its cleanup, the programs go with it.
	d.progs = &harness.Group{Bin: filepath.Join(d.root, "bin"), Logs: filepath.Join(d.dir, "logs"),
		Env: programEnv(d.settings(port)), DeathSignal: syscall.SIGTERM, Client: hc}

	d.out.step("Starting the API, two workers and the scheduler")
	api, _, err := d.progs.StartAPI(ctx, "api", addr)
	if api != nil {
		d.out.say("api: pid %d (log %s)", api.Pid(), api.Log)
	}
	if err != nil {
		return fmt.Errorf("the API did not become ready at %s/readyz: %w", d.api.BaseURL(), err)
	}
	for _, p := range []struct{ name, program string }{
		{"worker-1", harness.Worker}, {"worker-2", harness.Worker}, {"scheduler", harness.Scheduler},
	} {
		proc, err := d.progs.Start(p.name, p.program)
		if err != nil {
			return err
		}
		d.out.say("%s: pid %d (log %s)", p.name, proc.Pid(), proc.Log)
	}
	d.out.say("API ready at %s", d.api.BaseURL())
	return nil
}

// stopPrograms sends SIGTERM to all programs at once (workers hand running
// tasks back within WORKER_SHUTDOWN_TIMEOUT) and SIGKILLs whatever is left
// after 30 s.
func (d *demo) stopPrograms() {
	if err := d.progs.StopAll(); err != nil {
		d.out.warn("%v", err)
	}
	d.progs = nil
}

// signingKey is the demo's manifest signing key, made once per scratch
// directory and kept in it (signing-key, readable by its owner only), so
// that every program started for this demo, and the pgbackup command run
// by hand against it, use the same one.
func signingKey(dir string) (string, error) {
	path := filepath.Join(dir, "signing-key")
	if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) >= 32 {
		return strings.TrimSpace(string(b)), nil
	}
	key := token("demo-signing-")
	if err := os.WriteFile(path, []byte(key+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("signing key: %w", err)
	}
	return key, nil
}
