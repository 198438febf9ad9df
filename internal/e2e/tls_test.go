package e2e

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/autograph/pgbackup/handlers/client"
	"github.com/autograph/pgbackup/internal/harness"
	"github.com/autograph/pgbackup/internal/testbench"
	"github.com/autograph/pgbackup/internal/testbench/services"
	"github.com/autograph/pgbackup/jobs/pgtool"
)

// testPKI is a CA of the test's own and certificates it signed, as PEM
// files in a directory the PostgreSQL server's user can read.
type testPKI struct {
	dir    string
	ca     *x509.Certificate
	caKey  *ecdsa.PrivateKey
	caFile string
}

func newPKI(t *testing.T, name string) *testPKI {
	t.Helper()
	// Not t.TempDir: as root the server runs as postgres, which cannot
	// enter root's 0700 temp directories.
	dir, err := os.MkdirTemp("", "pgbackup-pki-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	p := &testPKI{dir: dir, ca: ca, caKey: key, caFile: filepath.Join(dir, "ca.crt")}
	writePEM(t, p.caFile, "CERTIFICATE", der, 0o644)
	return p
}

func writePEM(t *testing.T, path, typ string, der []byte, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), mode); err != nil {
		t.Fatal(err)
	}
}

// issue signs a certificate for 127.0.0.1 and localhost (server and
// client use) and writes name.crt and name.key.
func (p *testPKI) issue(t *testing.T, name string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(p.dir, name+".crt"), filepath.Join(p.dir, name+".key")
	writePEM(t, certFile, "CERTIFICATE", der, 0o644)
	writePEM(t, keyFile, "EC PRIVATE KEY", kder, 0o600)
	return certFile, keyFile
}

func (p *testPKI) pool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(p.ca)
	return pool
}

// enablePostgresSSL turns SSL on in a private bench's PostgreSQL: as its
// superuser over the Unix socket, ALTER SYSTEM and a reload (SSL settings
// need no restart).
func enablePostgresSSL(t *testing.T, env testbench.Env, certFile, keyFile string) {
	t.Helper()
	// The server reads its key as its own user, and only from a file that
	// user owns with no access for others.
	if os.Geteuid() == 0 {
		if u, err := user.Lookup("postgres"); err == nil {
			uid, _ := strconv.Atoi(u.Uid)
			gid, _ := strconv.Atoi(u.Gid)
			if err := os.Chown(keyFile, uid, gid); err != nil {
				t.Fatal(err)
			}
		}
	}
	conn := pgSuperuser(t, env)
	ctx := context.Background()
	execAll(t, conn,
		fmt.Sprintf("ALTER SYSTEM SET ssl_cert_file = '%s'", certFile),
		fmt.Sprintf("ALTER SYSTEM SET ssl_key_file = '%s'", keyFile),
		"ALTER SYSTEM SET ssl = on",
		"SELECT pg_reload_conf()")
	deadline := time.Now().Add(10 * time.Second)
	for {
		var on string
		if err := conn.QueryRow(ctx, "SHOW ssl").Scan(&on); err == nil && on == "on" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("PostgreSQL did not turn SSL on; see its log")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// startMinIOTLS starts a MinIO of the test's own that serves https only,
// with the given certificate.
func startMinIOTLS(t *testing.T, certFile, keyFile string, pool *x509.CertPool) (endpoint, user, password string) {
	t.Helper()
	bin := filepath.Join(services.OptionsFromEnv(os.LookupEnv).Cache, "bin", "minio")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("minio binary: %v (run: testbench install)", err)
	}
	dir := t.TempDir()
	certs := filepath.Join(dir, "certs")
	os.MkdirAll(certs, 0o700)
	for src, dst := range map[string]string{certFile: "public.crt", keyFile: "private.key"} {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(certs, dst), b, 0o600)
	}
	user, password = "tlsadmin", "tls-secret-0123456789"
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	for attempt := 0; attempt < 5; attempt++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		var log bytes.Buffer
		cmd := exec.Command(bin, "server", "--quiet", "--address", addr, "--console-address", "127.0.0.1:0",
			"--certs-dir", certs, filepath.Join(dir, "data"))
		cmd.Env = append(os.Environ(), "MINIO_ROOT_USER="+user, "MINIO_ROOT_PASSWORD="+password,
			"MINIO_BROWSER=off", "MINIO_UPDATE=off")
		cmd.Stdout, cmd.Stderr = &log, &log
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		t.Cleanup(func() { cmd.Process.Kill(); <-done })
		deadline := time.Now().Add(60 * time.Second)
		for time.Now().Before(deadline) {
			select {
			case <-done:
				deadline = time.Time{}
				continue
			default:
			}
			if resp, err := client.Get("https://" + addr + "/minio/health/live"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return "https://" + addr, user, password
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
		cmd.Process.Kill()
		<-done
		if !strings.Contains(log.String(), "address already in use") {
			t.Fatalf("minio (https) did not start:\n%s", tail(log.String(), 3000))
		}
	}
	t.Fatal("minio (https): no free port after 5 attempts")
	return "", "", ""
}

// TestTLSEverywhere runs a backup and a restore with every connection of
// the service encrypted and verified against a CA the test made: Redis
// over TLS with a client certificate, MinIO over https, and PostgreSQL
// with sslmode verify-full, for the service's own connections and for
// pg_dump/pg_restore. A client given another CA is refused by each.
//
// The PostgreSQL server accepts TLS only (pg_hba: hostssl, and hostnossl
// reject): a client without TLS is refused, a worker trusting another CA
// fails its backup with a certificate error, and pg_stat_ssl shows the
// worker's pg_dump session encrypted while it runs. Redis asks for client
// certificates: a client without one is refused, and so is an API
// started without REDIS_TLS_CERT_FILE, while one with it works.
func TestTLSEverywhere(t *testing.T) {
	t.Parallel()
	pki := newPKI(t, "pgbackup test CA")
	srvCert, srvKey := pki.issue(t, "server")
	pgCert, pgKey := pki.issue(t, "postgres")
	cliCert, cliKey := pki.issue(t, "client")
	other := newPKI(t, "someone else's CA")

	priv := testbench.Require(t).StartPrivate(t)
	enablePostgresSSL(t, priv, pgCert, pgKey)
	requirePostgresTLS(t, priv)
	// The test's own sessions must now use TLS as well.
	priv.PGSSLMode = "require"

	tlsCfg := func(p *testPKI) *tls.Config {
		c, err := tls.LoadX509KeyPair(cliCert, cliKey)
		if err != nil {
			t.Fatal(err)
		}
		return &tls.Config{RootCAs: p.pool(), Certificates: []tls.Certificate{c}}
	}
	rdir := t.TempDir()
	rds := startRedisProcTLS(t, rdir, "redis-tls", tlsCfg(pki), func(port int) []string {
		return []string{"--port", "0", "--tls-port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
			"--dir", rdir, "--databases", "128",
			"--tls-cert-file", srvCert, "--tls-key-file", srvKey, "--tls-ca-cert-file", pki.caFile, "--tls-auth-clients", "yes"}
	})
	minioURL, minioUser, minioPassword := startMinIOTLS(t, srvCert, srvKey, pki.pool())

	// Each server refuses a client that trusts another CA; Redis also one
	// that trusts ours but has no certificate to show.
	ctx := context.Background()
	for what, cfg := range map[string]*tls.Config{"trusting another CA": tlsCfg(other), "without a certificate": {RootCAs: pki.pool()}} {
		bad := redis.NewClient(&redis.Options{Addr: rds.addr(), TLSConfig: cfg, MaxRetries: -1})
		if err := bad.Ping(ctx).Err(); err == nil {
			t.Errorf("redis: a client %s connected", what)
		}
		bad.Close()
	}
	if resp, err := (&http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: other.pool()}}}).Get(minioURL + "/minio/health/live"); err == nil {
		resp.Body.Close()
		t.Error("minio: a client trusting another CA connected")
	}

	c := newClusterOn(t, priv,
		"REDIS_ADDR="+rds.addr(), "REDIS_TLS=true", "REDIS_TLS_CA_FILE="+pki.caFile,
		"REDIS_TLS_CERT_FILE="+cliCert, "REDIS_TLS_KEY_FILE="+cliKey,
		"MINIO_ENDPOINT="+minioURL, "MINIO_ROOT_USER="+minioUser, "MINIO_ROOT_PASSWORD="+minioPassword,
		"MINIO_CA_FILE="+pki.caFile,
		"POSTGRES_SSLMODE=verify-full", "POSTGRES_SSLROOTCERT="+pki.caFile)
	c.env.CreateDB(t, c.source)
	c.env.Exec(t, c.source, `CREATE TABLE secret (id int PRIMARY KEY, v text)`,
		`INSERT INTO secret SELECT g, md5(g::text) FROM generate_series(1, 2000) g`)
	want := c.env.Fingerprint(t, c.source)
	checkRedisWantsClientCert(t, c)
	c.startAPI()

	// A worker that trusts another CA: its backup fails on the server's
	// certificate, and says so to an admin.
	foreign := c.start("worker-foreign-ca", "worker", "POSTGRES_SSLROOTCERT="+other.caFile)
	out := c.create(client.CreateBackupRequest{BackupName: "foreign-ca"})
	c.waitTask(out.TaskID, time.Minute, "retry", "archived")
	st := must(c.admin().Task(t.Context(), out.TaskID))(t)
	t.Logf("backup by a worker trusting another CA: %s: %s", st.Error, tail(st.ErrorDetail, 300))
	if !strings.Contains(st.ErrorDetail, "certificate") {
		t.Errorf("backup by a worker trusting another CA: error %q (%s), want one naming the certificate", st.ErrorDetail, st.Error)
	}
	stop(t, foreign, syscall.SIGTERM, 20*time.Second)

	// The worker's pg_dump waits on this lock while the test reads
	// pg_stat_ssl for its session.
	lock := lockTable(t, c.env.PGURL(c.source), "secret")
	w := c.start("worker", "worker")
	out = c.create(client.CreateBackupRequest{BackupName: "over-tls"})
	for _, d := range waitDumps(t, c.env.PGURL("postgres"), c.source, 1, time.Minute) {
		t.Logf("pg_stat_ssl for the worker's pg_dump (pid %d): ssl %v, %s", d.pid, d.ssl, d.tlsVersion)
		if !d.ssl {
			t.Errorf("the worker's pg_dump session (pid %d) is not encrypted", d.pid)
		}
	}
	lock.release()
	c.waitTask(out.TaskID, 2*time.Minute)
	checkRanOnce(t, []string{out.TaskID}, w)
	if locs := strings.Join(c.listBackups()["over-tls"].Locations, ","); !strings.Contains(locs, "minio") {
		t.Fatalf("backup over TLS is in %q, want minio among them", locs)
	}
	target := c.source + "_tls"
	c.env.DropDBOnCleanup(t, target)
	out = c.restore(client.RestoreBackupRequest{BackupName: "over-tls", TargetDatabase: target, From: "minio"})
	c.waitTask(out.TaskID, 2*time.Minute)
	if diff := testbench.DiffFingerprints(c.env.Fingerprint(t, target), want); diff != "" {
		t.Fatalf("restored over TLS: %s", diff)
	}

	// The client tools get sslmode and the root certificate through the
	// same environment the worker gives them: pg_dump verifies the server
	// against our CA, and refuses it against another one.
	port, _ := strconv.Atoi(priv.PGPort)
	conn := pgtool.Conn{Host: priv.PGHost, Port: port, User: priv.PGUser, Password: priv.PGPassword,
		SSLMode: "verify-full", Database: c.source}
	for _, tc := range []struct {
		ca string
		ok bool
	}{{pki.caFile, true}, {other.caFile, false}} {
		conn.SSLRootCert = tc.ca
		cmd := exec.Command(filepath.Join(priv.PGBin, "pg_dump"), "--schema-only")
		cmd.Env = conn.Env(pgtool.MinimalEnv(os.Environ()))
		outb, err := cmd.CombinedOutput()
		switch {
		case tc.ok && err != nil:
			t.Errorf("pg_dump with verify-full and our CA: %v\n%s", err, tail(string(outb), 500))
		case !tc.ok && (err == nil || !strings.Contains(string(outb), "certificate")):
			t.Errorf("pg_dump trusting another CA: err %v, output %s; want a certificate failure", err, tail(string(outb), 500))
		}
	}
}

// tlsOnlyHBA lets in over TCP only sessions that use TLS; the superuser's
// Unix socket stays open for the test's settings.
const tlsOnlyHBA = `local all all trust
hostssl all all 127.0.0.1/32 scram-sha-256
hostnossl all all all reject
`

// requirePostgresTLS replaces a private bench's pg_hba.conf by
// tlsOnlyHBA, reloads, and waits until a session without TLS is refused.
func requirePostgresTLS(t *testing.T, env testbench.Env) {
	t.Helper()
	su := pgSuperuser(t, env)
	ctx := context.Background()
	var hba string
	if err := su.QueryRow(ctx, "SHOW hba_file").Scan(&hba); err != nil {
		t.Fatal(err)
	}
	// Written in place: the file keeps its owner, the server's user.
	if err := os.WriteFile(hba, []byte(tlsOnlyHBA), 0o600); err != nil {
		t.Fatal(err)
	}
	execAll(t, su, "SELECT pg_reload_conf()")
	var refusal error
	err := harness.Poll(ctx, 10*time.Second, 50*time.Millisecond, func() (bool, error) {
		plain, err := pgx.Connect(ctx, env.PGURL("postgres")) // sslmode=disable
		if err == nil {
			plain.Close(ctx)
			return false, nil
		}
		refusal = err
		return strings.Contains(err.Error(), "no encryption"), nil
	})
	if err != nil {
		t.Fatalf("PostgreSQL still lets in a session without TLS after the pg_hba.conf reload (last: %v): %v", refusal, err)
	}
	t.Logf("a session without TLS: %v", refusal)
}

// checkRedisWantsClientCert starts an API of the cluster without its
// Redis client certificate: Redis (tls-auth-clients yes) refuses it, so it
// never becomes ready and says why.
func checkRedisWantsClientCert(t *testing.T, c *cluster) {
	t.Helper()
	addr, err := harness.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	p := c.start("api-without-cert", "api", "API_ADDR="+addr, "REDIS_TLS_CERT_FILE=", "REDIS_TLS_KEY_FILE=")
	var code int
	err = harness.Poll(t.Context(), 30*time.Second, 100*time.Millisecond, func() (bool, error) {
		if p.Exited() {
			return true, nil
		}
		var r client.Response
		c.apiAt("http://"+addr, "").Readyz(t.Context(), client.WithResponse(&r))
		code = r.StatusCode
		return code != 0 && strings.Contains(logText(t, p), "certificate required"), nil
	})
	log := logText(t, p)
	if err != nil || code == http.StatusOK || !strings.Contains(log, "certificate required") {
		t.Errorf("an API without its Redis client certificate: readyz %d, exited %v (%v); want refused by Redis for want of a certificate:\n%s",
			code, p.Exited(), err, tail(log, 1500))
	}
	t.Logf("an API without its Redis client certificate: readyz %d, exited %v", code, p.Exited())
	p.Kill()
}
