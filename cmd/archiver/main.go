// Command archiver streams the WAL of every server with a pitr target
// into the stores, continuously, for point-in-time recovery (issue #21).
// Run one, or two on different hosts against one Redis: one streams per
// server while holding its lease, the other waits as a hot standby and
// takes over within about 13 s of the holder's death.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/autograph/pgbackup/cmd/internal/wire"
	"github.com/autograph/pgbackup/configs"
	"github.com/autograph/pgbackup/jobs/archiver"
	"github.com/autograph/pgbackup/jobs/coord"
	"github.com/autograph/pgbackup/jobs/worker"
	"github.com/autograph/pgbackup/store"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "archiver:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	setup, err := wire.Load(wire.Archiver)
	if err != nil {
		return err
	}
	cfg := setup.Config
	id := worker.ProcessID()
	log := configs.NewLogger(cfg, "archiver", os.Stderr).WithField("archiver", id)
	if setup.Signer.Enabled() && !setup.Signer.CanSign() {
		// Every WAL object carries a signed header: an archiver that can
		// only verify would write nothing.
		return configs.Bad("BACKUP_SIGNING_PRIVATE_KEY_FILE", "the archiver signs every WAL object and needs a key to sign: set BACKUP_SIGNING_PRIVATE_KEY_FILE (or BACKUP_SIGNING_KEY), not only public keys")
	}
	if !setup.Signer.Enabled() {
		log.Warn("BACKUP_SIGNING_KEY is not set: WAL objects are not signed, so anyone who can write the store can change the WAL a recovery replays")
	}
	dropStaleSlots(ctx, setup, log)
	if len(setup.WALArchives) == 0 {
		// Waiting rather than exiting keeps a deployment that runs the
		// archiver everywhere from restarting it in a loop.
		log.Info("no target has pitr: true; nothing to archive, waiting for a stop signal")
		<-ctx.Done()
		return nil
	}
	stores, err := wire.Stores(ctx, setup)
	if err != nil {
		return err
	}
	rdb, err := wire.Redis(setup)
	if err != nil {
		return err
	}
	defer rdb.Close()
	state := coord.NewState(rdb)
	var wg sync.WaitGroup
	for _, a := range setup.WALArchives {
		alog := log.WithFields(logrus.Fields{"wal_archive": a.Name, "slot": a.Slot, "server": fmt.Sprintf("%s:%d", a.Conn.Host, a.Conn.Port)})
		acfg, err := streamerConfig(setup, a, stores, alog)
		if err != nil {
			return err
		}
		pub := newWALPublisher(state, a.Name, a.Targets, alog)
		acfg.OnProgress = pub.offer
		lease := coord.NewArchiverLease(rdb, a.Name, id, 0, 0)
		wg.Go(func() { pub.run(ctx) })
		wg.Go(func() {
			keepArchiving(ctx, lease, acfg, alog)
			pub.flush(ctx)
		})
	}
	log.WithField("config", cfg.String()).WithField("wal_archives", len(setup.WALArchives)).Info("archiver started")
	wg.Wait()
	log.Info("archiver stopped")
	return nil
}

// dropStaleSlots drops, on every server of the database targets, the
// replication slots of targets that no longer have pitr (or are gone), so
// that a slot nobody streams from does not hold WAL on the server. A
// server that cannot be reached or refuses is logged and passed over: it
// never stops the archiver.
func dropStaleSlots(ctx context.Context, setup *wire.Setup, log *logrus.Entry) {
	for _, conn := range setup.SlotServers() {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		_, err := archiver.DropStaleSlots(cctx, conn, setup.StaleSlot, log)
		cancel()
		if err != nil && ctx.Err() == nil {
			log.WithError(err).WithField("server", conn.Addr()).Warn("archiver: cannot drop the replication slots of targets without pitr")
		}
	}
}

// streamerConfig is what archiver.RunLeased needs for server archive a.
func streamerConfig(setup *wire.Setup, a wire.WALArchive, stores []store.Store, log *logrus.Entry) (archiver.Config, error) {
	arch, err := wire.OpenWALArchive(setup, a, stores, log)
	if err != nil {
		return archiver.Config{}, err
	}
	return archiver.Config{Conn: a.Conn, Slot: a.Slot, Archive: arch, PartialInterval: setup.Config.WALPartialInterval,
		Sync: a.Sync, AllowUnlimitedSlot: a.AllowUnlimitedSlot, Log: log}, nil
}

// keepArchiving runs the leased streamer until ctx ends. RunLeased returns
// when the streamer fails (server down, slot lost, store refusing): it
// has released the lease, so a standby may take over; this one tries
// again after a growing pause, so an outage is not a tight loop of errors.
func keepArchiving(ctx context.Context, lease *coord.ArchiverLease, cfg archiver.Config, log *logrus.Entry) {
	const first, most = time.Second, time.Minute
	pause := first
	for {
		started := time.Now()
		err := archiver.RunLeased(ctx, lease, cfg)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			err = errors.New("stopped without an error")
		}
		if time.Since(started) > 5*most {
			pause = first // it had been running well: a new failure
		}
		log.WithError(err).WithField("retry_in", pause.String()).Error("archiver: streaming failed")
		select {
		case <-ctx.Done():
			return
		case <-time.After(pause):
		}
		pause = min(2*pause, most)
	}
}
