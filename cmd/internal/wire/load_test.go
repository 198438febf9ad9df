package wire

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/autograph/pgbackup/configs"
	"github.com/autograph/pgbackup/jobs/policy"
)

// TestBadValuesNameTheSetting covers what configs cannot check alone: the
// rules of the packages that use a value, and the files settings name.
func TestBadValuesNameTheSetting(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing")
	notAge := filepath.Join(dir, "not-age")
	if err := os.WriteFile(notAge, []byte("not an age identity\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		env     []string
		setting string
	}{
		{"db name", []string{"POSTGRES_DB=a;drop"}, "POSTGRES_DB"},
		{"root cert", []string{"POSTGRES_SSLROOTCERT=" + missing}, "POSTGRES_SSLROOTCERT"},
		{"codec", []string{"COMPRESSION=brotli"}, "COMPRESSION"},
		{"queue without weight", []string{"QUEUE_WEIGHTS=restore=6,backup=3"}, "QUEUE_WEIGHTS"},
		{"schedule", []string{"BACKUP_SCHEDULE=0 25 * * *"}, "BACKUP_SCHEDULE"},
		{"webhook", []string{"ALERT_WEBHOOK_URLS=ftp://h/x"}, "ALERT_WEBHOOK_URLS"},
		{"minio ca", []string{"MINIO_ENDPOINT=https://h:9000", "MINIO_ROOT_USER=u", "MINIO_ROOT_PASSWORD=p", "MINIO_CA_FILE=" + missing}, "MINIO_CA_FILE"},
		{"redis ca", []string{"REDIS_TLS=true", "REDIS_TLS_CA_FILE=" + missing}, "REDIS_TLS"},
		{"signing key file", []string{"BACKUP_SIGNING_KEY_FILE=" + missing}, "BACKUP_SIGNING_KEY_FILE"},
		{"signing key short", []string{"BACKUP_SIGNING_KEY=short"}, "BACKUP_SIGNING_KEY"},
		{"old keys file", []string{"BACKUP_SIGNING_OLD_KEYS_FILE=" + missing}, "BACKUP_SIGNING_OLD_KEYS_FILE"},
		{"recipient", []string{"ENCRYPTION_RECIPIENTS=age1nope"}, "ENCRYPTION_RECIPIENTS"},
		{"recipients file", []string{"ENCRYPTION_RECIPIENTS_FILE=" + missing}, "ENCRYPTION_RECIPIENTS_FILE"},
		{"identity file", []string{"ENCRYPTION_IDENTITY_FILE=" + missing}, "ENCRYPTION_IDENTITY_FILE"},
		{"identity", []string{"ENCRYPTION_IDENTITY_FILE=" + notAge}, "ENCRYPTION_IDENTITY_FILE"},
		{"target name", []string{`BACKUP_TARGETS=[{"name":"Bad Name"}]`}, "BACKUP_TARGETS"},
		{"target password file", []string{`BACKUP_TARGETS=[{"name":"a","host":"h","password_file":"` + missing + `"}]`}, "BACKUP_TARGETS"},
		{"target twice", []string{`BACKUP_TARGETS=[{"name":"a"},{"name":"a"}]`}, "BACKUP_TARGETS"},
		{"target kind", []string{`BACKUP_TARGETS=[{"name":"a","kind":"disk"}]`}, "BACKUP_TARGETS"},
		{"bucket of the backups", []string{"MINIO_ENDPOINT=http://localhost:9000/", "MINIO_ROOT_USER=u", "MINIO_ROOT_PASSWORD=p",
			"SOURCE_MINIO_ENDPOINT=HTTP://127.0.0.1:9000", `BACKUP_TARGETS=[{"name":"a","kind":"bucket","bucket":"backups"}]`}, "BACKUP_TARGETS"},
		{"bucket not allowed", []string{"BUCKET_ALLOWLIST=files-*", `BACKUP_TARGETS=[{"name":"a","kind":"bucket","bucket":"photos"}]`}, "BACKUP_TARGETS"},
		{"allowlist star alone", []string{"BUCKET_ALLOWLIST=*"}, "BUCKET_ALLOWLIST"},
		{"allowlist bad name", []string{"BUCKET_ALLOWLIST=Files"}, "BUCKET_ALLOWLIST"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := LoadFrom("", tt.env)
			if err == nil {
				t.Fatalf("LoadFrom(%v) succeeded, want an error naming %s", tt.env, tt.setting)
			}
			if !strings.Contains(err.Error(), tt.setting) || !slices.Contains(configs.Settings(err), tt.setting) {
				t.Fatalf("error %q does not name %s (settings named: %v)", err, tt.setting, configs.Settings(err))
			}
		})
	}
}

// TestEveryErrorAtOnce: syntax errors (configs) and the rest (wiring) come
// back together, and every bad target is reported, not only the first.
func TestEveryErrorAtOnce(t *testing.T) {
	t.Parallel()
	_, err := LoadFrom("", []string{"LOG_LEVEL=loud", "POSTGRES_DB=a;drop", "COMPRESSION=brotli",
		`BACKUP_TARGETS=[{"name":"Bad"},{"name":"ok"},{"name":"worse","format":"zip"}]`})
	got := configs.Settings(err)
	for _, want := range []string{"LOG_LEVEL", "POSTGRES_DB", "COMPRESSION", "BACKUP_TARGETS"} {
		if !slices.Contains(got, want) {
			t.Errorf("settings named %v, want %s among them (err %q)", got, want, err)
		}
	}
	for _, target := range []string{"target Bad:", "target worse:"} {
		if !strings.Contains(err.Error(), target) {
			t.Errorf("error %q does not report %s", err, target)
		}
	}
}

// TestTargetsBuiltOnce: the targets, their servers' passwords and the
// secrets are read while loading; the Setup holds them.
func TestTargetsBuiltOnce(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	key := filepath.Join(dir, "key")
	ids := filepath.Join(dir, "ids")
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	for file, content := range map[string]string{pw: "s3cret\n", key: strings.Repeat("k", 40) + "\n", ids: id.String() + "\n"} {
		if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s := mustLoad(t, "BACKUP_SIGNING_KEY_FILE="+key, "ENCRYPTION_RECIPIENTS="+id.Recipient().String(),
		"ENCRYPTION_IDENTITY_FILE="+ids,
		`BACKUP_TARGETS=[{"name":"a","schedule":"@every 1h","keep_last":3},`+
			`{"name":"b","host":"db2","password_file":"`+pw+`","retention":{"keep_daily":2}},`+
			`{"name":"files","kind":"bucket","bucket":"src"}]`)
	// The files may go: nothing reads them after loading.
	for _, f := range []string{pw, key, ids} {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	a, _ := s.Targets.Get("a")
	b, _ := s.Targets.Get("b")
	files, _ := s.Targets.Get("files")
	if a.Schedule == nil || a.Retention.KeepLast != 3 || a.Server != nil {
		t.Errorf("target a = %+v", a)
	}
	if b.Server == nil || b.Server.Password != "s3cret" || b.Server.Host != "db2" || b.Retention.KeepDaily != 2 {
		t.Errorf("target b = %+v, server %+v", b, b.Server)
	}
	if files.Source != policy.SourceBucket || files.Bucket != "src" {
		t.Errorf("target files = %+v", files)
	}
	if s.Signer == nil || s.Signer.Fingerprint() == "" || s.Encryption == nil {
		t.Errorf("signer %v, encryption %v: want both", s.Signer, s.Encryption)
	}
}

func TestExampleFileLoads(t *testing.T) {
	t.Parallel()
	if _, err := LoadFrom(filepath.Join(repoRoot, "configs", "config.example.yaml"), nil); err != nil {
		t.Fatalf("config.example.yaml does not load: %v", err)
	}
}

func TestConfigFileErrorsNameIt(t *testing.T) {
	t.Parallel()
	_, err := LoadFrom(filepath.Join(t.TempDir(), "missing.yaml"), nil)
	if !slices.Contains(configs.Settings(err), "CONFIG_FILE") {
		t.Fatalf("missing CONFIG_FILE: err = %v, want it to name CONFIG_FILE", err)
	}
}

// TestSignerRefusesUnsignedWithAKey: the signer every program builds
// refuses allow_unsigned when a key is set, unless the setting says not to.
func TestSignerRefusesUnsignedWithAKey(t *testing.T) {
	t.Parallel()
	key := "BACKUP_SIGNING_KEY=" + strings.Repeat("k", 32)
	for _, tt := range []struct {
		env  []string
		want bool
	}{{nil, false}, {[]string{key}, true}, {[]string{key, "REFUSE_UNSIGNED_RESTORES=false"}, false}} {
		s, err := LoadFrom("", tt.env)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.Signer.RefusesUnsigned(); got != tt.want {
			t.Errorf("%v: refuses unsigned = %v, want %v", tt.env, got, tt.want)
		}
	}
}

// TestOnlyWorkersReadTaskSecrets: the API and the scheduler start with an
// identity file and a target password file they could not read (missing,
// or a directory), which shows they never open them; a worker stops,
// naming both settings.
func TestOnlyWorkersReadTaskSecrets(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, bad := range []string{filepath.Join(dir, "missing"), dir} {
		env := []string{"ENCRYPTION_IDENTITY_FILE=" + bad,
			`BACKUP_TARGETS=[{"name":"a","host":"h","password_file":"` + bad + `"}]`}
		for _, p := range []Program{API, Scheduler} {
			s, err := LoadAs(p, "", env)
			if err != nil {
				t.Fatalf("program %d with unreadable %s: %v, want it to start without reading it", p, bad, err)
			}
			if tg, _ := s.Targets.Get("a"); tg.Server == nil || tg.Server.Password != "" {
				t.Fatalf("program %d: target server %+v, want one without a password", p, tg.Server)
			}
		}
		_, err := LoadAs(Worker, "", env)
		if got := configs.Settings(err); !slices.Contains(got, "ENCRYPTION_IDENTITY_FILE") || !slices.Contains(got, "BACKUP_TARGETS") ||
			!strings.Contains(err.Error(), "password_file") {
			t.Fatalf("worker with unreadable %s: err = %v, want it to name ENCRYPTION_IDENTITY_FILE and the target's password_file", bad, err)
		}
	}
}
