package wire

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
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

// TestRedisSentinelOrClusterReplacesREDIS_ADDR: with sentinels or a
// cluster configured, asynq's option and our own client never point at
// REDIS_ADDR, even when it is set (it has a default, 127.0.0.1:6379, that
// some machine's Redis may answer). The end-to-end tests give REDIS_ADDR
// a trap port on top of this.
func TestRedisSentinelOrClusterReplacesREDIS_ADDR(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		env  []string
		want asynq.RedisConnOpt
	}{
		{"standalone", nil, asynq.RedisClientOpt{}},
		{"sentinel", []string{"REDIS_SENTINEL_ADDRS=127.0.0.1:26379", "REDIS_SENTINEL_MASTER=m"}, asynq.RedisFailoverClientOpt{}},
		{"cluster", []string{"REDIS_CLUSTER_ADDRS=127.0.0.1:7000,127.0.0.1:7001", "REDIS_DB=0"}, asynq.RedisClusterClientOpt{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			setup := mustLoad(t, append([]string{"BACKUP_DIR=" + t.TempDir(), "REDIS_ADDR=127.0.0.1:6390"}, tc.env...)...)
			opt := RedisOpt(setup)
			if got, want := fmt.Sprintf("%T", opt), fmt.Sprintf("%T", tc.want); got != want {
				t.Fatalf("RedisOpt = %s, want %s", got, want)
			}
			if s, ok := opt.(asynq.RedisFailoverClientOpt); ok && !slices.Equal(s.SentinelAddrs, []string{"127.0.0.1:26379"}) {
				t.Errorf("sentinels = %v", s.SentinelAddrs)
			}
			if c, ok := opt.(asynq.RedisClusterClientOpt); ok && slices.Contains(c.Addrs, "127.0.0.1:6390") {
				t.Errorf("cluster nodes %v include REDIS_ADDR", c.Addrs)
			}
			rdb, err := Redis(setup)
			if err != nil {
				t.Fatal(err)
			}
			defer rdb.Close()
			_, isCluster := rdb.(*redis.ClusterClient)
			if isCluster != (tc.name == "cluster") {
				t.Errorf("our own client is %T", rdb)
			}
		})
	}
}
