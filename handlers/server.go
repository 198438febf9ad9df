// Package handlers is the HTTP API: it validates requests, enqueues tasks
// for the workers and reports their status. It never runs pg_dump itself;
// it reads the stores only to list backups and to answer 404 and 409
// before a task is enqueued.
package handlers

import (
	"context"
	"net"
	"net/http"
	"time"

	"github.com/hibiken/asynq"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/sirupsen/logrus"

	"github.com/autograph/pgbackup/jobs/engine"
	"github.com/autograph/pgbackup/jobs/policy"
	"github.com/autograph/pgbackup/jobs/tasks"
	"github.com/autograph/pgbackup/store"
	"github.com/autograph/pgbackup/web"
)

// Backups is the read side of the engine that the API uses.
type Backups interface {
	Find(ctx context.Context, name engine.Name, from []string) (*engine.Manifest, []string, error)
	List(ctx context.Context, from []string) ([]engine.Entry, error)
	// StoreNames lists the configured stores, in preference order for reads.
	StoreNames() []string
}

// NameIndex tells whether a backup name is taken (a *coord.NameIndex);
// sure is false when only the stores can tell.
type NameIndex interface {
	Taken(ctx context.Context, name string) (taken, sure bool, err error)
}

// Queue enqueues tasks (an *asynq.Client).
type Queue interface {
	EnqueueContext(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error)
}

// Inspector reads and changes task state (an *asynq.Inspector).
type Inspector interface {
	GetTaskInfo(queue, id string) (*asynq.TaskInfo, error)
	CancelProcessing(id string) error
	ArchiveTask(queue, id string) error
}

// Locks holds reservations and cancellation marks (a *coord.Locks).
type Locks interface {
	Acquire(ctx context.Context, kind, key, owner string, ttl time.Duration) error
	Release(ctx context.Context, kind, key, owner string) error
	MarkCancelled(ctx context.Context, taskID string, ttl time.Duration) error
}

// BucketSource opens the buckets bucket backups read (the workers' bucket
// access, see cmd/internal/wire).
type BucketSource interface {
	// Source opens an existing bucket to back up; it refuses (with an
	// engine.ErrBucketRefused) the backup store's own bucket and those
	// the deployment does not allow.
	Source(ctx context.Context, bucket string) (*store.Bucket, error)
	// Check refuses a bucket as Source does, without opening it: the
	// API's test of a restore's destination.
	Check(bucket string) error
}

// Deps are the API's collaborators, built in cmd/api.
type Deps struct {
	Backups   Backups
	Queue     Queue
	Inspector Inspector
	// Ping checks Redis for /readyz.
	Ping        func(ctx context.Context) error
	TaskOptions tasks.Options
	Log         *logrus.Entry
	// Monitoring serves asynqmon under /monitoring/, to admins only: even
	// its read-only view shows full task errors and payloads (webhook URLs,
	// host and database names), which viewers must never see.
	Monitoring http.Handler
	Auth       Auth
	Locks      Locks
	ReserveTTL time.Duration
	// BodyLimit caps request bodies; 1 MiB when zero.
	BodyLimit int64
	// TrustedProxies are the addresses whose X-Forwarded-For is believed
	// when finding the client's address; none means the peer address is
	// the client, whatever headers say.
	TrustedProxies []*net.IPNet
	// AuthFailuresPerMinute is how many failed authentications one client
	// address may make a minute before it gets 429; 20 when zero.
	AuthFailuresPerMinute int
	// Audit keeps recent admin actions for GET /api/admin/audit; AuditLog
	// receives one line per admin action. Both are optional.
	Audit    AuditTrail
	AuditLog *logrus.Entry
	// Targets are the configured targets; State what was observed of them;
	// Tasks lists queued tasks (which backups are in use).
	Targets *policy.TargetSet
	State   StateReader
	Tasks   tasks.TaskLister
	// PITR is each pitr target's WAL archive (by target name), for the
	// prune dry run; nil or without a target: the dry run lists no base
	// backups or WAL for it.
	PITR map[string]policy.PITRArchive
	// Buckets opens the buckets bucket backups read (to refuse missing ones
	// and the store's own before enqueueing); nil refuses bucket backups.
	Buckets BucketSource
	// Names answers create's existence check without reading the stores
	// on every request (a *coord.NameIndex); nil reads the stores.
	Names NameIndex
	// Metrics serves /metrics; MetricsPublic serves it without a token.
	Metrics       http.Handler
	MetricsPublic bool
	// Idempotency keeps responses for Idempotency-Key replays; nil
	// ignores the header.
	Idempotency IdempotencyStore
	// RefuseUnsigned answers 403 to a restore or verify that asks for
	// allow_unsigned (REFUSE_UNSIGNED_RESTORES); the workers refuse such
	// a task too.
	RefuseUnsigned bool
}

// API serves the HTTP routes.
type API struct {
	d        Deps
	limiter  *failureLimiter
	auditLog *logrus.Entry
}

// New builds the Echo server with every route.
func New(d Deps) *echo.Echo {
	if d.BodyLimit <= 0 {
		d.BodyLimit = 1 << 20
	}
	if d.AuthFailuresPerMinute <= 0 {
		d.AuthFailuresPerMinute = 20
	}
	a := &API{d: d, limiter: newFailureLimiter(d.AuthFailuresPerMinute), auditLog: d.AuditLog}
	if a.auditLog == nil {
		a.auditLog = d.Log.WithField("audit", true)
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = a.errorHandler
	e.IPExtractor = ipExtractor(d.TrustedProxies)
	// Before routing, so that unknown routes and wrong methods get the
	// headers and the cross-origin check too.
	e.Pre(securityHeaders, requestID)
	e.Use(middleware.Recover())
	e.Use(a.requestLog)
	e.Use(crossOriginGuard())

	e.GET("/healthz", a.healthz)
	e.GET("/readyz", a.readyz)
	// The backups page: static, no data in it; its calls carry the token.
	e.GET("/", func(c echo.Context) error { return c.Redirect(http.StatusFound, "/ui/") })
	e.GET("/ui/*", echo.WrapHandler(http.StripPrefix("/ui/", web.Handler())))
	// Open: the document describes routes, it holds no data.
	e.GET("/api/openapi.json", func(c echo.Context) error { return c.JSONBlob(http.StatusOK, openAPIDocument) })

	api := e.Group("/api", a.authenticate)
	view := api.Group("", requireRole(RoleViewer))
	// Audited before the role check, so that a viewer's refused attempts
	// reach the audit log (but never the kept trail, see audited).
	admin := api.Group("", a.audited, requireRole(RoleAdmin))

	admin.POST("/admin/backup/create", a.createBackup, a.idempotent)
	admin.POST("/admin/backup/restore", a.restoreBackup, a.idempotent)
	admin.DELETE("/admin/backup/:name", a.deleteBackup, a.idempotent)
	admin.POST("/admin/backup/adopt", a.adoptBackups, a.idempotent)
	view.GET("/admin/backup/list", a.listBackups)
	view.GET("/whoami", a.whoami)
	admin.POST("/admin/backup/:name/verify", a.verifyBackup, a.idempotent)
	// Verify starts work, so it is a POST; other methods are told so
	// rather than getting a 404 that hides the route.
	api.Match([]string{http.MethodGet, http.MethodHead, http.MethodPut, http.MethodPatch, http.MethodDelete},
		"/admin/backup/:name/verify", methodNotAllowed(http.MethodPost))
	view.GET("/admin/tasks/:id", a.getTask)
	admin.POST("/admin/tasks/:id/cancel", a.cancelTask)
	admin.GET("/admin/audit", a.auditEntries)
	view.GET("/admin/targets", a.listTargets)
	view.GET("/admin/targets/:name/prune", a.prunePreview)
	admin.POST("/admin/targets/:name/prune", a.pruneTarget)
	admin.POST("/admin/targets/:name/drill", a.drillTarget)
	admin.POST("/admin/targets/:name/basebackup", a.baseBackupTarget, a.idempotent)
	view.GET("/admin/drills", a.listDrills)
	admin.POST("/admin/buckets/backup", a.bucketBackup)
	admin.POST("/admin/buckets/restore", a.bucketRestore)
	if d.Metrics != nil {
		h := echo.WrapHandler(d.Metrics)
		if d.MetricsPublic {
			e.GET("/metrics", h)
		} else {
			e.GET("/metrics", h, a.authenticate, requireRole(RoleViewer))
		}
	}

	if d.Monitoring != nil {
		// asynqmon has no authentication of its own: admins only.
		mon := e.Group("/monitoring", a.authenticate, a.audited, requireRole(RoleAdmin))
		mon.GET("", func(c echo.Context) error { return c.Redirect(http.StatusFound, "/monitoring/") })
		mon.Any("/*", echo.WrapHandler(d.Monitoring))
	}
	return e
}

func (a *API) healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

func (a *API) readyz(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
	defer cancel()
	if err := a.d.Ping(ctx); err != nil {
		a.d.Log.WithError(err).Warn("readyz: redis unreachable")
		return c.JSON(http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "error": "redis unreachable"})
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ready"})
}

// ipExtractor believes X-Forwarded-For only from the trusted proxies.
func ipExtractor(trusted []*net.IPNet) echo.IPExtractor {
	if len(trusted) == 0 {
		return echo.ExtractIPDirect()
	}
	opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
	for _, n := range trusted {
		opts = append(opts, echo.TrustIPRange(n))
	}
	return echo.ExtractIPFromXFFHeader(opts...)
}

func (a *API) requestLog(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		if err != nil {
			c.Error(err)
		}
		// The query string is left out: it may carry names but never needs
		// to be logged, and keeping it out keeps accidents out too.
		a.d.Log.WithFields(logrus.Fields{
			"method": c.Request().Method, "path": c.Request().URL.Path, "status": c.Response().Status,
			"duration_ms": time.Since(start).Milliseconds(), "remote": c.RealIP(), "request_id": requestIDOf(c),
		}).Info("http request")
		return nil
	}
}

// methodNotAllowed answers 405 naming the allowed method.
func methodNotAllowed(allow string) echo.HandlerFunc {
	return func(c echo.Context) error {
		c.Response().Header().Set("Allow", allow)
		return echo.NewHTTPError(http.StatusMethodNotAllowed, "use "+allow+" for this route")
	}
}
