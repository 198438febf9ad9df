package handlers

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
)

// Role is what a token may do. Admins may do everything viewers may.
type Role int

// Roles, in increasing power.
const (
	RoleNone Role = iota
	RoleViewer
	RoleAdmin
)

// Auth checks bearer tokens. Tokens are kept as SHA-256 digests and every
// stored digest is compared in constant time, so neither the comparison nor
// an early exit tells an attacker how much of a guess was right.
type Auth struct {
	// Disabled lets every request through as admin; for local experiments
	// only, and cmd/api logs a warning at every start when it is set.
	Disabled bool
	tokens   []tokenDigest
}

type tokenDigest struct {
	sum  [32]byte
	role Role
}

// ErrNoAdminToken means NewAuth was given no admin token and auth is not
// disabled: nobody could ever run a backup.
var ErrNoAdminToken = errors.New("no admin token configured")

// NewAuth builds the token table. It refuses to build one with no admin
// token unless disabled is set, so a misconfigured deployment fails closed.
func NewAuth(admin, viewer []string, disabled bool) (Auth, error) {
	a := Auth{Disabled: disabled}
	for _, t := range admin {
		if t = strings.TrimSpace(t); t != "" {
			a.tokens = append(a.tokens, tokenDigest{sha256.Sum256([]byte(t)), RoleAdmin})
		}
	}
	hasAdmin := len(a.tokens) > 0
	for _, t := range viewer {
		if t = strings.TrimSpace(t); t != "" {
			a.tokens = append(a.tokens, tokenDigest{sha256.Sum256([]byte(t)), RoleViewer})
		}
	}
	if !hasAdmin && !disabled {
		return Auth{}, ErrNoAdminToken
	}
	return a, nil
}

// RoleFor returns the role of a presented token, RoleNone if unknown.
func (a Auth) RoleFor(token string) Role {
	if token == "" {
		return RoleNone
	}
	sum := sha256.Sum256([]byte(token))
	role := RoleNone
	for _, t := range a.tokens {
		if subtle.ConstantTimeCompare(sum[:], t.sum[:]) == 1 && t.role > role {
			role = t.role
		}
	}
	return role
}

const roleKey = "pgbackup.role"

// authenticate accepts "Authorization: Bearer <token>". Under /monitoring/
// only, it also accepts Basic auth with the token as password, so a browser
// can open the queue UI (browsers cannot send bearer tokens when
// navigating, but do prompt for Basic). The API takes bearer tokens only:
// credentials a browser replays by itself never reach it.
//
// Failed attempts are counted per client address; past the limit the
// address's failures get 429 until its minute is over. A valid token always
// passes, even from a blocked address: many clients share one address
// behind a NAT or a proxy, and a stranger's bad requests must not lock its
// admins out. That gives a guesser nothing, since tokens have at least 16
// characters (cmd/internal/wire): the limit keeps failures cheap, it is not
// what makes guessing hopeless.
func (a *API) authenticate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if a.d.Auth.Disabled {
			c.Set(roleKey, RoleAdmin)
			return next(c)
		}
		monitoring := strings.HasPrefix(c.Request().URL.Path, "/monitoring")
		token := presentedToken(c.Request().Header.Get("Authorization"), monitoring)
		role := a.d.Auth.RoleFor(token)
		if role == RoleNone {
			addr := c.RealIP()
			if left, over := a.limiter.blocked(addr); over {
				return tooManyFailures(c, left)
			}
			a.limiter.fail(addr)
			if monitoring {
				c.Response().Header().Set("WWW-Authenticate", `Basic realm="pgbackup monitoring"`)
			} else {
				c.Response().Header().Set("WWW-Authenticate", `Bearer realm="pgbackup"`)
			}
			return errUnauthorized
		}
		c.Set(roleKey, role)
		c.Set(tokenKey, token)
		return next(c)
	}
}

const tokenKey = "pgbackup.token"

// TokenFingerprint names a token in audit lines without revealing it: the
// first 12 hex digits of its SHA-256.
func TokenFingerprint(token string) string {
	if token == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:6])
}

// presentedToken extracts the token; Basic counts only when allowBasic.
func presentedToken(header string, allowBasic bool) string {
	scheme, value, ok := strings.Cut(header, " ")
	if !ok {
		return ""
	}
	switch strings.ToLower(scheme) {
	case "bearer":
		return strings.TrimSpace(value)
	case "basic":
		if !allowBasic {
			return ""
		}
		raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(value))
		if err != nil {
			return ""
		}
		_, pw, _ := strings.Cut(string(raw), ":")
		return pw
	}
	return ""
}

func roleOf(c echo.Context) Role {
	r, _ := c.Get(roleKey).(Role)
	return r
}

func requireRole(min Role) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if roleOf(c) < min {
				return errForbidden
			}
			return next(c)
		}
	}
}

// String is the role's name as the API shows it.
func (r Role) String() string {
	switch r {
	case RoleAdmin:
		return "admin"
	case RoleViewer:
		return "viewer"
	}
	return "none"
}

// whoami tells a client the role of its token, so the page can leave out
// buttons the token may not use. It is a convenience, not a control: every
// route still checks the role itself.
func (a *API) whoami(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"role": roleOf(c).String()})
}
