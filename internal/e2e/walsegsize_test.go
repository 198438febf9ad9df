package e2e

import (
	"bytes"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/autograph/pgbackup/internal/harness"
	"github.com/autograph/pgbackup/internal/testbench"
	"github.com/autograph/pgbackup/jobs/wal"
	"github.com/autograph/pgbackup/store"
)

// smallSegment is the WAL segment size of the servers initialised with
// `initdb --wal-segsize=1`: a test's load crosses many segments in seconds.
const smallSegment = 1 << 20

// newSmallSegmentCluster is a pitr cluster on a server with 1 MiB WAL
// segments; it checks the server says so.
func newSmallSegmentCluster(t *testing.T, targetJSON ...string) *pitrCluster {
	t.Helper()
	p := newPITRClusterWith(t, testbench.PITROptions{WALSegSizeMB: 1}, targetJSON...)
	var size string
	if err := p.su.QueryRow(t.Context(), "SHOW wal_segment_size").Scan(&size); err != nil || size != "1MB" {
		t.Fatalf("wal_segment_size = %q (%v), want 1MB", size, err)
	}
	return p
}

// TestArchiverSmallSegments: on a server initialised with 1 MiB WAL
// segments, the archiver names and sizes segments as the server does,
// `pgbackup wal verify` (which is told no size) finds one whole chain
// across the many segments the load filled, and archived segments read
// back through jobs/wal are byte for byte the server's own pg_wal files.
func TestArchiverSmallSegments(t *testing.T) {
	t.Parallel()
	p := newSmallSegmentCluster(t)
	arch := p.start("archiver", harness.Archiver)
	if err := arch.WaitLog(t.Context(), "streaming WAL", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	// About 10 MiB of WAL: ten segments and more.
	lsn, seg := p.writeAndSwitch(t, 60000)
	p.waitArchived(t, lsn, seg)
	p.checkNoGap(t, lsn)

	a := readArchive(t, p.minio())
	chains, err := a.Verify(t.Context())
	if err != nil || len(chains) != 1 {
		t.Fatalf("Verify: %+v, %v", chains, err)
	}
	c := chains[0]
	if got := a.SegmentSize(); got != smallSegment {
		t.Fatalf("the archive's segment size, learnt from its objects, is %d, want %d", got, smallSegment)
	}
	if len(c.Gaps) != 0 || c.Segments < 8 {
		t.Fatalf("chain %+v: want 8 or more complete segments and no gap", c)
	}
	first, last := uint64(c.Start.LSN)/smallSegment, uint64(lsn)/smallSegment
	for _, segno := range []uint64{first, (first + last) / 2, last} {
		name := wal.SegmentName(c.Start.Timeline, segno, smallSegment)
		s, err := a.Open(t.Context(), c.Start.Timeline, segno)
		if err != nil || !s.Complete {
			t.Fatalf("open archived segment %s: complete %t, %v", name, s.Complete, err)
		}
		var onServer []byte
		if err := p.su.QueryRow(t.Context(), "SELECT pg_read_binary_file('pg_wal/' || $1)", name).Scan(&onServer); err != nil {
			t.Fatalf("read the server's pg_wal/%s: %v", name, err)
		}
		if len(onServer) != smallSegment || !bytes.Equal(s.Data, onServer) {
			t.Errorf("archived segment %s (%d bytes) differs from the server's (%d bytes)", name, len(s.Data), len(onServer))
		}
	}
	t.Logf("%d segments of 1 MiB archived, %s to %s", c.Segments, c.Start.LSN, c.End.LSN)
	stopCleanly(t, arch)
}

// readArchive opens the target's archive in st as every reader does: no
// segment size given, learnt from the objects.
func readArchive(t *testing.T, st store.Store) *wal.StoreArchive {
	t.Helper()
	a, err := wal.New(wal.Options{Target: walTarget, Stores: []store.Store{st}, Log: logrus.NewEntry(logrus.New())})
	if err != nil {
		t.Fatal(err)
	}
	return a
}
