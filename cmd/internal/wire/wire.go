// Package wire turns the configuration into the library's objects. It is
// the only package besides configs that knows the settings: jobs, engine,
// store and handlers take plain option structs, and errors from them name
// what is wrong while wire adds which setting it came from. configs only
// decodes and checks syntax; Load (load.go) reads the files settings name
// and builds the shared objects once, checking what syntax cannot.
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
	open    func(context.Context, *Setup) (store.Store, error)
}

// backends lists every store the programs can use, in preference order for
// reads. Adding a backend is one file in store/ and one row here.
var backends = []backend{
	{store.LocalName, "BACKUP_DIR", func(configs.Config) bool { return true }, openLocal},
	{store.MinIOName, "MINIO_ENDPOINT", configs.Config.MinIOEnabled, openMinIO},
}

func openLocal(_ context.Context, s *Setup) (store.Store, error) {
	l, err := store.NewLocal(s.Config.BackupDir)
	if err != nil {
		return nil, err
	}
	if err := checkStoreDir("local store", l.Root()); err != nil {
		return nil, err
	}
	return l, nil
}

func openMinIO(ctx context.Context, s *Setup) (store.Store, error) {
	cfg := s.Config
	return store.NewMinIO(ctx, store.MinIOConfig{
		Endpoint: cfg.MinIOEndpoint, AccessKey: cfg.MinIORootUser, SecretKey: cfg.MinIORootPassword,
		Bucket: cfg.MinIOBucket, Region: cfg.MinIORegion,
		PartSize: uint64(cfg.MinIOPartSizeMB) << 20, UploadThreads: uint(cfg.MinIOUploadThreads),
		TLS: s.MinIOTLS,
	})
}

// minioTLS is the TLS configuration for https MinIO endpoints: the
// system's CAs plus MINIO_CA_FILE, or no check at all with
// MINIO_INSECURE_SKIP_VERIFY. nil when neither is set.
func minioTLS(cfg configs.Config) (*tls.Config, error) {
	if cfg.MinIOCAFile == "" && !cfg.MinIOInsecureSkipVerify {
		return nil, nil
	}
	c, err := TLSConfig(cfg.MinIOCAFile, "", "")
	if err != nil {
		return nil, err
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
func Stores(ctx context.Context, setup *Setup) ([]store.Store, error) {
	return openStores(ctx, setup, backends)
}

func openStores(ctx context.Context, setup *Setup, table []backend) ([]store.Store, error) {
	var out []store.Store
	for _, b := range table {
		if !b.enabled(setup.Config) {
			continue
		}
		s, err := b.open(ctx, setup)
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
func Engine(ctx context.Context, setup *Setup, log *logrus.Entry) (*engine.Engine, error) {
	if setup.Config.MinIOInsecureSkipVerify {
		log.Warn("MINIO_INSECURE_SKIP_VERIFY=true: MinIO's certificate is not checked; anyone on the path can read and change backups")
	}
	if !setup.Signer.Enabled() {
		log.Warn("BACKUP_SIGNING_KEY is not set: manifests are neither signed nor checked, so anyone who can write the store can forge a backup that restores run; set it (32+ random characters) on every program, or an ed25519 pair (BACKUP_SIGNING_PRIVATE_KEY_FILE on workers, BACKUP_SIGNING_PUBLIC_KEYS_FILE elsewhere)")
	}
	warnOldBackupDir(setup.Config, configs.OldDefaultBackupDir, log)
	if err := checkWorkDir(setup.Config.WorkDir); err != nil {
		return nil, err
	}
	stores, err := Stores(ctx, setup)
	if err != nil {
		return nil, err
	}
	return engineOver(setup, stores, log)
}

func engineOver(setup *Setup, stores []store.Store, log *logrus.Entry) (*engine.Engine, error) {
	cfg := setup.Config
	return engine.New(engine.Options{
		Conn:       Conn(cfg),
		Stores:     stores,
		Finder:     &pgtool.Finder{Forced: cfg.PGBinDir, ForcedSetting: "PG_BIN_DIR"},
		WorkDir:    cfg.WorkDir,
		Jobs:       cfg.DumpJobs,
		Compress:   cfg.DumpCompress,
		Codec:      setup.Codec,
		Encryption: setup.Encryption,
		RowCounts:  cfg.BackupRowCounts,
		Signer:     setup.Signer,
		Log:        log,

		AdoptMinAge: cfg.AdoptMinAge,
	})
}

// SigningKeyCheck compares this program's signing key with the one the
// deployment's other programs use (through a fingerprint in Redis). The
// first attempt runs before the program starts serving, so a mismatch
// stops it at once; if Redis cannot be reached yet, the check goes on in
// the background and its error, if any, arrives on the channel (which
// gets nil once the key is confirmed).
func SigningKeyCheck(ctx context.Context, setup *Setup, locks *coord.Locks, log *logrus.Entry) (<-chan error, error) {
	s := setup.Signer
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
func RedisOpt(setup *Setup) asynq.RedisConnOpt {
	return redisOpt(setup, 0)
}

// redisOpt is RedisOpt with a read timeout (0: go-redis's 3 s).
func redisOpt(setup *Setup, readTimeout time.Duration) asynq.RedisConnOpt {
	cfg, tlsCfg := setup.Config, setup.RedisTLS
	switch {
	case cfg.RedisSentinelAddrs != "":
		return asynq.RedisFailoverClientOpt{
			MasterName: cfg.RedisSentinelMaster, SentinelAddrs: cfg.RedisSentinels(),
			SentinelPassword: cfg.RedisSentinelPassword,
			Password:         cfg.RedisPassword, DB: cfg.RedisDB, TLSConfig: tlsCfg, ReadTimeout: readTimeout,
		}
	case cfg.RedisClusterAddrs != "":
		return asynq.RedisClusterClientOpt{Addrs: cfg.RedisClusterNodes(), Password: cfg.RedisPassword,
			TLSConfig: tlsCfg, ReadTimeout: readTimeout}
	}
	return asynq.RedisClientOpt{Addr: cfg.RedisAddr, Password: cfg.RedisPassword, DB: cfg.RedisDB,
		TLSConfig: tlsCfg, ReadTimeout: readTimeout}
}

// Redis is a client of the same Redis for our own keys (reservations,
// cancel marks, state). It is made by the same option as asynq's, so the
// two can never point at different servers, and it follows a failover
// the same way.
func Redis(setup *Setup) (redis.UniversalClient, error) {
	return redisClient(setup, 0)
}

// ReplicatedQueue wraps the API's queue so that an accepted task is on
// REDIS_WAIT_REPLICAS replicas; without them it is the queue itself. Its
// client reads for longer than WAIT may block, else go-redis would time
// out and retry the WAIT.
func ReplicatedQueue(setup *Setup, q tasks.Enqueuer, log *logrus.Entry) (tasks.Enqueuer, func() error, error) {
	cfg := setup.Config
	if cfg.RedisWaitReplicas <= 0 {
		return q, func() error { return nil }, nil
	}
	rdb, err := redisClient(setup, cfg.RedisWaitTimeout+2*time.Second)
	if err != nil {
		return nil, nil, err
	}
	return coord.ReplicatedQueue{Queue: q, Redis: rdb, Replicas: cfg.RedisWaitReplicas,
		Timeout: cfg.RedisWaitTimeout, Log: log}, rdb.Close, nil
}

func redisClient(setup *Setup, readTimeout time.Duration) (redis.UniversalClient, error) {
	rdb, ok := redisOpt(setup, readTimeout).MakeRedisClient().(redis.UniversalClient)
	if !ok {
		return nil, errors.New("redis: asynq made a client of an unexpected type")
	}
	return rdb, nil
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
func ServerOptions(setup *Setup) worker.ServerOptions {
	cfg := setup.Config
	return worker.ServerOptions{
		Concurrency: cfg.WorkerConcurrency, QueueWeights: setup.Queues,
		ShutdownTimeout: cfg.WorkerShutdownTimeout, RetryDelay: cfg.TaskRetryDelay, PollInterval: cfg.WorkerPollInterval,
	}
}

// Alerter sends events to ALERT_WEBHOOK_URLS through the queue.
func Alerter(cfg configs.Config, q tasks.Enqueuer, log *logrus.Entry) *alert.Alerter {
	return &alert.Alerter{
		URLs: cfg.WebhookURLs(), Secret: []byte(cfg.AlertWebhookSecret), OnSuccess: cfg.AlertOnSuccess,
		Queue: q, Options: TaskOptions(cfg), Log: log, Client: &http.Client{Timeout: 10 * time.Second},
	}
}
