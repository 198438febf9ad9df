package main

import (
	"context"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/autograph/pgbackup/jobs/archiver"
	"github.com/autograph/pgbackup/jobs/coord"
)

// walPublisher publishes a streamer's progress to Redis as every target's
// WAL state (coord.State.RecordWAL), for the API, /metrics and the RPO
// watcher. The streamer hands it the latest progress without waiting;
// Redis is written from a goroutine of its own, so a slow Redis never
// holds the stream up (a report it has not written yet is replaced by
// the next).
type walPublisher struct {
	state   *coord.State
	archive string
	targets []string
	latest  chan archiver.Progress
	log     *logrus.Entry
}

func newWALPublisher(state *coord.State, archive string, targets []string, log *logrus.Entry) *walPublisher {
	return &walPublisher{state: state, archive: archive, targets: targets, latest: make(chan archiver.Progress, 1), log: log}
}

// offer is archiver.Config.OnProgress: it keeps only the newest report.
func (p *walPublisher) offer(pr archiver.Progress) {
	for {
		select {
		case p.latest <- pr:
			return
		default:
		}
		select {
		case <-p.latest:
		default:
		}
	}
}

// run publishes reports until ctx ends.
func (p *walPublisher) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case pr := <-p.latest:
			p.publish(ctx, pr)
		}
	}
}

// flush publishes a report left when the streamer stopped (its last).
func (p *walPublisher) flush(ctx context.Context) {
	select {
	case pr := <-p.latest:
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		p.publish(fctx, pr)
	default:
	}
}

func (p *walPublisher) publish(ctx context.Context, pr archiver.Progress) {
	w := coord.WALStatus{Archive: p.archive, Timeline: pr.Timeline, ArchivedLSN: pr.Archived.String(),
		ArchivedThrough: pr.ArchivedThrough, ServerLSN: pr.ServerEnd.String(), SlotLagBytes: pr.SlotLagBytes(),
		LastSegment: pr.LastSegment(), Updated: pr.At}
	if err := p.state.RecordWAL(ctx, p.targets, w); err != nil && ctx.Err() == nil {
		p.log.WithError(err).Warn("archiver: cannot publish WAL state")
	}
}
