// Package wire turns the configuration into the library's objects. It is
// the only package besides configs that knows the settings: jobs, engine,
// store and handlers take plain option structs, and errors from them name
// what is wrong while wire adds which setting it came from.
package wire

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/sirupsen/logrus"

	"github.com/autograph/pgbackup/configs"
	"github.com/autograph/pgbackup/jobs/alert"
	"github.com/autograph/pgbackup/jobs/coord"
	"github.com/autograph/pgbackup/jobs/engine"
	"github.com/autograph/pgbackup/jobs/pgtool"
	"github.com/autograph/pgbackup/jobs/policy"
	"github.com/autograph/pgbackup/jobs/tasks"
	"github.com/autograph/pgbackup/jobs/worker"
	"github.com/autograph/pgbackup/store"
)

// backend is one row of the store table: a store's name, the setting that
// turns it on (named in errors), and how to open it.
type backend struct {
	name    string
	setting string
	enabled func(configs.Config) bool
	open    func(context.Context, configs.Config) (store.Store, error)
}

// backends lists every store the programs can use, in preference order for
// reads. Adding a backend is one file in store/ and one row here.
var backends = []backend{
	{store.LocalName, "BACKUP_DIR", func(configs.Config) bool { return true }, openLocal},
	{store.MinIOName, "MINIO_ENDPOINT", configs.Config.MinIOEnabled, openMinIO},
}

func openLocal(_ context.Context, cfg configs.Config) (store.Store, error) {
	return store.NewLocal(cfg.BackupDir)
}

func openMinIO(ctx context.Context, cfg configs.Config) (store.Store, error) {
	tlsCfg, err := MinIOTLS(cfg)
	if err != nil {
		return nil, err
	}
	return store.NewMinIO(ctx, store.MinIOConfig{
		Endpoint: cfg.MinIOEndpoint, AccessKey: cfg.MinIORootUser, SecretKey: cfg.MinIORootPassword,
		Bucket: cfg.MinIOBucket, Region: cfg.MinIORegion,
		PartSize: uint64(cfg.MinIOPartSizeMB) << 20, UploadThreads: uint(cfg.MinIOUploadThreads),
		TLS: tlsCfg,
	})
}

// MinIOTLS is the TLS configuration for https MinIO endpoints: the
// system's CAs plus MINIO_CA_FILE, or no check at all with
// MINIO_INSECURE_SKIP_VERIFY. nil when neither is set.
func MinIOTLS(cfg configs.Config) (*tls.Config, error) {
	if cfg.MinIOCAFile == "" && !cfg.MinIOInsecureSkipVerify {
		return nil, nil
	}
	c, err := TLSConfig(cfg.MinIOCAFile, "", "")
	if err != nil {
		return nil, fmt.Errorf("MINIO_CA_FILE: %w", err)
	}
	c.InsecureSkipVerify = cfg.MinIOInsecureSkipVerify
	return c, nil
}

// StoreNames names the configured stores without opening them.
func StoreNames(cfg configs.Config) []string { return storeNames(cfg, backends) }

func storeNames(cfg configs.Config, table []backend) []string {
	var out []string
	for _, b := range table {
		if b.enabled(cfg) {
			out = append(out, b.name)
		}
	}
	return out
}

// Stores opens every configured store.
func Stores(ctx context.Context, cfg configs.Config) ([]store.Store, error) {
	return openStores(ctx, cfg, backends)
}

func openStores(ctx context.Context, cfg configs.Config, table []backend) ([]store.Store, error) {
	var out []store.Store
	for _, b := range table {
		if !b.enabled(cfg) {
			continue
		}
		s, err := b.open(ctx, cfg)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", b.setting, err)
		}
		out = append(out, s)
	}
	return out, nil
}

// Conn is the connection to the configured server and database.
func Conn(cfg configs.Config) pgtool.Conn {
	return pgtool.Conn{
		Host: cfg.PostgresHost, Port: cfg.PostgresPort, User: cfg.PostgresUser,
		Password: cfg.PostgresPassword, SSLMode: cfg.PostgresSSLMode, SSLRootCert: cfg.PostgresSSLRootCert,
		Database: cfg.PostgresDB,
	}
}

// Engine builds the engine every program uses over the configured stores
// (MinIO's bucket is created if missing).
func Engine(ctx context.Context, cfg configs.Config, log *logrus.Entry) (*engine.Engine, error) {
	if cfg.MinIOInsecureSkipVerify {
		log.Warn("MINIO_INSECURE_SKIP_VERIFY=true: MinIO's certificate is not checked; anyone on the path can read and change backups")
	}
	stores, err := Stores(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return engineOver(cfg, stores, log)
}

func engineOver(cfg configs.Config, stores []store.Store, log *logrus.Entry) (*engine.Engine, error) {
	signer, err := Signer(cfg)
	if err != nil {
		return nil, err
	}
	codec, err := cfg.Codec()
	if err != nil {
		return nil, fmt.Errorf("COMPRESSION: %w", err)
	}
	enc, err := cfg.Encryption()
	if err != nil {
		return nil, err
	}
	return engine.New(engine.Options{
		Conn:       Conn(cfg),
		Stores:     stores,
		Finder:     &pgtool.Finder{Forced: cfg.PGBinDir, ForcedSetting: "PG_BIN_DIR"},
		WorkDir:    cfg.WorkDir,
		Jobs:       cfg.DumpJobs,
		Compress:   cfg.DumpCompress,
		Codec:      codec,
		Encryption: enc,
		RowCounts:  cfg.BackupRowCounts,
		Signer:     signer,
		Log:        log,
	})
}

// Signer is the manifest signer from BACKUP_SIGNING_KEY(_FILE) and
// BACKUP_SIGNING_OLD_KEYS(_FILE).
func Signer(cfg configs.Config) (*engine.Signer, error) {
	current, old, err := cfg.SigningKeys()
	if err != nil {
		return nil, err
	}
	return engine.NewSigner(current, old...), nil
}

// SigningKeyCheck compares this program's signing key with the one the
// deployment's other programs use (through a fingerprint in Redis). The
// first attempt runs before the program starts serving, so a mismatch
// stops it at once; if Redis cannot be reached yet, the check goes on in
// the background and its error, if any, arrives on the channel (which
// gets nil once the key is confirmed).
func SigningKeyCheck(ctx context.Context, cfg configs.Config, locks *coord.Locks, log *logrus.Entry) (<-chan error, error) {
	s, err := Signer(cfg)
	if err != nil {
		return nil, err
	}
	check := func() (done bool, err error) {
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		err = locks.CheckSigningKey(cctx, s.Fingerprint(), s.OldFingerprints())
		if errors.Is(err, coord.ErrSigningKeyMismatch) {
			return true, fmt.Errorf("BACKUP_SIGNING_KEY: %w", err)
		}
		return err == nil, nil
	}
	out := make(chan error, 1)
	if done, err := check(); done {
		out <- nil
		return out, err
	}
	log.Warn("redis unreachable: the signing key will be compared with the other programs' once it answers")
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if done, err := check(); done {
				out <- err
				return
			}
		}
	}()
	return out, nil
}

// TaskOptions are the per-task limits.
func TaskOptions(cfg configs.Config) tasks.Options {
	return tasks.Options{
		MaxRetry: cfg.TaskMaxRetry, Retention: cfg.TaskRetention,
		BackupTimeout: cfg.BackupTimeout, RestoreTimeout: cfg.RestoreTimeout, DeleteTimeout: cfg.DeleteTimeout,
	}
}

// RedisOpt is asynq's connection to the queue's Redis: one server, the
// master that sentinels name (followed through a failover), or a cluster.
func RedisOpt(cfg configs.Config) (asynq.RedisConnOpt, error) {
	return redisOpt(cfg, 0)
}

// redisOpt is RedisOpt with a read timeout (0: go-redis's 3 s).
func redisOpt(cfg configs.Config, readTimeout time.Duration) (asynq.RedisConnOpt, error) {
	tlsCfg, err := redisTLS(cfg)
	if err != nil {
		return nil, err
	}
	switch {
	case cfg.RedisSentinelAddrs != "":
		return asynq.RedisFailoverClientOpt{
			MasterName: cfg.RedisSentinelMaster, SentinelAddrs: cfg.RedisSentinels(),
			SentinelPassword: cfg.RedisSentinelPassword,
			Password:         cfg.RedisPassword, DB: cfg.RedisDB, TLSConfig: tlsCfg, ReadTimeout: readTimeout,
		}, nil
	case cfg.RedisClusterAddrs != "":
		return asynq.RedisClusterClientOpt{Addrs: cfg.RedisClusterNodes(), Password: cfg.RedisPassword,
			TLSConfig: tlsCfg, ReadTimeout: readTimeout}, nil
	}
	return asynq.RedisClientOpt{Addr: cfg.RedisAddr, Password: cfg.RedisPassword, DB: cfg.RedisDB,
		TLSConfig: tlsCfg, ReadTimeout: readTimeout}, nil
}

// Redis is a client of the same Redis for our own keys (reservations,
// cancel marks, state). It is made by the same option as asynq's, so the
// two can never point at different servers, and it follows a failover
// the same way.
func Redis(cfg configs.Config) (redis.UniversalClient, error) {
	return redisClient(cfg, 0)
}

// ReplicatedQueue wraps the API's queue so that an accepted task is on
// REDIS_WAIT_REPLICAS replicas; without them it is the queue itself. Its
// client reads for longer than WAIT may block, else go-redis would time
// out and retry the WAIT.
func ReplicatedQueue(cfg configs.Config, q tasks.Enqueuer, log *logrus.Entry) (tasks.Enqueuer, func() error, error) {
	if cfg.RedisWaitReplicas <= 0 {
		return q, func() error { return nil }, nil
	}
	rdb, err := redisClient(cfg, cfg.RedisWaitTimeout+2*time.Second)
	if err != nil {
		return nil, nil, err
	}
	return coord.ReplicatedQueue{Queue: q, Redis: rdb, Replicas: cfg.RedisWaitReplicas,
		Timeout: cfg.RedisWaitTimeout, Log: log}, rdb.Close, nil
}

func redisClient(cfg configs.Config, readTimeout time.Duration) (redis.UniversalClient, error) {
	opt, err := redisOpt(cfg, readTimeout)
	if err != nil {
		return nil, err
	}
	rdb, ok := opt.MakeRedisClient().(redis.UniversalClient)
	if !ok {
		return nil, errors.New("redis: asynq made a client of an unexpected type")
	}
	return rdb, nil
}

// redisTLS is the TLS configuration for Redis and its sentinels, nil
// without REDIS_TLS.
func redisTLS(cfg configs.Config) (*tls.Config, error) {
	if !cfg.RedisTLS {
		return nil, nil
	}
	c, err := TLSConfig(cfg.RedisTLSCAFile, cfg.RedisTLSCertFile, cfg.RedisTLSKeyFile)
	if err != nil {
		return nil, fmt.Errorf("REDIS_TLS: %w", err)
	}
	return c, nil
}

// TLSConfig is a client TLS configuration that trusts the system's CAs
// plus caFile (PEM, may be empty) and presents certFile/keyFile when
// given. The server's name is checked against its certificate.
func TLSConfig(caFile, certFile, keyFile string) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("CA file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s: no PEM certificate in it", caFile)
		}
		c.RootCAs = pool
	}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("client certificate: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// ServerOptions configures the worker's asynq server.
func ServerOptions(cfg configs.Config) (worker.ServerOptions, error) {
	weights, err := cfg.Queues()
	if err != nil {
		return worker.ServerOptions{}, fmt.Errorf("QUEUE_WEIGHTS: %w", err)
	}
	return worker.ServerOptions{
		Concurrency: cfg.WorkerConcurrency, QueueWeights: weights,
		ShutdownTimeout: cfg.WorkerShutdownTimeout, RetryDelay: cfg.TaskRetryDelay, PollInterval: cfg.WorkerPollInterval,
	}, nil
}

// Schedule is BACKUP_SCHEDULE when set, else BACKUP_INTERVAL_HOURS.
func Schedule(cfg configs.Config) (policy.Schedule, error) {
	if cfg.BackupSchedule != "" {
		s, err := policy.ParseSchedule(cfg.BackupSchedule)
		if err != nil {
			return policy.Schedule{}, fmt.Errorf("BACKUP_SCHEDULE: %w", err)
		}
		return s, nil
	}
	s, err := policy.IntervalSchedule(cfg.BackupIntervalHours)
	if err != nil {
		return policy.Schedule{}, fmt.Errorf("BACKUP_INTERVAL_HOURS: %w", err)
	}
	return s, nil
}

// Targets are the configured targets (or the default one).
func Targets(cfg configs.Config) (*policy.TargetSet, error) {
	list, err := cfg.Targets()
	if err != nil {
		return nil, fmt.Errorf("BACKUP_TARGETS: %w", err)
	}
	set, err := policy.NewTargetSet(list)
	if err != nil {
		return nil, fmt.Errorf("BACKUP_TARGETS: %w", err)
	}
	return set, nil
}

// Alerter sends events to ALERT_WEBHOOK_URLS through the queue.
func Alerter(cfg configs.Config, q tasks.Enqueuer, log *logrus.Entry) *alert.Alerter {
	return &alert.Alerter{
		URLs: cfg.WebhookURLs(), Secret: []byte(cfg.AlertWebhookSecret), OnSuccess: cfg.AlertOnSuccess,
		Queue: q, Options: TaskOptions(cfg), Log: log, Client: &http.Client{Timeout: 10 * time.Second},
	}
}

// buckets opens the buckets of the source S3 server for bucket tasks.
type buckets struct {
	endpoint, user, password string
	// protected is the backup store's own bucket when the source server is
	// the store's: backing it up into itself is refused.
	protected string
	tls       *tls.Config
}

// Buckets is the bucket access of workers (nil without any MinIO).
func Buckets(cfg configs.Config) worker.Buckets {
	endpoint, user, password := cfg.SourceMinIO()
	if endpoint == "" {
		return nil
	}
	// A bad MINIO_CA_FILE already stopped the start when the stores opened.
	tlsCfg, _ := MinIOTLS(cfg)
	b := &buckets{endpoint: endpoint, user: user, password: password, tls: tlsCfg}
	if endpoint == cfg.MinIOEndpoint {
		b.protected = cfg.MinIOBucket
	}
	return b
}

// ProtectedBucket is the bucket the API refuses as a bucket backup source.
func ProtectedBucket(cfg configs.Config) string {
	if endpoint, _, _ := cfg.SourceMinIO(); endpoint == cfg.MinIOEndpoint {
		return cfg.MinIOBucket
	}
	return ""
}

func (b *buckets) config(bucket string) store.MinIOConfig {
	return store.MinIOConfig{Endpoint: b.endpoint, AccessKey: b.user, SecretKey: b.password, Bucket: bucket, TLS: b.tls}
}

func (b *buckets) Source(ctx context.Context, bucket string) (*store.Bucket, error) {
	if bucket == b.protected {
		return nil, fmt.Errorf("%w: bucket %s holds the backups themselves", engine.ErrInvalid, bucket)
	}
	bk, err := store.OpenBucket(ctx, b.config(bucket))
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: bucket %s does not exist", engine.ErrNotFound, bucket)
	}
	return bk, err
}

func (b *buckets) Target(ctx context.Context, bucket string) (*store.Bucket, error) {
	if bucket == b.protected {
		return nil, fmt.Errorf("%w: bucket %s holds the backups themselves", engine.ErrInvalid, bucket)
	}
	return store.OpenOrCreateBucket(ctx, b.config(bucket))
}
