package handlers

import (
	"context"
	"net/http"
	"time"

	"github.com/hibiken/asynq"
	"github.com/hibiken/asynq/x/metrics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/sirupsen/logrus"

	"github.com/autograph/pgbackup/jobs/coord"
	"github.com/autograph/pgbackup/jobs/engine"
	"github.com/autograph/pgbackup/jobs/policy"
)

// NewMetrics returns the /metrics handler. Everything it reports is read
// from Redis at scrape time (the state the workers and schedulers record,
// and asynq's queues), so every API instance answers the same and nothing
// resets when one restarts. inspector may be nil (no queue metrics). trust
// reports whether manifests are signed, and how many do not verify.
func NewMetrics(targets *policy.TargetSet, state StateReader, inspector *asynq.Inspector, version string, trust ManifestTrust, log *logrus.Entry) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(&targetCollector{targets: targets, state: state, backups: trust.Backups, log: log})
	trust.log = log
	reg.MustRegister(&trust)
	if inspector != nil {
		reg.MustRegister(metrics.NewQueueMetricsCollector(inspector))
	}
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "pgbackup_build_info", Help: "Build of the API answering, always 1."}, []string{"version"})
	build.WithLabelValues(version).Set(1)
	reg.MustRegister(build)
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

var (
	descLastSuccess = prometheus.NewDesc("pgbackup_last_success_timestamp_seconds",
		"When the target's newest good backup finished.", []string{"target"}, nil)
	descLastDuration = prometheus.NewDesc("pgbackup_last_backup_duration_seconds",
		"How long the target's newest good backup took.", []string{"target"}, nil)
	descLastSize = prometheus.NewDesc("pgbackup_last_backup_size_bytes",
		"Size of the target's newest good backup as stored.", []string{"target"}, nil)
	descRPO = prometheus.NewDesc("pgbackup_rpo_seconds",
		"Age of the target's newest good backup (the data a recovery now would lose).", []string{"target"}, nil)
	descRPOTarget = prometheus.NewDesc("pgbackup_rpo_target_seconds",
		"The target's recovery point objective.", []string{"target"}, nil)
	descBackups = prometheus.NewDesc("pgbackup_backups_total",
		"Backup tasks finished, by target and outcome (a failure counts once, when retries are exhausted).", []string{"target", "outcome"}, nil)
	descDrillSuccess = prometheus.NewDesc("pgbackup_last_drill_success_timestamp_seconds",
		"When the target's last successful restore drill ran.", []string{"target"}, nil)
	descDrillRTO = prometheus.NewDesc("pgbackup_last_drill_rto_seconds",
		"Recovery time measured by the target's last successful drill.", []string{"target"}, nil)
	descWALThrough = prometheus.NewDesc("pgbackup_wal_archived_through_timestamp_seconds",
		"Latest time at which the target's WAL archive held everything its server had written (pitr targets).", []string{"target"}, nil)
	descWALLag = prometheus.NewDesc("pgbackup_wal_lag_seconds",
		"How far the target's WAL archive is behind now: now - archived_through (pitr targets).", []string{"target"}, nil)
	descWALSlotLag = prometheus.NewDesc("pgbackup_wal_slot_lag_bytes",
		"WAL the target's server keeps for the archiver's replication slot: the newer of the archiver's report and the scheduler's reading of the slot on the server (pitr targets).", []string{"target"}, nil)
	descWALGaps = prometheus.NewDesc("pgbackup_wal_gaps",
		"Gaps the WAL watcher found in its last check of the target's WAL archive, from the oldest base backup on (pitr targets).", []string{"target"}, nil)
	descBaseAge = prometheus.NewDesc("pgbackup_base_backup_age_seconds",
		"Age of the newest trusted base backup of the target's WAL archive: how much WAL a point-in-time restore to now replays (pitr targets).", []string{"target"}, nil)
)

type targetCollector struct {
	targets *policy.TargetSet
	state   StateReader
	// backups lists the base backups of pitr targets; nil: no base backup
	// age.
	backups policy.Lister
	log     *logrus.Entry
}

func (c *targetCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descLastSuccess, descLastDuration, descLastSize, descRPO, descRPOTarget,
		descBackups, descDrillSuccess, descDrillRTO, descWALThrough, descWALLag, descWALSlotLag, descWALGaps, descBaseAge} {
		ch <- d
	}
}

func (c *targetCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	now := time.Now()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counts, err := c.state.Counters(ctx)
	if err != nil {
		c.log.WithError(err).Warn("metrics: cannot read counters")
		ch <- prometheus.NewInvalidMetric(descBackups, err)
		return
	}
	// The backups are listed once a scrape, and only when a target has a
	// WAL archive.
	var entries []engine.Entry
	listed := false
	bases := func() []engine.Entry {
		if !listed && c.backups != nil {
			listed = true
			var err error
			if entries, err = c.backups.List(ctx, nil); err != nil {
				c.log.WithError(err).Warn("metrics: cannot list base backups")
			}
		}
		return entries
	}
	seen := map[[2]string]bool{}
	for _, t := range c.targets.All() {
		// Every configured target shows both outcomes, from zero, so that
		// rate() and increase() see the first failure.
		for _, o := range []string{coord.OutcomeSuccess, coord.OutcomeFailed} {
			seen[[2]string{t.Name, o}] = true
			ch <- prometheus.MustNewConstMetric(descBackups, prometheus.CounterValue, float64(counts[[2]string{t.Name, o}]), t.Name, o)
		}
		st, err := c.state.Status(ctx, t.Name)
		if err != nil {
			c.log.WithError(err).Warn("metrics: cannot read target state")
			continue
		}
		if !st.LastSuccess.IsZero() {
			gauge(descLastSuccess, float64(st.LastSuccess.UnixMilli())/1000, t.Name)
			gauge(descLastDuration, st.LastDuration.Seconds(), t.Name)
			gauge(descLastSize, float64(st.LastSizeBytes), t.Name)
		}
		gauge(descRPO, st.Age(now).Seconds(), t.Name)
		if t.RPO > 0 {
			gauge(descRPOTarget, t.RPO.Seconds(), t.Name)
		}
		if !st.LastDrillSuccess.IsZero() {
			gauge(descDrillSuccess, float64(st.LastDrillSuccess.UnixMilli())/1000, t.Name)
			gauge(descDrillRTO, st.LastDrillSuccessRTO.Seconds(), t.Name)
		}
		if w := st.WAL; w != nil {
			if !w.ArchivedThrough.IsZero() {
				gauge(descWALThrough, float64(w.ArchivedThrough.UnixMilli())/1000, t.Name)
				gauge(descWALLag, w.LagSeconds(now), t.Name)
			}
			gauge(descWALSlotLag, float64(w.SlotLagBytes), t.Name)
			if !w.GapsChecked.IsZero() {
				gauge(descWALGaps, float64(w.Gaps), t.Name)
			}
			if b := policy.NewestBase(bases(), w.Archive); b != nil {
				gauge(descBaseAge, max(0, now.Sub(b.FinishedAt).Seconds()), t.Name)
			}
		}
	}
	for k, n := range counts {
		if !seen[k] {
			ch <- prometheus.MustNewConstMetric(descBackups, prometheus.CounterValue, float64(n), k[0], k[1])
		}
	}
}

// ManifestTrust is what /metrics says about manifest signatures.
type ManifestTrust struct {
	// Signing: the API has a signing key (BACKUP_SIGNING_KEY).
	Signing bool
	// Backups is listed at each scrape (from the manifest cache, so a
	// warm listing reads no manifest) to count the manifests whose
	// signature does not verify; nil reports no count.
	Backups policy.Lister
	log     *logrus.Entry
}

var (
	descSigning = prometheus.NewDesc("pgbackup_manifest_signing_enabled",
		"1 when manifests are signed and checked (BACKUP_SIGNING_KEY set), 0 when anyone who can write the store can forge a backup.", nil, nil)
	descUnverified = prometheus.NewDesc("pgbackup_manifests_unverified",
		"Backups whose manifest signature does not verify with the configured keys: not trusted, never pruned, never restored by default.", nil, nil)
)

// Describe implements prometheus.Collector.
func (m *ManifestTrust) Describe(ch chan<- *prometheus.Desc) {
	ch <- descSigning
	ch <- descUnverified
}

// Collect implements prometheus.Collector.
func (m *ManifestTrust) Collect(ch chan<- prometheus.Metric) {
	on := 0.0
	if m.Signing {
		on = 1
	}
	ch <- prometheus.MustNewConstMetric(descSigning, prometheus.GaugeValue, on)
	if m.Backups == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	entries, err := m.Backups.List(ctx, nil)
	if err != nil {
		m.log.WithError(err).Warn("metrics: cannot list backups")
		ch <- prometheus.NewInvalidMetric(descUnverified, err)
		return
	}
	n := 0
	for i := range entries {
		if !entries[i].Trusted() {
			n++
		}
	}
	ch <- prometheus.MustNewConstMetric(descUnverified, prometheus.GaugeValue, float64(n))
}
