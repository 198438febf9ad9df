package configs

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestLoadPrecedence(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(file, []byte("postgres_host: db.internal\npostgres_port: 6543\nbackup_timeout: 2h\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := load(file, []string{"POSTGRES_PORT=7000", "BACKUP_ENABLED=false"})
	if err != nil {
		t.Fatalf("LoadFrom: %v", err)
	}
	if cfg.PostgresHost != "db.internal" {
		t.Errorf("PostgresHost = %q, want the file's db.internal", cfg.PostgresHost)
	}
	if cfg.PostgresPort != 7000 {
		t.Errorf("PostgresPort = %d, want the environment's 7000 over the file's 6543", cfg.PostgresPort)
	}
	if cfg.BackupTimeout != 2*time.Hour {
		t.Errorf("BackupTimeout = %s, want 2h from the file", cfg.BackupTimeout)
	}
	if cfg.BackupEnabled {
		t.Error("BackupEnabled = true, want false from the environment")
	}
	if cfg.PostgresDB != "autograph" || cfg.BackupDir != DefaultBackupDir || cfg.RedisAddr != "127.0.0.1:6379" {
		t.Errorf("defaults lost: %+v", cfg)
	}
}

func TestExampleFileLoads(t *testing.T) {
	t.Parallel()
	if _, err := load("config.example.yaml", nil); err != nil {
		t.Fatalf("config.example.yaml does not load: %v", err)
	}
}

func TestBadValuesNameTheSetting(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		env     []string
		setting string
	}{
		{"port text", []string{"POSTGRES_PORT=abc"}, "POSTGRES_PORT"},
		{"port range", []string{"POSTGRES_PORT=70000"}, "POSTGRES_PORT"},
		{"timeout text", []string{"BACKUP_TIMEOUT=forever"}, "BACKUP_TIMEOUT"},
		{"timeout short", []string{"BACKUP_TIMEOUT=5s"}, "BACKUP_TIMEOUT"},
		{"interval", []string{"BACKUP_INTERVAL_HOURS=0"}, "BACKUP_INTERVAL_HOURS"},
		{"enabled", []string{"BACKUP_ENABLED=maybe"}, "BACKUP_ENABLED"},
		{"minio url", []string{"MINIO_ENDPOINT=127.0.0.1:9000", "MINIO_ROOT_USER=u", "MINIO_ROOT_PASSWORD=p"}, "MINIO_ENDPOINT"},
		{"minio creds", []string{"MINIO_ENDPOINT=http://127.0.0.1:9000"}, "MINIO_ROOT_USER"},
		{"bucket", []string{"MINIO_ENDPOINT=http://h:9000", "MINIO_ROOT_USER=u", "MINIO_ROOT_PASSWORD=p", "MINIO_BUCKET=Bad_Bucket"}, "MINIO_BUCKET"},
		{"part size", []string{"MINIO_ENDPOINT=http://h:9000", "MINIO_ROOT_USER=u", "MINIO_ROOT_PASSWORD=p", "MINIO_PART_SIZE_MB=1"}, "MINIO_PART_SIZE_MB"},
		{"compress", []string{"PG_DUMP_COMPRESS=fast"}, "PG_DUMP_COMPRESS"},
		{"log level", []string{"LOG_LEVEL=loud"}, "LOG_LEVEL"},
		{"sslmode", []string{"POSTGRES_SSLMODE=yes"}, "POSTGRES_SSLMODE"},
		{"sentinel without master", []string{"REDIS_SENTINEL_ADDRS=127.0.0.1:26379"}, "REDIS_SENTINEL_MASTER"},
		{"sentinel address", []string{"REDIS_SENTINEL_ADDRS=localhost", "REDIS_SENTINEL_MASTER=m"}, "REDIS_SENTINEL_ADDRS"},
		{"sentinel and cluster", []string{"REDIS_SENTINEL_ADDRS=h:1", "REDIS_SENTINEL_MASTER=m", "REDIS_CLUSTER_ADDRS=h:2"}, "REDIS_SENTINEL_ADDRS"},
		{"cluster db", []string{"REDIS_CLUSTER_ADDRS=h:1,h:2", "REDIS_DB=3"}, "REDIS_DB"},
		{"cluster wait", []string{"REDIS_CLUSTER_ADDRS=h:1", "REDIS_WAIT_REPLICAS=1"}, "REDIS_WAIT_REPLICAS"},
		{"wait replicas", []string{"REDIS_WAIT_REPLICAS=-1"}, "REDIS_WAIT_REPLICAS"},
		{"redis tls files without tls", []string{"REDIS_TLS_CA_FILE=/ca.pem"}, "REDIS_TLS"},
		{"redis client cert without key", []string{"REDIS_TLS=true", "REDIS_TLS_CERT_FILE=/c.pem"}, "REDIS_TLS_CERT_FILE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := load("", tt.env)
			if err == nil {
				t.Fatalf("load(%v) succeeded, want an error naming %s", tt.env, tt.setting)
			}
			if !strings.Contains(err.Error(), tt.setting) {
				t.Fatalf("error %q does not name %s", err, tt.setting)
			}
			if !namesSetting(err, tt.setting) {
				t.Fatalf("error %q has no *SettingError for %s", err, tt.setting)
			}
		})
	}
}

func TestUnknownYAMLKeyRejected(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(file, []byte("postgres_hots: typo\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := load(file, nil); err == nil || !strings.Contains(err.Error(), "postgres_hots") {
		t.Fatalf("LoadFrom with a misspelt key: err = %v, want it to name postgres_hots", err)
	}
}

// load is what wiring does with configs: decode the file's contents and
// the environment, then check the syntax.
func load(path string, environ []string) (Config, error) {
	var data []byte
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return Config{}, err
		}
		data = b
	}
	cfg, err := Decode(path, data, environ)
	if err != nil {
		return cfg, err
	}
	return cfg, cfg.Validate()
}

// namesSetting reports whether err, possibly joined, holds a
// *SettingError for setting.
func namesSetting(err error, setting string) bool {
	return slices.Contains(Settings(err), setting)
}

func TestValidateReportsEverySettingAtOnce(t *testing.T) {
	t.Parallel()
	_, err := load("", []string{"POSTGRES_PORT=0", "LOG_LEVEL=loud", "PG_JOBS=0"})
	for _, setting := range []string{"POSTGRES_PORT", "LOG_LEVEL", "PG_JOBS"} {
		if !namesSetting(err, setting) {
			t.Errorf("error %q does not name %s", err, setting)
		}
	}
}

// TestRefuseUnsignedRestoresDefaultsOnWithAKey: unset, the setting follows
// the signing key; set, it wins, from the environment or the YAML file.
func TestRefuseUnsignedRestoresDefaultsOnWithAKey(t *testing.T) {
	t.Parallel()
	key := "BACKUP_SIGNING_KEY=0123456789abcdef0123456789abcdef"
	for _, tt := range []struct {
		name    string
		yaml    string
		environ []string
		want    bool
	}{
		{"no key", "", nil, false},
		{"key", "", []string{key}, true},
		{"key file", "", []string{"BACKUP_SIGNING_KEY_FILE=/run/secrets/k"}, true},
		{"key, turned off", "", []string{key, "REFUSE_UNSIGNED_RESTORES=false"}, false},
		{"key, turned off in YAML", "refuse_unsigned_restores: false\n", []string{key}, false},
		{"no key, turned on", "", []string{"REFUSE_UNSIGNED_RESTORES=true"}, true},
	} {
		var data []byte
		if tt.yaml != "" {
			data = []byte(tt.yaml)
		}
		cfg, err := Decode("test.yaml", data, tt.environ)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if got := cfg.RefusesUnsignedRestores(); got != tt.want {
			t.Errorf("%s: refuses unsigned restores = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestDurationSettingsTakeDays: every duration setting reads whole days
// ("2d") as well as Go durations, and a bad one still names its setting.
func TestDurationSettingsTakeDays(t *testing.T) {
	t.Parallel()
	cfg, err := load("", []string{"ADOPT_MIN_AGE=2d", "TASK_RETENTION=7d", "BACKUP_TIMEOUT=90m"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.AdoptMinAge != 48*time.Hour || cfg.TaskRetention != 7*24*time.Hour || cfg.BackupTimeout != 90*time.Minute {
		t.Errorf("ADOPT_MIN_AGE %s, TASK_RETENTION %s, BACKUP_TIMEOUT %s; want 48h, 168h, 1h30m", cfg.AdoptMinAge, cfg.TaskRetention, cfg.BackupTimeout)
	}
	if _, err := load("", []string{"ADOPT_MIN_AGE=2days"}); !namesSetting(err, "ADOPT_MIN_AGE") {
		t.Errorf("ADOPT_MIN_AGE=2days: err = %v, want one naming the setting", err)
	}
}
