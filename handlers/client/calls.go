package client

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Healthz asks whether the API process is up (GET /healthz).
func (c *Client) Healthz(ctx context.Context, opts ...CallOption) (*Health, error) {
	return get[Health](ctx, c, "/healthz", opts)
}

// Readyz asks whether the API can serve, Redis included (GET /readyz); a
// service that is not ready answers an *Error with status 503.
func (c *Client) Readyz(ctx context.Context, opts ...CallOption) (*Health, error) {
	return get[Health](ctx, c, "/readyz", opts)
}

// WhoAmI returns the role of the client's token (GET /api/whoami).
func (c *Client) WhoAmI(ctx context.Context, opts ...CallOption) (*WhoAmI, error) {
	return get[WhoAmI](ctx, c, "/api/whoami", opts)
}

// Metrics returns the service's Prometheus metrics in the text
// exposition format (GET /metrics), for a scraper or a test to parse.
func (c *Client) Metrics(ctx context.Context, opts ...CallOption) ([]byte, error) {
	var text []byte
	if err := c.do(ctx, http.MethodGet, "/metrics", nil, &text, opts); err != nil {
		return nil, err
	}
	return text, nil
}

// get reads path and decodes its answer as a T.
func get[T any](ctx context.Context, c *Client, path string, opts []CallOption) (*T, error) {
	var out T
	if err := c.do(ctx, http.MethodGet, path, nil, &out, opts); err != nil {
		return nil, err
	}
	return &out, nil
}

// CreateBackup enqueues a backup (POST /api/admin/backup/create).
func (c *Client) CreateBackup(ctx context.Context, req CreateBackupRequest, opts ...CallOption) (*TaskAccepted, error) {
	return c.enqueue(ctx, http.MethodPost, "/api/admin/backup/create", req, opts)
}

// RestoreBackup enqueues a restore (POST /api/admin/backup/restore).
func (c *Client) RestoreBackup(ctx context.Context, req RestoreBackupRequest, opts ...CallOption) (*TaskAccepted, error) {
	return c.enqueue(ctx, http.MethodPost, "/api/admin/backup/restore", req, opts)
}

// DeleteBackup enqueues the deletion of a backup (DELETE
// /api/admin/backup/{name}).
func (c *Client) DeleteBackup(ctx context.Context, name string, req DeleteBackupRequest, opts ...CallOption) (*TaskAccepted, error) {
	return c.enqueue(ctx, http.MethodDelete, "/api/admin/backup/"+url.PathEscape(name), req, opts)
}

// VerifyBackup enqueues a verify: the archive read back in full and
// checked (POST /api/admin/backup/{name}/verify).
func (c *Client) VerifyBackup(ctx context.Context, name string, req VerifyBackupRequest, opts ...CallOption) (*TaskAccepted, error) {
	return c.enqueue(ctx, http.MethodPost, "/api/admin/backup/"+url.PathEscape(name)+"/verify", req, opts)
}

// AdoptBackups enqueues an adoption of the old manager's archives (POST
// /api/admin/backup/adopt): a dry run first, whose result (AdoptResult,
// from the task) gives the plan an adoption must name.
func (c *Client) AdoptBackups(ctx context.Context, req AdoptRequest, opts ...CallOption) (*TaskAccepted, error) {
	return c.enqueue(ctx, http.MethodPost, "/api/admin/backup/adopt", req, opts)
}

// BackupBucket enqueues a backup of a bucket (POST /api/admin/buckets/backup).
func (c *Client) BackupBucket(ctx context.Context, req BucketBackupRequest, opts ...CallOption) (*TaskAccepted, error) {
	return c.enqueue(ctx, http.MethodPost, "/api/admin/buckets/backup", req, opts)
}

// RestoreBucket enqueues a bucket backup's restore (POST
// /api/admin/buckets/restore).
func (c *Client) RestoreBucket(ctx context.Context, req BucketRestoreRequest, opts ...CallOption) (*TaskAccepted, error) {
	return c.enqueue(ctx, http.MethodPost, "/api/admin/buckets/restore", req, opts)
}

// PruneTarget enqueues a prune of the target's backups by its retention
// (POST /api/admin/targets/{name}/prune).
func (c *Client) PruneTarget(ctx context.Context, target string, opts ...CallOption) (*TaskAccepted, error) {
	return c.enqueue(ctx, http.MethodPost, "/api/admin/targets/"+url.PathEscape(target)+"/prune", nil, opts)
}

// DrillTarget enqueues a restore drill of the target's newest backup
// (POST /api/admin/targets/{name}/drill).
func (c *Client) DrillTarget(ctx context.Context, target string, opts ...CallOption) (*TaskAccepted, error) {
	return c.enqueue(ctx, http.MethodPost, "/api/admin/targets/"+url.PathEscape(target)+"/drill", nil, opts)
}

// BaseBackupTarget enqueues a base backup of a pitr target's server
// (POST /api/admin/targets/{name}/basebackup); the answer names the
// backup. A target without pitr is an *Error with status 400.
func (c *Client) BaseBackupTarget(ctx context.Context, target string, opts ...CallOption) (*TaskAccepted, error) {
	return c.enqueue(ctx, http.MethodPost, "/api/admin/targets/"+url.PathEscape(target)+"/basebackup", nil, opts)
}

// CancelTask stops a task for good (POST /api/admin/tasks/{id}/cancel);
// the answer's State is the task's state after the cancel. A task that has
// already finished is an *Error with status 409.
func (c *Client) CancelTask(ctx context.Context, id string, opts ...CallOption) (*TaskAccepted, error) {
	return c.enqueue(ctx, http.MethodPost, "/api/admin/tasks/"+url.PathEscape(id)+"/cancel", nil, opts)
}

func (c *Client) enqueue(ctx context.Context, method, path string, body any, opts []CallOption) (*TaskAccepted, error) {
	var out TaskAccepted
	if err := c.do(ctx, method, path, body, &out, opts); err != nil {
		return nil, err
	}
	return &out, nil
}

// Task returns a task's status, progress and result (GET
// /api/admin/tasks/{id}).
func (c *Client) Task(ctx context.Context, id string, opts ...CallOption) (*Task, error) {
	return get[Task](ctx, c, "/api/admin/tasks/"+url.PathEscape(id), opts)
}

// WaitOptions shape WaitTask.
type WaitOptions struct {
	// Interval between two reads of the status; 500 ms when zero.
	Interval time.Duration
	// Observe, when set, sees every status read, the last one included.
	Observe func(*Task)
	// CallOptions go with every read (WithResponse then holds the last
	// answer, e.g. to print it unchanged).
	CallOptions []CallOption
}

// WaitTask reads the task's status until it is done (completed or
// archived) and returns the last status: an archived task is not an error
// here, the caller reads its Error. It returns the context's error when
// ctx ends first, and any failed read at once, each with the last status
// read (nil before the first).
func (c *Client) WaitTask(ctx context.Context, id string, o WaitOptions) (*Task, error) {
	if o.Interval <= 0 {
		o.Interval = 500 * time.Millisecond
	}
	tick := time.NewTicker(o.Interval)
	defer tick.Stop()
	var last *Task
	for {
		t, err := c.Task(ctx, id, o.CallOptions...)
		if err != nil {
			if ctx.Err() != nil {
				return last, ctx.Err()
			}
			return last, err
		}
		last = t
		if o.Observe != nil {
			o.Observe(t)
		}
		if t.Done() {
			return t, nil
		}
		select {
		case <-ctx.Done():
			return t, ctx.Err()
		case <-tick.C:
		}
	}
}

// ListBackups returns one page of the complete backups, newest first (GET
// /api/admin/backup/list).
func (c *Client) ListBackups(ctx context.Context, o ListBackupsOptions, opts ...CallOption) (*BackupList, error) {
	q := url.Values{}
	set := func(k, v string) {
		if v != "" {
			q.Set(k, v)
		}
	}
	set("stores", strings.Join(o.Stores, ","))
	set("database", o.Database)
	set("target", o.Target)
	set("since", o.Since)
	set("cursor", o.Cursor)
	if o.Limit > 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	return get[BackupList](ctx, c, withQuery("/api/admin/backup/list", q), opts)
}

// AllBackups follows the listing's pages (of o.Limit backups; one page of
// all when zero) and returns every backup, newest first.
func (c *Client) AllBackups(ctx context.Context, o ListBackupsOptions) ([]Backup, error) {
	var all []Backup
	for {
		page, err := c.ListBackups(ctx, o)
		if err != nil {
			return nil, err
		}
		all = append(all, page.Backups...)
		if page.NextCursor == "" {
			return all, nil
		}
		o.Cursor = page.NextCursor
	}
}

// FindBackup returns the listed backup named name (the API has no route
// for one backup, so it reads the listing filtered by o). A backup not
// listed is an error matching ErrNotFound.
func (c *Client) FindBackup(ctx context.Context, name string, o ListBackupsOptions) (*Backup, error) {
	all, err := c.AllBackups(ctx, o)
	if err != nil {
		return nil, err
	}
	for i := range all {
		if all[i].BackupName == name {
			return &all[i], nil
		}
	}
	return nil, fmt.Errorf("backup %s: %w", name, ErrNotFound)
}

// Targets lists the configured targets with their schedules, newest
// backups, RPO and last drills (GET /api/admin/targets).
func (c *Client) Targets(ctx context.Context, opts ...CallOption) (*TargetList, error) {
	return get[TargetList](ctx, c, "/api/admin/targets", opts)
}

// PrunePreview is a prune's dry run: what the target's retention would
// delete now (GET /api/admin/targets/{name}/prune).
func (c *Client) PrunePreview(ctx context.Context, target string, opts ...CallOption) (*PrunePreview, error) {
	return get[PrunePreview](ctx, c, "/api/admin/targets/"+url.PathEscape(target)+"/prune", opts)
}

// Drills lists recorded restore drills, newest first (GET /api/admin/drills).
func (c *Client) Drills(ctx context.Context, o DrillsOptions, opts ...CallOption) (*DrillList, error) {
	q := url.Values{}
	if o.Target != "" {
		q.Set("target", o.Target)
	}
	return get[DrillList](ctx, c, withQuery("/api/admin/drills", q), opts)
}

// Audit returns the most recent admin actions, at most limit (the
// service's default, 100, when zero) (GET /api/admin/audit).
func (c *Client) Audit(ctx context.Context, limit int, opts ...CallOption) (*AuditList, error) {
	q := url.Values{}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	return get[AuditList](ctx, c, withQuery("/api/admin/audit", q), opts)
}

func withQuery(path string, q url.Values) string {
	if len(q) == 0 {
		return path
	}
	return path + "?" + q.Encode()
}
