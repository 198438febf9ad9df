package wire

import (
	"crypto/tls"
	"errors"
	"os"
	"strings"

	"github.com/autograph/pgbackup/configs"
	"github.com/autograph/pgbackup/jobs/alert"
	"github.com/autograph/pgbackup/jobs/engine"
	"github.com/autograph/pgbackup/jobs/pgtool"
	"github.com/autograph/pgbackup/jobs/policy"
	"github.com/autograph/pgbackup/jobs/tasks"
)

// Setup is what the configuration describes, checked and built once when a
// program starts: the settings, and the objects built from them that more
// than one part of a program uses. The files settings name (password files,
// keys, identities, CA certificates) are read here and nowhere else.
type Setup struct {
	Config configs.Config
	// Targets are BACKUP_TARGETS, or the default target.
	Targets    *policy.TargetSet
	Codec      engine.Codec
	Encryption *engine.Encryption
	Signer     *engine.Signer
	// WALArchives are the continuous WAL archives of the targets with
	// pitr, one per server (pitr.go).
	WALArchives []WALArchive
	// Queues are QUEUE_WEIGHTS, asynq's queue priorities.
	Queues map[string]int
	// MinIOTLS and RedisTLS are nil when their settings ask for no TLS
	// configuration of our own.
	MinIOTLS *tls.Config
	RedisTLS *tls.Config
	// program is who loaded the settings (see Program).
	program Program
}

// ConfigFileEnv names the environment variable holding the YAML file's
// path. It is read here, not by configs (which reads no file), so it has
// no field in configs.Config; the deployment tests add it to the names
// the struct's tags give.
const ConfigFileEnv = "CONFIG_FILE"

// Program names the program loading the settings, so that each reads only
// the secret files it uses: a process that never holds a key cannot leak
// it, and an API host needs no copy of the workers' secrets.
type Program int

const (
	// Worker runs tasks (as does the local pgbackup command): it reads
	// every file, the age identities (ENCRYPTION_IDENTITY_FILE) and the
	// targets' password_file included.
	Worker Program = iota
	// API serves HTTP; Scheduler enqueues and watches. Neither decrypts an
	// archive nor logs into a target's own server with its password (the
	// scheduler only asks a pitr server its WAL position, without
	// password_file), so neither reads the identities nor the targets'
	// password files: those may be absent or unreadable on their hosts.
	API
	Scheduler
	// Archiver streams the pitr targets' WAL into the stores: it reads
	// the targets' password files (it connects to their servers) but not
	// the identities: it only ever encrypts, to the recipients.
	Archiver
)

// readsTaskSecrets reports whether the program reads the decryption
// identities.
func (p Program) readsTaskSecrets() bool { return p == Worker }

// readsTargetPasswords reports whether the program connects to the
// targets' own servers and so reads their password_file.
func (p Program) readsTargetPasswords() bool { return p == Worker || p == Archiver }

// Load reads CONFIG_FILE and the environment, checks every setting and
// builds the Setup for program p. Every error is reported at once, each a
// *configs.SettingError naming its setting.
func Load(p Program) (*Setup, error) {
	return LoadAs(p, os.Getenv(ConfigFileEnv), os.Environ())
}

// LoadFrom is Load for a Worker with the file path and environment given
// explicitly.
func LoadFrom(path string, environ []string) (*Setup, error) {
	return LoadAs(Worker, path, environ)
}

// LoadAs is Load with the file path and environment given explicitly.
func LoadAs(p Program, path string, environ []string) (*Setup, error) {
	var data []byte
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, configs.Bad(ConfigFileEnv, "%w", err)
		}
		data = b
	}
	cfg, err := configs.Decode(path, data, environ)
	if err != nil {
		return nil, err
	}
	s := &Setup{Config: cfg, program: p}
	// Syntax first, then what needs files or other packages' rules; the
	// steps do not stop at the first error, so the user fixes all at once.
	errs := []error{cfg.Validate()}
	for _, step := range []func() error{s.checkPostgres, s.buildCodec, s.buildTLS, s.buildSigner,
		s.buildEncryption, s.buildQueues, s.checkWebhooks, s.buildTargets, s.buildWALArchives} {
		errs = append(errs, step())
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Setup) checkPostgres() error {
	c := s.Config
	var errs []error
	if !pgtool.ValidIdentifier(c.PostgresDB) {
		errs = append(errs, configs.Bad("POSTGRES_DB", "%q is not a valid database name", c.PostgresDB))
	}
	if c.PostgresSSLRootCert != "" {
		// libpq reads the file; a missing one should stop the start here.
		if _, err := os.Stat(c.PostgresSSLRootCert); err != nil {
			errs = append(errs, configs.Bad("POSTGRES_SSLROOTCERT", "%v", err))
		}
	}
	return errors.Join(errs...)
}

// buildCodec is the archive codec COMPRESSION (and PG_DUMP_COMPRESS) select.
func (s *Setup) buildCodec() error {
	c := s.Config
	if strings.TrimSpace(c.Compression) == "" && c.DumpCompress != "" {
		s.Codec = engine.Codec{PgDump: true}
		return nil
	}
	codec, err := engine.ParseCodec(c.Compression)
	if err != nil {
		return configs.Bad("COMPRESSION", "%v", err)
	}
	s.Codec = codec
	return nil
}

// buildTLS reads the CA and client certificates of MinIO and Redis.
func (s *Setup) buildTLS() error {
	c := s.Config
	var errs []error
	if c.MinIOCAFile != "" && c.MinIOEndpoint != "" {
		if _, err := os.Stat(c.MinIOCAFile); err != nil {
			errs = append(errs, configs.Bad("MINIO_CA_FILE", "%v", err))
		}
	}
	if len(errs) == 0 {
		t, err := minioTLS(c)
		// Without MINIO_ENDPOINT only bucket sources use the CA, and they
		// have always gone on without it.
		if err != nil && c.MinIOEndpoint != "" {
			errs = append(errs, configs.Bad("MINIO_CA_FILE", "%w", err))
		}
		s.MinIOTLS = t
	}
	if c.RedisTLS {
		t, err := TLSConfig(c.RedisTLSCAFile, c.RedisTLSCertFile, c.RedisTLSKeyFile)
		if err != nil {
			errs = append(errs, configs.Bad("REDIS_TLS", "%w", err))
		}
		s.RedisTLS = t
	}
	return errors.Join(errs...)
}

// buildQueues keeps QUEUE_WEIGHTS when every task queue has a weight; a
// value configs could not parse is already reported.
func (s *Setup) buildQueues() error {
	weights, err := s.Config.Queues()
	if err != nil {
		return nil
	}
	if err := tasks.CheckQueueWeights(weights); err != nil {
		return configs.Bad("QUEUE_WEIGHTS", "%v", err)
	}
	s.Queues = weights
	return nil
}

func (s *Setup) checkWebhooks() error {
	var errs []error
	for _, u := range s.Config.WebhookURLs() {
		if err := alert.CheckWebhookURL(u); err != nil {
			errs = append(errs, configs.Bad("ALERT_WEBHOOK_URLS", "%v", err))
		}
	}
	return errors.Join(errs...)
}
