package e2e

import (
	"bytes"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/autograph/pgbackup/handlers/client"
	"github.com/autograph/pgbackup/internal/harness"
	"github.com/autograph/pgbackup/internal/testbench"
	"github.com/autograph/pgbackup/jobs/engine"
	"github.com/autograph/pgbackup/jobs/policy"
	"github.com/autograph/pgbackup/jobs/wal"
	"github.com/autograph/pgbackup/store"
)

// pruneTarget is the pitr target of TestPITRPruneKeepsTheWindow.
const pruneTarget = "walprune"

// putBaseBackup publishes a base backup of target's archive in st, as
// the engine lists it: a manifest and the objects of the sizes it names
// (the cluster signs no manifest, so it is trusted).
func putBaseBackup(t *testing.T, st store.Store, target string, finished time.Time, start, stop wal.LSN) string {
	t.Helper()
	name := engine.MustParseName(policy.BaseBackupName(target, finished))
	archive := []byte("not a real tar")
	m := engine.Manifest{Name: name, Database: "postgres", Format: engine.FormatCustom, Content: engine.ContentBase,
		ArchiveKey: engine.Prefix + name.String() + "+base.tar", SizeBytes: int64(len(archive)), StartedAt: finished.Add(-time.Minute),
		FinishedAt: finished, Stores: []string{st.Name()}, Target: target,
		Base: &engine.BaseInfo{WALArchive: target, Timeline: 1, StartLSN: start.String(), StopLSN: stop.String(),
			BackupManifest: &engine.Companion{ArchiveKey: engine.Prefix + name.String() + "+backup_manifest.json", SizeBytes: int64(len(archive))}}}
	doc, err := json.Marshal(&m)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{m.ArchiveKey, m.Base.BackupManifest.ArchiveKey} {
		if err := st.Put(t.Context(), k, bytes.NewReader(archive), nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Put(t.Context(), engine.ManifestKey(name), bytes.NewReader(doc), nil); err != nil {
		t.Fatal(err)
	}
	return name.String()
}

// TestPITRPruneKeepsTheWindow runs the real API and worker on a pitr
// target with a 1 h pitr_window over WAL written with the real archive
// into MinIO: the dry run lists the base backup older than the newest one
// before the window and the WAL before that one's start, deleting
// nothing; the prune task then deletes exactly those (and the chunks of
// complete segments), keeping the history file, the open segment's chunk
// and every base backup the window needs.
func TestPITRPruneKeepsTheWindow(t *testing.T) {
	t.Parallel()
	env := testbench.Require(t)
	c := newClusterOn(t, env, `BACKUP_TARGETS=[{"name":"`+pruneTarget+`","stores":["minio"],"pitr":true,"pitr_window":"1h"}]`)
	st := c.minio()
	a, err := wal.New(wal.Options{Target: pruneTarget, Stores: []store.Store{st}, Codec: engine.DefaultCodec,
		Log: logrus.NewEntry(logrus.New())})
	if err != nil {
		t.Fatal(err)
	}
	const size = wal.DefaultSegmentSize
	seg := func(n uint64) wal.LSN { return wal.LSN(n * size) }
	data := func(n int) []byte { b := make([]byte, n); b[0] = byte(n); return b } // zeros compress to nothing
	for n := uint64(1); n <= 6; n++ {
		if err := a.PutSegment(t.Context(), 1, n, data(size)); err != nil {
			t.Fatal(err)
		}
	}
	for _, start := range []wal.LSN{seg(2), seg(5), seg(7)} { // chunks of 2 and 5 (complete since) and of the open 7
		if err := a.PutPartial(t.Context(), 1, start, data(8192)); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.PutHistory(t.Context(), 2, []byte("1\t0/7002000\tno recovery target specified\n")); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	old := putBaseBackup(t, st, pruneTarget, now.Add(-3*time.Hour), seg(1)+0x28, seg(1)+0x1000)
	anchor := putBaseBackup(t, st, pruneTarget, now.Add(-2*time.Hour), seg(3)+0x28, seg(3)+0x1000)
	inside := putBaseBackup(t, st, pruneTarget, now.Add(-30*time.Minute), seg(5)+0x28, seg(5)+0x1000)

	walKeys := func() []string {
		objs, err := st.List(t.Context(), wal.Root(pruneTarget))
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, o := range objs {
			out = append(out, strings.TrimSuffix(strings.TrimPrefix(o.Key, wal.Root(pruneTarget)), ".zst"))
		}
		slices.Sort(out)
		return out
	}
	before := walKeys()

	c.startAPI()
	c.start("worker", harness.Worker)
	code, _, doc := c.raw(http.MethodGet, "/api/openapi.json", "", nil, nil)
	if code != http.StatusOK {
		t.Fatalf("openapi.json: %d", code)
	}
	ck := newOpenAPIChecker(t, doc)
	var r client.Response
	pp, err := c.admin().PrunePreview(t.Context(), pruneTarget, client.WithResponse(&r))
	if err != nil {
		t.Fatal(err)
	}
	ck.check("GET /api/admin/targets/{name}/prune", &r)
	if !slices.Equal(pp.WouldDelete, []string{old}) || pp.PITR == nil || len(pp.PITR.BaseBackups) != 3 {
		t.Fatalf("dry run would delete %v, pitr %+v; want %s only", pp.WouldDelete, pp.PITR, old)
	}
	if w := pp.PITR.WAL; w == nil || w.BeforeLSN != (seg(3)+0x28).String() || w.Segments != 2 || w.Chunks != 2 || !w.DryRun {
		t.Fatalf("dry run WAL %+v: want segments 1 and 2 and the chunks of 2 and 5, before %s", w, seg(3)+0x28)
	}
	if got := walKeys(); !slices.Equal(got, before) {
		t.Fatalf("the dry run deleted WAL: %v, was %v", got, before)
	}

	acc := must(c.admin().PruneTarget(t.Context(), pruneTarget))(t)
	res := result(t, c.waitTask(acc.TaskID, 60*time.Second))
	if w, _ := res["wal"].(map[string]any); w == nil || w["objects"] != float64(4) {
		t.Errorf("prune result %v: want 4 WAL objects deleted", res)
	}
	want := []string{
		"00000001/000000010000000000000003",
		"00000001/000000010000000000000004",
		"00000001/000000010000000000000005",
		"00000001/000000010000000000000006",
		"00000001/partial/000000010000000000000007/0000000007000000-0000000007002000",
		"00000002.history",
	}
	if got := walKeys(); !slices.Equal(got, want) {
		t.Fatalf("WAL left in MinIO:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for name, keep := range map[string]bool{old: false, anchor: true, inside: true} {
		_, err := st.Stat(t.Context(), engine.ManifestKey(engine.MustParseName(name)))
		if keep != (err == nil) {
			t.Errorf("base backup %s: manifest stat %v, want kept %v", name, err, keep)
		}
	}
	chains, err := a.Verify(t.Context())
	if err != nil || len(chains[0].Gaps) != 0 || chains[0].Start.LSN != seg(3) {
		t.Fatalf("chain after the prune %+v, %v: want whole from %s", chains, err, seg(3))
	}
}
