package wire

import (
	"context"
	"errors"
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
	setup := mustLoad(t, "BACKUP_DIR="+t.TempDir())
	cfg := setup.Config
	table := append(slices.Clone(backends), backend{
		name: store.MemoryName, setting: "MEMORY_STORE",
		enabled: func(configs.Config) bool { return true },
		open: func(context.Context, *Setup) (store.Store, error) {
			return store.NewMemory(""), nil
		},
	})
	if got, want := storeNames(cfg, table), []string{store.LocalName, store.MemoryName}; !slices.Equal(got, want) {
		t.Fatalf("names without MinIO = %v, want %v", got, want)
	}
	stores, err := openStores(context.Background(), setup, table)
	if err != nil {
		t.Fatal(err)
	}
	l := logrus.New()
	l.SetOutput(io.Discard)
	eng, err := engineOver(setup, stores, logrus.NewEntry(l))
	if err != nil {
		t.Fatal(err)
	}
	if got := eng.StoreNames(); !slices.Equal(got, []string{store.LocalName, store.MemoryName}) {
		t.Fatalf("engine stores = %v", got)
	}
}

func TestStoreErrorsNameTheSetting(t *testing.T) {
	t.Parallel()
	setup := mustLoad(t, "BACKUP_DIR="+t.TempDir(),
		"MINIO_ENDPOINT=http://127.0.0.1:1", "MINIO_ROOT_USER=u", "MINIO_ROOT_PASSWORD=p")
	if got := StoreNames(setup.Config); !slices.Equal(got, []string{store.LocalName, store.MinIOName}) {
		t.Fatalf("StoreNames with MINIO_ENDPOINT = %v", got)
	}
	_, err := Stores(context.Background(), setup)
	if err == nil || !strings.HasPrefix(err.Error(), "MINIO_ENDPOINT: ") {
		t.Fatalf("Stores with an unreachable MinIO: err = %v, want it to start with MINIO_ENDPOINT", err)
	}
}

func TestScheduleErrorsNameTheSetting(t *testing.T) {
	t.Parallel()
	cfg := configs.Defaults()
	cfg.BackupSchedule = "0 25 * * *"
	_, err := defaultSchedule(cfg)
	var se *configs.SettingError
	if !errors.As(err, &se) || se.Setting != "BACKUP_SCHEDULE" || !strings.Contains(err.Error(), "BACKUP_SCHEDULE: ") {
		t.Fatalf("bad cron: err = %v, want it to name BACKUP_SCHEDULE", err)
	}
	cfg = configs.Defaults()
	s, err := defaultSchedule(cfg)
	if err != nil || s == nil || s.Spec != "0 0 * * *" {
		t.Fatalf("default schedule = %+v, %v; want daily at midnight", s, err)
	}
}

// mustLoad is the Setup of the defaults and environ, which must be valid.
func mustLoad(t *testing.T, environ ...string) *Setup {
	t.Helper()
	s, err := LoadFrom("", environ)
	if err != nil {
		t.Fatalf("LoadFrom(%v): %v", environ, err)
	}
	return s
}
