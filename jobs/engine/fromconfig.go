package engine

import (
	"context"
	"fmt"

	"github.com/sirupsen/logrus"

	"github.com/autograph/pgbackup/configs"
	"github.com/autograph/pgbackup/jobs/pgtool"
	"github.com/autograph/pgbackup/store"
)

// FromConfig builds the engine every program uses: the local store on
// BACKUP_DIR, plus MinIO when MINIO_ENDPOINT is set (its bucket is created
// if missing).
func FromConfig(ctx context.Context, cfg configs.Config, log *logrus.Entry) (*Engine, error) {
	local, err := store.NewLocal(cfg.BackupDir)
	if err != nil {
		return nil, fmt.Errorf("BACKUP_DIR: %w", err)
	}
	stores := []store.Store{local}
	if cfg.MinIOEnabled() {
		mio, err := store.NewMinIO(ctx, store.MinIOConfig{
			Endpoint: cfg.MinIOEndpoint, AccessKey: cfg.MinIORootUser, SecretKey: cfg.MinIORootPassword,
			Bucket: cfg.MinIOBucket, Region: cfg.MinIORegion,
			PartSize: uint64(cfg.MinIOPartSizeMB) << 20, UploadThreads: uint(cfg.MinIOUploadThreads),
		})
		if err != nil {
			return nil, fmt.Errorf("MINIO_ENDPOINT: %w", err)
		}
		stores = append(stores, mio)
	}
	return New(Options{
		Conn:     ConnFromConfig(cfg),
		Stores:   stores,
		Finder:   &pgtool.Finder{Forced: cfg.PGBinDir},
		WorkDir:  cfg.WorkDir,
		Jobs:     cfg.DumpJobs,
		Compress: cfg.DumpCompress,
		Log:      log,
	})
}

// ConnFromConfig is the connection to the configured database.
func ConnFromConfig(cfg configs.Config) pgtool.Conn {
	return pgtool.Conn{
		Host: cfg.PostgresHost, Port: cfg.PostgresPort, User: cfg.PostgresUser,
		Password: cfg.PostgresPassword, SSLMode: cfg.PostgresSSLMode, Database: cfg.PostgresDB,
	}
}
