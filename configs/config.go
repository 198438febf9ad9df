package configs

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"
	"github.com/sirupsen/logrus"
	"gopkg.in/yaml.v3"
)

// Config is the whole configuration. YAML keys are the lower-case
// environment names.
type Config struct {
	PostgresHost     string `env:"POSTGRES_HOST" yaml:"postgres_host"`
	PostgresPort     int    `env:"POSTGRES_PORT" yaml:"postgres_port"`
	PostgresDB       string `env:"POSTGRES_DB" yaml:"postgres_db"`
	PostgresUser     string `env:"POSTGRES_USER" yaml:"postgres_user"`
	PostgresPassword string `env:"POSTGRES_PASSWORD" yaml:"postgres_password"`
	PostgresSSLMode  string `env:"POSTGRES_SSLMODE" yaml:"postgres_sslmode"`
	// PostgresSSLRootCert is the CA that signed the server's certificate,
	// for sslmode verify-ca and verify-full.
	PostgresSSLRootCert string `env:"POSTGRES_SSLROOTCERT" yaml:"postgres_sslrootcert"`
	// PGBinDir forces the directory holding pg_dump, pg_restore and psql.
	// Empty means: find the client matching the server's major version.
	PGBinDir string `env:"PG_BIN_DIR" yaml:"pg_bin_dir"`

	BackupDir           string        `env:"BACKUP_DIR" yaml:"backup_dir"`
	BackupEnabled       bool          `env:"BACKUP_ENABLED" yaml:"backup_enabled"`
	BackupIntervalHours int           `env:"BACKUP_INTERVAL_HOURS" yaml:"backup_interval_hours"`
	BackupSchedule      string        `env:"BACKUP_SCHEDULE" yaml:"backup_schedule"`
	BackupTimeout       time.Duration `env:"BACKUP_TIMEOUT" yaml:"backup_timeout"`
	// BackupTargets are the databases backed up on their own schedules; in
	// the environment BACKUP_TARGETS holds them as a JSON list. Empty means
	// one target, "default", built from the settings above.
	BackupTargets     []TargetConfig `env:"-" yaml:"backup_targets"`
	BackupTargetsJSON string         `env:"BACKUP_TARGETS" yaml:"-"`
	RestoreTimeout    time.Duration  `env:"RESTORE_TIMEOUT" yaml:"restore_timeout"`
	// DumpCompress is passed to pg_dump -Z for the custom and directory
	// formats ("0".."9", or "zstd:3" with pg_dump 16+). Empty keeps
	// pg_dump's default.
	DumpCompress string `env:"PG_DUMP_COMPRESS" yaml:"pg_dump_compress"`
	// Compression is the codec the worker applies in the stream: zstd
	// (the default), zstd:<level>, gzip, gzip:<level>, none, or pg_dump
	// (pg_dump's own -Z from PG_DUMP_COMPRESS). Left empty, it is pg_dump
	// when PG_DUMP_COMPRESS is set (the old behaviour), zstd otherwise.
	Compression string `env:"COMPRESSION" yaml:"compression"`
	// DumpJobs is pg_dump -j and pg_restore -j for the directory format.
	DumpJobs int `env:"PG_JOBS" yaml:"pg_jobs"`
	// WorkDir holds temporary files: directory-format dumps and archives
	// downloaded for restore.
	WorkDir string `env:"WORK_DIR" yaml:"work_dir"`
	// BackupRowCounts records each table's row count in the manifest,
	// taken in the dump's snapshot; verify and replace check against them.
	BackupRowCounts bool `env:"BACKUP_ROW_COUNTS" yaml:"backup_row_counts"`
	// AdoptedRetention lets retention prune backups adopted from the old
	// manager; off, they are never pruned. AdoptMinAge is how long one of
	// the old manager's archives must be left unchanged before adoption
	// takes it.
	AdoptedRetention bool          `env:"ADOPTED_RETENTION" yaml:"adopted_retention"`
	AdoptMinAge      time.Duration `env:"ADOPT_MIN_AGE" yaml:"adopt_min_age"`
	// EncryptionRecipients are age public keys (comma-separated, or one
	// per line in the file): every new archive is encrypted to them.
	// EncryptionIdentityFile holds the age identities that restores and
	// verifies decrypt with (workers only; the API never needs it).
	EncryptionRecipients     string `env:"ENCRYPTION_RECIPIENTS" yaml:"encryption_recipients"`
	EncryptionRecipientsFile string `env:"ENCRYPTION_RECIPIENTS_FILE" yaml:"encryption_recipients_file"`
	EncryptionIdentityFile   string `env:"ENCRYPTION_IDENTITY_FILE" yaml:"encryption_identity_file"`
	// The manifest signing key (HMAC-SHA256), directly or in a file, and
	// old keys (comma-separated, or one per line in the file) accepted for
	// verification only.
	BackupSigningKey         string `env:"BACKUP_SIGNING_KEY" yaml:"backup_signing_key"`
	BackupSigningKeyFile     string `env:"BACKUP_SIGNING_KEY_FILE" yaml:"backup_signing_key_file"`
	BackupSigningOldKeys     string `env:"BACKUP_SIGNING_OLD_KEYS" yaml:"backup_signing_old_keys"`
	BackupSigningOldKeysFile string `env:"BACKUP_SIGNING_OLD_KEYS_FILE" yaml:"backup_signing_old_keys_file"`
	// An ed25519 key pair instead (or besides, while moving over): the
	// private key (PEM, PKCS #8, as openssl genpkey -algorithm ed25519
	// writes it) for the programs that write manifests, and the public keys
	// (PEM, the current one first, then old ones) for those that only
	// check them.
	BackupSigningPrivateKeyFile string `env:"BACKUP_SIGNING_PRIVATE_KEY_FILE" yaml:"backup_signing_private_key_file"`
	BackupSigningPublicKeysFile string `env:"BACKUP_SIGNING_PUBLIC_KEYS_FILE" yaml:"backup_signing_public_keys_file"`
	// RefuseUnsignedRestores refuses allow_unsigned on restore and verify,
	// in the API and in the workers. Unset, it is on whenever a signing key
	// is set (see RefusesUnsignedRestores).
	RefuseUnsignedRestores *bool `env:"REFUSE_UNSIGNED_RESTORES" yaml:"refuse_unsigned_restores"`

	MinIOEndpoint      string `env:"MINIO_ENDPOINT" yaml:"minio_endpoint"`
	MinIORootUser      string `env:"MINIO_ROOT_USER" yaml:"minio_root_user"`
	MinIORootPassword  string `env:"MINIO_ROOT_PASSWORD" yaml:"minio_root_password"`
	MinIOBucket        string `env:"MINIO_BUCKET" yaml:"minio_bucket"`
	MinIORegion        string `env:"MINIO_REGION" yaml:"minio_region"`
	MinIOPartSizeMB    int    `env:"MINIO_PART_SIZE_MB" yaml:"minio_part_size_mb"`
	MinIOUploadThreads int    `env:"MINIO_UPLOAD_THREADS" yaml:"minio_upload_threads"`
	// MinIOCAFile is a private CA for an https MINIO_ENDPOINT (and
	// SOURCE_MINIO_ENDPOINT); MinIOInsecureSkipVerify turns certificate
	// checks off, for experiments only.
	MinIOCAFile             string `env:"MINIO_CA_FILE" yaml:"minio_ca_file"`
	MinIOInsecureSkipVerify bool   `env:"MINIO_INSECURE_SKIP_VERIFY" yaml:"minio_insecure_skip_verify"`
	// SourceMinIO* is the S3 server whose buckets bucket backups read and
	// restore into; empty means the MinIO above.
	SourceMinIOEndpoint     string `env:"SOURCE_MINIO_ENDPOINT" yaml:"source_minio_endpoint"`
	SourceMinIORootUser     string `env:"SOURCE_MINIO_ROOT_USER" yaml:"source_minio_root_user"`
	SourceMinIORootPassword string `env:"SOURCE_MINIO_ROOT_PASSWORD" yaml:"source_minio_root_password"`
	// BucketAllowlist names the buckets (comma-separated, "prefix*"
	// allowed) that bucket backups may read and bucket restores may
	// write; empty allows every bucket but the backup store's own.
	BucketAllowlist string `env:"BUCKET_ALLOWLIST" yaml:"bucket_allowlist"`

	RedisAddr     string `env:"REDIS_ADDR" yaml:"redis_addr"`
	RedisPassword string `env:"REDIS_PASSWORD" yaml:"redis_password"`
	RedisDB       int    `env:"REDIS_DB" yaml:"redis_db"`
	// RedisSentinelAddrs (comma-separated host:port) replaces RedisAddr:
	// every program asks the sentinels for the master of
	// RedisSentinelMaster and follows it through a failover.
	RedisSentinelAddrs    string `env:"REDIS_SENTINEL_ADDRS" yaml:"redis_sentinel_addrs"`
	RedisSentinelMaster   string `env:"REDIS_SENTINEL_MASTER" yaml:"redis_sentinel_master"`
	RedisSentinelPassword string `env:"REDIS_SENTINEL_PASSWORD" yaml:"redis_sentinel_password"`
	// RedisClusterAddrs (comma-separated seed nodes) replaces RedisAddr
	// with a Redis Cluster.
	RedisClusterAddrs string `env:"REDIS_CLUSTER_ADDRS" yaml:"redis_cluster_addrs"`
	// RedisWaitReplicas makes the API wait, after queuing a task, until
	// that many replicas hold it (Redis WAIT), so that a 202 survives the
	// master's loss; 0 does not wait.
	RedisWaitReplicas int           `env:"REDIS_WAIT_REPLICAS" yaml:"redis_wait_replicas"`
	RedisWaitTimeout  time.Duration `env:"REDIS_WAIT_TIMEOUT" yaml:"redis_wait_timeout"`
	// TLS to Redis (and to the sentinels): a private CA and an optional
	// client certificate.
	RedisTLS         bool   `env:"REDIS_TLS" yaml:"redis_tls"`
	RedisTLSCAFile   string `env:"REDIS_TLS_CA_FILE" yaml:"redis_tls_ca_file"`
	RedisTLSCertFile string `env:"REDIS_TLS_CERT_FILE" yaml:"redis_tls_cert_file"`
	RedisTLSKeyFile  string `env:"REDIS_TLS_KEY_FILE" yaml:"redis_tls_key_file"`

	// Queue and workers.
	TaskMaxRetry   int           `env:"TASK_MAX_RETRY" yaml:"task_max_retry"`
	TaskRetention  time.Duration `env:"TASK_RETENTION" yaml:"task_retention"`
	TaskRetryDelay time.Duration `env:"TASK_RETRY_DELAY" yaml:"task_retry_delay"`
	// DeleteTimeout bounds delete and verify tasks.
	DeleteTimeout     time.Duration `env:"DELETE_TIMEOUT" yaml:"delete_timeout"`
	WorkerConcurrency int           `env:"WORKER_CONCURRENCY" yaml:"worker_concurrency"`
	// WorkerMemoryLimitMB is the worker's soft memory limit for the Go
	// runtime (debug.SetMemoryLimit): past it the garbage collector works
	// harder rather than let the heap grow. 0 leaves Go's default; an
	// explicit GOMEMLIMIT wins.
	WorkerMemoryLimitMB int `env:"WORKER_MEMORY_LIMIT_MB" yaml:"worker_memory_limit_mb"`
	// WorkerPollInterval is how often an idle worker checks for new tasks.
	WorkerPollInterval time.Duration `env:"WORKER_POLL_INTERVAL" yaml:"worker_poll_interval"`
	// WorkerShutdownTimeout is how long a stopping worker lets running
	// tasks finish before handing them back to the queue.
	WorkerShutdownTimeout time.Duration `env:"WORKER_SHUTDOWN_TIMEOUT" yaml:"worker_shutdown_timeout"`
	// WALPartialInterval is how often the archiver stores the open WAL
	// segment's new bytes as a chunk: the RPO of a target with pitr (and
	// without sync).
	WALPartialInterval time.Duration `env:"WAL_PARTIAL_INTERVAL" yaml:"wal_partial_interval"`
	// WALCheckInterval is how often the scheduler scans each pitr
	// archive for gaps and stalls.
	WALCheckInterval time.Duration `env:"WAL_CHECK_INTERVAL" yaml:"wal_check_interval"`
	// WALStallAfter is how long a pitr archive's end may stand still
	// while its server writes WAL before wal.stalled is raised.
	WALStallAfter time.Duration `env:"WAL_STALL_AFTER" yaml:"wal_stall_after"`
	// WALSlotLagAlert is the slot lag above which wal.slot_lag is
	// raised: "80%" of the server's max_slot_wal_keep_size, a size such
	// as "1GB", or "off" (see ParseSlotLagAlert).
	WALSlotLagAlert string `env:"WAL_SLOT_LAG_ALERT" yaml:"wal_slot_lag_alert"`
	// QueueWeights are "restore=6,backup=3,maintenance=1".
	QueueWeights string `env:"QUEUE_WEIGHTS" yaml:"queue_weights"`

	APIAddr string `env:"API_ADDR" yaml:"api_addr"`
	// Tokens are comma-separated. The *_FILE variants name a file holding
	// them (one per line or comma-separated), for secrets mounted as files.
	APIAdminTokens      string `env:"API_ADMIN_TOKENS" yaml:"api_admin_tokens"`
	APIViewerTokens     string `env:"API_VIEWER_TOKENS" yaml:"api_viewer_tokens"`
	APIAdminTokensFile  string `env:"API_ADMIN_TOKENS_FILE" yaml:"api_admin_tokens_file"`
	APIViewerTokensFile string `env:"API_VIEWER_TOKENS_FILE" yaml:"api_viewer_tokens_file"`
	APIAuthDisabled     bool   `env:"API_AUTH_DISABLED" yaml:"api_auth_disabled"`
	// APITrustedProxies are the proxies (IPs or CIDRs, comma-separated)
	// whose X-Forwarded-For names the client; empty trusts none.
	APITrustedProxies string `env:"API_TRUSTED_PROXIES" yaml:"api_trusted_proxies"`
	// APIAuthFailuresPerMinute limits failed authentications per client
	// address; past it the address gets 429 for the rest of the minute.
	APIAuthFailuresPerMinute int `env:"API_AUTH_FAILURES_PER_MINUTE" yaml:"api_auth_failures_per_minute"`
	// APIIdempotencyTTL is how long the first response to an
	// Idempotency-Key is kept and replayed; after it the key is free again.
	APIIdempotencyTTL time.Duration `env:"API_IDEMPOTENCY_TTL" yaml:"api_idempotency_ttl"`
	// APITLSCertFile and APITLSKeyFile, both set, make the API serve HTTPS.
	APITLSCertFile string `env:"API_TLS_CERT_FILE" yaml:"api_tls_cert_file"`
	APITLSKeyFile  string `env:"API_TLS_KEY_FILE" yaml:"api_tls_key_file"`

	// Alerts: webhooks (comma-separated) that receive events, the secret
	// that signs them, and whether successes are sent too.
	AlertWebhookURLs   string `env:"ALERT_WEBHOOK_URLS" yaml:"alert_webhook_urls"`
	AlertWebhookSecret string `env:"ALERT_WEBHOOK_SECRET" yaml:"alert_webhook_secret"`
	AlertOnSuccess     bool   `env:"ALERT_ON_SUCCESS" yaml:"alert_on_success"`
	// RPOCheckInterval is how often the scheduler compares each target's
	// newest good backup with its RPO.
	RPOCheckInterval time.Duration `env:"RPO_CHECK_INTERVAL" yaml:"rpo_check_interval"`
	// MetricsPublic serves /metrics without a token.
	MetricsPublic bool `env:"METRICS_PUBLIC" yaml:"metrics_public"`

	LogLevel string `env:"LOG_LEVEL" yaml:"log_level"`
}

// DefaultBackupDir is BACKUP_DIR's default: a directory of the service's
// own, never under /tmp, where any local user could plant or remove files.
const DefaultBackupDir = "/var/lib/pgbackup/backups"

// OldDefaultBackupDir was BACKUP_DIR's default before DefaultBackupDir;
// programs warn when it still holds backups they no longer see.
const OldDefaultBackupDir = "/tmp/backups"

// Defaults returns the configuration used when nothing else is set.
func Defaults() Config {
	return Config{
		PostgresHost:        "localhost",
		PostgresPort:        5432,
		PostgresDB:          "autograph",
		PostgresUser:        "autograph",
		PostgresSSLMode:     "prefer",
		BackupDir:           DefaultBackupDir,
		BackupEnabled:       true,
		BackupIntervalHours: 24,
		// Large databases take hours; asynq's own default (30 min) and the
		// old service's 5 minutes both killed healthy backups.
		BackupTimeout:      6 * time.Hour,
		RestoreTimeout:     6 * time.Hour,
		DumpJobs:           2,
		BackupRowCounts:    true,
		AdoptMinAge:        time.Minute,
		WorkDir:            os.TempDir(),
		MinIOBucket:        "backups",
		MinIOPartSizeMB:    16,
		MinIOUploadThreads: 2,
		RedisAddr:          "127.0.0.1:6379",
		RedisWaitTimeout:   2 * time.Second,
		// A few retries cover a MinIO restart or a failover; a dump that
		// fails five times needs a human.
		TaskMaxRetry:             5,
		TaskRetention:            24 * time.Hour,
		TaskRetryDelay:           30 * time.Second,
		DeleteTimeout:            30 * time.Minute,
		WorkerConcurrency:        2,
		WorkerMemoryLimitMB:      64,
		WorkerPollInterval:       200 * time.Millisecond,
		WorkerShutdownTimeout:    60 * time.Second,
		WALPartialInterval:       5 * time.Second,
		WALCheckInterval:         30 * time.Second,
		WALStallAfter:            5 * time.Minute,
		WALSlotLagAlert:          "80%",
		QueueWeights:             "restore=6,backup=3,maintenance=1",
		APIAddr:                  ":8080",
		APIAuthFailuresPerMinute: 20,
		APIIdempotencyTTL:        24 * time.Hour,
		RPOCheckInterval:         time.Minute,
		LogLevel:                 "info",
	}
}

// Decode builds the configuration from defaults, the YAML file's contents
// (data, read by the caller from path, which only names it in errors; nil
// without CONFIG_FILE) and the environment. It stops at the first value it
// cannot decode; Validate then checks the decoded values.
func Decode(path string, data []byte, environ []string) (Config, error) {
	cfg := Defaults()
	if data != nil {
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		// io.EOF means an empty file: no settings, not an error.
		if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
			return cfg, fmt.Errorf("config: CONFIG_FILE %s: %w", path, err)
		}
	}
	envMap := make(map[string]string, len(environ))
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			envMap[k] = v
		}
	}
	// Every duration setting takes whole days ("7d") as well as Go
	// durations, as pitr_window and rpo do.
	durations := map[reflect.Type]env.ParserFunc{reflect.TypeFor[time.Duration](): func(v string) (any, error) {
		return ParseDuration(v)
	}}
	if err := env.ParseWithOptions(&cfg, env.Options{Environment: envMap, FuncMap: durations}); err != nil {
		return cfg, envError(err)
	}
	if s := strings.TrimSpace(cfg.BackupTargetsJSON); s != "" {
		dec := json.NewDecoder(strings.NewReader(s))
		dec.DisallowUnknownFields()
		cfg.BackupTargets = nil
		if err := dec.Decode(&cfg.BackupTargets); err != nil {
			return cfg, Bad("BACKUP_TARGETS", "want a JSON list of targets: %w", err)
		}
	}
	return cfg, nil
}

var (
	bucketRe = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)
	// bucketPrefixRe is the beginning of a bucket name, in BUCKET_ALLOWLIST.
	bucketPrefixRe = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{0,62}$`)
	compressRe     = regexp.MustCompile(`^([0-9]|(gzip|lz4|zstd|none)(:[0-9]{1,2})?)$`)
)

// Validate rejects values that cannot work, each error a *SettingError.
// It checks syntax only: what needs the files the settings name, or the
// rules of the packages that use a value (database names, schedules,
// codecs, targets), is checked where the program wires itself
// (cmd/internal/wire), which reports both together.
func (c Config) Validate() error {
	var errs []error
	bad := func(name, format string, args ...any) {
		errs = append(errs, Bad(name, format, args...))
	}
	c.checkPostgres(bad)
	c.checkBackups(bad)
	c.checkMinIO(bad)
	c.checkBucketAllowlist(bad)
	c.checkRedis(bad)
	c.checkWorkers(bad)
	c.checkAPI(bad)
	return errors.Join(errs...)
}

// reporter records a bad setting.
type reporter func(setting, format string, args ...any)

// checkPostgres checks POSTGRES_*.
func (c Config) checkPostgres(bad reporter) {
	if c.PostgresHost == "" {
		bad("POSTGRES_HOST", "must not be empty")
	}
	if c.PostgresPort < 1 || c.PostgresPort > 65535 {
		bad("POSTGRES_PORT", "%d is not a TCP port", c.PostgresPort)
	}
	if c.PostgresUser == "" {
		bad("POSTGRES_USER", "must not be empty")
	}
	if !ValidSSLMode(c.PostgresSSLMode) {
		bad("POSTGRES_SSLMODE", "%q is not a libpq sslmode", c.PostgresSSLMode)
	}
}

// checkBackups checks the backups themselves.
func (c Config) checkBackups(bad reporter) {
	if c.BackupDir == "" {
		bad("BACKUP_DIR", "must not be empty")
	}
	if c.BackupEnabled && c.BackupSchedule == "" && c.BackupIntervalHours < 1 {
		bad("BACKUP_INTERVAL_HOURS", "%d must be at least 1 while BACKUP_ENABLED is true", c.BackupIntervalHours)
	}
	if c.BackupTimeout < time.Minute {
		bad("BACKUP_TIMEOUT", "%s is shorter than one minute", c.BackupTimeout)
	}
	if c.RestoreTimeout < time.Minute {
		bad("RESTORE_TIMEOUT", "%s is shorter than one minute", c.RestoreTimeout)
	}
	if c.DumpCompress != "" && !compressRe.MatchString(c.DumpCompress) {
		bad("PG_DUMP_COMPRESS", "%q is not a pg_dump -Z value such as 0..9 or zstd:3", c.DumpCompress)
	}
	if c.DumpJobs < 1 || c.DumpJobs > 64 {
		bad("PG_JOBS", "%d must be between 1 and 64", c.DumpJobs)
	}
	if c.AdoptMinAge < 0 {
		bad("ADOPT_MIN_AGE", "%s must not be negative", c.AdoptMinAge)
	}
}

// checkMinIO checks MINIO_*, which matter only with MINIO_ENDPOINT.
func (c Config) checkMinIO(bad reporter) {
	if c.MinIOEndpoint == "" {
		return
	}
	u, err := url.Parse(c.MinIOEndpoint)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		bad("MINIO_ENDPOINT", "%q must be a URL such as http://127.0.0.1:9000", c.MinIOEndpoint)
	}
	if c.MinIORootUser == "" || c.MinIORootPassword == "" {
		bad("MINIO_ROOT_USER", "MINIO_ROOT_USER and MINIO_ROOT_PASSWORD are required with MINIO_ENDPOINT")
	}
	if !bucketRe.MatchString(c.MinIOBucket) {
		bad("MINIO_BUCKET", "%q is not a valid bucket name", c.MinIOBucket)
	}
	if c.MinIOPartSizeMB < 5 || c.MinIOPartSizeMB > 5120 {
		bad("MINIO_PART_SIZE_MB", "%d must be between 5 and 5120", c.MinIOPartSizeMB)
	}
	if c.MinIOUploadThreads < 1 || c.MinIOUploadThreads > 32 {
		bad("MINIO_UPLOAD_THREADS", "%d must be between 1 and 32", c.MinIOUploadThreads)
	}
}

// checkBucketAllowlist checks BUCKET_ALLOWLIST: bucket names, or a
// bucket name's beginning followed by one "*".
func (c Config) checkBucketAllowlist(bad reporter) {
	for _, p := range c.BucketPatterns() {
		prefix, wild := strings.CutSuffix(p, "*")
		switch {
		case wild && (prefix == "" || !bucketPrefixRe.MatchString(prefix)):
			bad("BUCKET_ALLOWLIST", "%q: want a bucket name or the beginning of one followed by * (not * alone)", p)
		case !wild && !bucketRe.MatchString(p):
			bad("BUCKET_ALLOWLIST", "%q is not a valid bucket name (add * to allow a prefix)", p)
		}
	}
}

// BucketPatterns are BUCKET_ALLOWLIST's entries.
func (c Config) BucketPatterns() []string {
	var out []string
	for _, p := range strings.Split(c.BucketAllowlist, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// checkRedis checks REDIS_*.
func (c Config) checkRedis(bad reporter) {
	switch {
	case c.RedisSentinelAddrs != "" && c.RedisClusterAddrs != "":
		bad("REDIS_SENTINEL_ADDRS", "give REDIS_SENTINEL_ADDRS or REDIS_CLUSTER_ADDRS, not both")
	case c.RedisSentinelAddrs != "":
		if c.RedisSentinelMaster == "" {
			bad("REDIS_SENTINEL_MASTER", "the master's name is required with REDIS_SENTINEL_ADDRS")
		}
		for _, a := range c.RedisSentinels() {
			if _, _, err := net.SplitHostPort(a); err != nil {
				bad("REDIS_SENTINEL_ADDRS", "%q is not host:port", a)
			}
		}
	case c.RedisClusterAddrs != "":
		for _, a := range c.RedisClusterNodes() {
			if _, _, err := net.SplitHostPort(a); err != nil {
				bad("REDIS_CLUSTER_ADDRS", "%q is not host:port", a)
			}
		}
		if c.RedisDB != 0 {
			bad("REDIS_DB", "a Redis Cluster has only database 0")
		}
		if c.RedisWaitReplicas > 0 {
			bad("REDIS_WAIT_REPLICAS", "not supported with REDIS_CLUSTER_ADDRS (WAIT would reach an arbitrary node)")
		}
	case c.RedisAddr == "":
		bad("REDIS_ADDR", "must not be empty")
	}
	if c.RedisWaitReplicas < 0 || c.RedisWaitReplicas > 16 {
		bad("REDIS_WAIT_REPLICAS", "%d must be between 0 and 16", c.RedisWaitReplicas)
	}
	if c.RedisWaitReplicas > 0 && c.RedisWaitTimeout < 10*time.Millisecond {
		bad("REDIS_WAIT_TIMEOUT", "%s must be at least 10ms", c.RedisWaitTimeout)
	}
	if !c.RedisTLS && (c.RedisTLSCAFile != "" || c.RedisTLSCertFile != "" || c.RedisTLSKeyFile != "") {
		bad("REDIS_TLS", "REDIS_TLS_* files are set but REDIS_TLS is not true")
	}
	if (c.RedisTLSCertFile == "") != (c.RedisTLSKeyFile == "") {
		bad("REDIS_TLS_CERT_FILE", "REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE go together")
	}
}

// checkWorkers checks the queue and the workers.
func (c Config) checkWorkers(bad reporter) {
	if c.TaskMaxRetry < 0 || c.TaskMaxRetry > 100 {
		bad("TASK_MAX_RETRY", "%d must be between 0 and 100", c.TaskMaxRetry)
	}
	if c.TaskRetention < time.Minute {
		bad("TASK_RETENTION", "%s is too short to read a finished task's status", c.TaskRetention)
	}
	if c.TaskRetryDelay < 100*time.Millisecond {
		bad("TASK_RETRY_DELAY", "%s must be at least 100ms", c.TaskRetryDelay)
	}
	if c.DeleteTimeout < time.Second {
		bad("DELETE_TIMEOUT", "%s must be at least 1s", c.DeleteTimeout)
	}
	if c.WorkerConcurrency < 1 || c.WorkerConcurrency > 256 {
		bad("WORKER_CONCURRENCY", "%d must be between 1 and 256", c.WorkerConcurrency)
	}
	if c.WorkerPollInterval < 10*time.Millisecond || c.WorkerPollInterval > time.Minute {
		bad("WORKER_POLL_INTERVAL", "%s must be between 10ms and 1m", c.WorkerPollInterval)
	}
	if c.WorkerMemoryLimitMB < 0 {
		bad("WORKER_MEMORY_LIMIT_MB", "%d must not be negative", c.WorkerMemoryLimitMB)
	}
	if c.WALPartialInterval < 100*time.Millisecond || c.WALPartialInterval > time.Hour {
		bad("WAL_PARTIAL_INTERVAL", "%s must be between 100ms and 1h", c.WALPartialInterval)
	}
	if c.WALCheckInterval < 100*time.Millisecond || c.WALCheckInterval > time.Hour {
		bad("WAL_CHECK_INTERVAL", "%s must be between 100ms and 1h", c.WALCheckInterval)
	}
	if c.WALStallAfter < time.Second {
		bad("WAL_STALL_AFTER", "%s must be at least 1s", c.WALStallAfter)
	}
	if _, err := ParseSlotLagAlert(c.WALSlotLagAlert); err != nil {
		bad("WAL_SLOT_LAG_ALERT", "%w", err)
	}
	if c.WorkerShutdownTimeout < 0 {
		bad("WORKER_SHUTDOWN_TIMEOUT", "%s must not be negative", c.WorkerShutdownTimeout)
	}
	if _, err := c.Queues(); err != nil {
		bad("QUEUE_WEIGHTS", "%v", err)
	}
}

// checkAPI checks the API, alerts, signing and logging.
func (c Config) checkAPI(bad reporter) {
	if c.APIAddr == "" {
		bad("API_ADDR", "must not be empty")
	}
	if _, err := c.TrustedProxies(); err != nil {
		bad("API_TRUSTED_PROXIES", "%v", err)
	}
	if c.APIAuthFailuresPerMinute < 1 {
		bad("API_AUTH_FAILURES_PER_MINUTE", "%d must be at least 1", c.APIAuthFailuresPerMinute)
	}
	if c.APIIdempotencyTTL < time.Second {
		bad("API_IDEMPOTENCY_TTL", "%s must be at least 1s", c.APIIdempotencyTTL)
	}
	if (c.APITLSCertFile == "") != (c.APITLSKeyFile == "") {
		bad("API_TLS_CERT_FILE", "API_TLS_CERT_FILE and API_TLS_KEY_FILE go together")
	}
	if c.RPOCheckInterval < time.Second {
		bad("RPO_CHECK_INTERVAL", "%s must be at least 1s", c.RPOCheckInterval)
	}
	if c.BackupSigningKey != "" && c.BackupSigningKeyFile != "" {
		bad("BACKUP_SIGNING_KEY", "set BACKUP_SIGNING_KEY or BACKUP_SIGNING_KEY_FILE, not both")
	}
	if _, err := logrus.ParseLevel(c.LogLevel); err != nil {
		bad("LOG_LEVEL", "%q is not one of debug, info, warn, error", c.LogLevel)
	}
}

// RefusesUnsignedRestores is REFUSE_UNSIGNED_RESTORES, or, unset, whether a
// signing key is set: with a key, a forged manifest must not be restorable
// by a request that merely asks for it.
func (c Config) RefusesUnsignedRestores() bool {
	if c.RefuseUnsignedRestores != nil {
		return *c.RefuseUnsignedRestores
	}
	return c.BackupSigningKey != "" || c.BackupSigningKeyFile != "" ||
		c.BackupSigningPrivateKeyFile != "" || c.BackupSigningPublicKeysFile != ""
}

// MinIOEnabled reports whether an object store is configured.
func (c Config) MinIOEnabled() bool { return c.MinIOEndpoint != "" }

// String describes the configuration without secrets, for start-up logs.
func (c Config) String() string {
	return fmt.Sprintf("postgres=%s@%s:%d/%s backup_dir=%s minio=%s bucket=%s redis=%s",
		c.PostgresUser, c.PostgresHost, c.PostgresPort, c.PostgresDB, c.BackupDir,
		c.MinIOEndpoint, c.MinIOBucket, c.redisDescription())
}

func (c Config) redisDescription() string {
	switch {
	case c.RedisSentinelAddrs != "":
		return "sentinel:" + c.RedisSentinelMaster + "@" + c.RedisSentinelAddrs
	case c.RedisClusterAddrs != "":
		return "cluster:" + c.RedisClusterAddrs
	}
	return c.RedisAddr
}

// envError rewrites the env library's errors, which name Go struct fields,
// so that they name the environment variable the user actually set.
func envError(err error) error {
	var agg env.AggregateError
	if !errors.As(err, &agg) {
		return fmt.Errorf("config: %w", err)
	}
	t := reflect.TypeFor[Config]()
	var errs []error
	for _, e := range agg.Errors {
		var pe env.ParseError
		if errors.As(e, &pe) {
			if f, ok := t.FieldByName(pe.Name); ok {
				errs = append(errs, &SettingError{Setting: f.Tag.Get("env"), Err: pe.Err})
				continue
			}
		}
		errs = append(errs, fmt.Errorf("config: %w", e))
	}
	return errors.Join(errs...)
}

// Queues parses QueueWeights into asynq's queue-priority map. Which queues
// need a weight is the worker's to say, checked in wiring.
func (c Config) Queues() (map[string]int, error) {
	out := map[string]int{}
	for _, part := range strings.Split(c.QueueWeights, ",") {
		name, w, ok := strings.Cut(strings.TrimSpace(part), "=")
		n, err := strconv.Atoi(w)
		if !ok || name == "" || err != nil || n < 1 {
			return nil, fmt.Errorf("%q: want name=weight pairs with weights >= 1, e.g. restore=6,backup=3,maintenance=1", part)
		}
		out[name] = n
	}
	return out, nil
}

// TrustedProxies parses API_TRUSTED_PROXIES: IP addresses or CIDR ranges.
func (c Config) TrustedProxies() ([]*net.IPNet, error) {
	var out []*net.IPNet
	for _, part := range strings.Split(c.APITrustedProxies, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if !strings.Contains(part, "/") {
			ip := net.ParseIP(part)
			if ip == nil {
				return nil, fmt.Errorf("%q is not an IP address or CIDR range", part)
			}
			bits := 32
			if ip.To4() == nil {
				bits = 128
			}
			out = append(out, &net.IPNet{IP: ip, Mask: net.CIDRMask(bits, bits)})
			continue
		}
		_, n, err := net.ParseCIDR(part)
		if err != nil {
			return nil, fmt.Errorf("%q is not an IP address or CIDR range", part)
		}
		out = append(out, n)
	}
	return out, nil
}

// WebhookURLs splits ALERT_WEBHOOK_URLS.
func (c Config) WebhookURLs() []string {
	var out []string
	for _, u := range strings.Split(c.AlertWebhookURLs, ",") {
		if u = strings.TrimSpace(u); u != "" {
			out = append(out, u)
		}
	}
	return out
}

// SourceMinIO is where bucket backups read from: SOURCE_MINIO_* or, when
// unset, the backup store's MinIO.
func (c Config) SourceMinIO() (endpoint, user, password string) {
	if c.SourceMinIOEndpoint != "" {
		return c.SourceMinIOEndpoint, c.SourceMinIORootUser, c.SourceMinIORootPassword
	}
	return c.MinIOEndpoint, c.MinIORootUser, c.MinIORootPassword
}

// RedisSentinels lists REDIS_SENTINEL_ADDRS.
func (c Config) RedisSentinels() []string { return splitList(c.RedisSentinelAddrs) }

// RedisClusterNodes lists REDIS_CLUSTER_ADDRS.
func (c Config) RedisClusterNodes() []string { return splitList(c.RedisClusterAddrs) }

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
