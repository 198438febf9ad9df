package wire

import (
	"context"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/autograph/pgbackup/configs"
	"github.com/autograph/pgbackup/store"
)

// TestOneRowAddsABackend shows what adding a backend costs: one row in the
// table. The engine built over the result offers it by name.
func TestOneRowAddsABackend(t *testing.T) {
	t.Parallel()
	cfg := configs.Defaults()
	cfg.BackupDir = t.TempDir()
	table := append(slices.Clone(backends), backend{
		name: store.MemoryName, setting: "MEMORY_STORE",
		enabled: func(configs.Config) bool { return true },
		open: func(context.Context, configs.Config) (store.Store, error) {
			return store.NewMemory(""), nil
		},
	})
	if got, want := storeNames(cfg, table), []string{store.LocalName, store.MemoryName}; !slices.Equal(got, want) {
		t.Fatalf("names without MinIO = %v, want %v", got, want)
	}
	stores, err := openStores(context.Background(), cfg, table)
	if err != nil {
		t.Fatal(err)
	}
	l := logrus.New()
	l.SetOutput(io.Discard)
	eng, err := engineOver(cfg, stores, logrus.NewEntry(l))
	if err != nil {
		t.Fatal(err)
	}
	if got := eng.StoreNames(); !slices.Equal(got, []string{store.LocalName, store.MemoryName}) {
		t.Fatalf("engine stores = %v", got)
	}
}

func TestStoreErrorsNameTheSetting(t *testing.T) {
	t.Parallel()
	cfg := configs.Defaults()
	cfg.BackupDir = t.TempDir()
	cfg.MinIOEndpoint, cfg.MinIORootUser, cfg.MinIORootPassword = "http://127.0.0.1:1", "u", "p"
	if got := StoreNames(cfg); !slices.Equal(got, []string{store.LocalName, store.MinIOName}) {
		t.Fatalf("StoreNames with MINIO_ENDPOINT = %v", got)
	}
	_, err := Stores(context.Background(), cfg)
	if err == nil || !strings.HasPrefix(err.Error(), "MINIO_ENDPOINT: ") {
		t.Fatalf("Stores with an unreachable MinIO: err = %v, want it to start with MINIO_ENDPOINT", err)
	}
}

func TestScheduleErrorsNameTheSetting(t *testing.T) {
	t.Parallel()
	cfg := configs.Defaults()
	cfg.BackupSchedule = "0 25 * * *"
	if _, err := Schedule(cfg); err == nil || !strings.HasPrefix(err.Error(), "BACKUP_SCHEDULE: ") {
		t.Fatalf("bad cron: err = %v, want it to name BACKUP_SCHEDULE", err)
	}
	cfg = configs.Defaults()
	s, err := Schedule(cfg)
	if err != nil || s.Spec != "0 0 * * *" {
		t.Fatalf("default schedule = %+v, %v; want daily at midnight", s, err)
	}
}
