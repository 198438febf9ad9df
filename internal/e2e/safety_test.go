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
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/autograph/pgbackup/handlers/client"
	"github.com/autograph/pgbackup/internal/harness"
	"github.com/autograph/pgbackup/internal/testbench"
)

const signingKey = "e2e-signing-key-0123456789abcdefghijklmn"

// TestSafetyIIEndToEnd drives the safety rules through the real binaries:
// the children's environment, signed manifests, replace, the cross-origin
// guard, POST verify and the audit trail.
func TestSafetyIIEndToEnd(t *testing.T) {
	t.Parallel()
	// REFUSE_UNSIGNED_RESTORES=false: this test shows that allow_unsigned
	// still works where allowed; signing_test.go shows the default refusal.
	c := newCluster(t, append(slowEnv, "BACKUP_SIGNING_KEY="+signingKey, "REFUSE_UNSIGNED_RESTORES=false")...)
	c.startAPI()
	w := c.start("worker", "worker")

	// A running pg_dump sees PATH, locale, HOME and its PG* variables,
	// never the worker's own secrets.
	id := startSlowBackup(t, c, "signed")
	read := 0
	for _, pid := range waitChildren(t, w.Pid(), "pg_dump", 30*time.Second) {
		raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
		if err != nil || len(raw) == 0 {
			continue // it may have finished already
		}
		read++
		for _, kv := range strings.Split(string(raw), "\x00") {
			name, _, _ := strings.Cut(kv, "=")
			ok := name == "" || name == "PATH" || name == "HOME" || name == "TZ" || name == "LANG" || name == "LANGUAGE" ||
				strings.HasPrefix(name, "LC_") || strings.HasPrefix(name, "PG")
			if !ok {
				t.Errorf("pg_dump's environment has %s", name)
			}
		}
		if strings.Contains(string(raw), c.env.MinIOPassword) || strings.Contains(string(raw), signingKey) || strings.Contains(string(raw), adminToken) {
			t.Error("a worker secret reached pg_dump's environment")
		}
	}
	if read == 0 {
		t.Fatal("no running pg_dump's environment could be read; the check proved nothing")
	}
	c.waitTask(id, 3*time.Minute)

	// Verify is a POST; GET is refused.
	if code, _, _ := c.raw(http.MethodGet, "/api/admin/backup/signed/verify", adminToken, nil, nil); code != http.StatusMethodNotAllowed {
		t.Errorf("GET verify = %d, want 405", code)
	}
	var r client.Response
	out, err := c.admin().VerifyBackup(t.Context(), "signed", client.VerifyBackupRequest{From: "minio"}, client.WithResponse(&r))
	st := c.waitTask(c.accepted("verify", &r, out, err).TaskID, 2*time.Minute)
	if res := result(t, st); res["row_counts_checked"] != true {
		t.Errorf("verify result %s, want the row counts checked", st.Result)
	}

	// A request from a hostile page in the admin's browser changes nothing.
	origin := map[string]string{"Origin": "https://evil.example"}
	if code, _, _ := c.raw(http.MethodPost, "/api/admin/backup/create", adminToken, origin, `{"backup_name":"evil"}`); code != http.StatusForbidden {
		t.Errorf("cross-origin create = %d, want 403", code)
	}

	// Replace: restore beside an existing target and swap it in.
	target := testbench.UniqueName("e2e_replace")
	c.env.CreateDB(t, target)
	c.env.Exec(t, target, `CREATE TABLE old_stuff (x int)`)
	out = c.restore(client.RestoreBackupRequest{BackupName: "signed", TargetDatabase: target, Replace: true})
	st = c.waitTask(out.TaskID, 3*time.Minute)
	res := result(t, st)
	old, _ := res["replaced_copy"].(string)
	if !strings.HasPrefix(old, target+"_replaced_") || res["swap_downtime_ms"] == nil {
		t.Fatalf("replace result %v, want the old copy and the swap's downtime", res)
	}
	c.env.DropDBOnCleanup(t, old)
	if diff := testbench.DiffFingerprints(c.env.Fingerprint(t, target), c.env.Fingerprint(t, c.source)); diff != "" {
		t.Fatalf("replaced target differs from the source:\n%s", diff)
	}
	if _, ok := c.env.Fingerprint(t, old)["table old_stuff"]; !ok {
		t.Fatalf("the old copy %s lost its table", old)
	}

	// With no target a restore goes into the backup's own database, which
	// holds tables: refused in the first attempt, never retried, naming
	// the choices, and the database is as it was.
	before := c.env.Fingerprint(t, c.source)
	out = c.restore(client.RestoreBackupRequest{BackupName: "signed", From: "minio"})
	st = c.waitTask(out.TaskID, time.Minute, "archived")
	full := must(c.admin().Task(t.Context(), st.TaskID))(t)
	if st.Error != "target database not empty" || st.Retried != 0 ||
		!strings.Contains(full.ErrorDetail, `"clean"`) || !strings.Contains(full.ErrorDetail, `"replace"`) || !strings.Contains(full.ErrorDetail, `"target_database"`) {
		t.Fatalf("restore into the backup's own non-empty database ended %q (%q) after %d retries; want \"target database not empty\" naming clean, replace and target_database, not retried",
			st.Error, full.ErrorDetail, st.Retried)
	}
	if diff := testbench.DiffFingerprints(c.env.Fingerprint(t, c.source), before); diff != "" {
		t.Fatalf("the refused restore changed %s:\n%s", c.source, diff)
	}

	// A manifest pointed at another database no longer carries a valid
	// signature: the restore is refused at once and touches nothing.
	tamperManifest(t, c, "signed", func(m map[string]any) { m["database"] = "postgres" })
	victim := testbench.UniqueName("e2e_tampered")
	c.env.DropDBOnCleanup(t, victim)
	out = c.restore(client.RestoreBackupRequest{BackupName: "signed", From: "minio", TargetDatabase: victim})
	st = c.waitTask(out.TaskID, time.Minute, "archived")
	if st.Error != "signature invalid" || st.Retried != 0 || c.env.DatabaseExists(t, victim) {
		t.Fatalf("tampered restore ended %v after %v retries (target created: %v); want signature invalid, not retried, untouched",
			st.Error, st.Retried, c.env.DatabaseExists(t, victim))
	}
	out = c.restore(client.RestoreBackupRequest{BackupName: "signed", From: "minio", TargetDatabase: victim, AllowUnsigned: true})
	c.waitTask(out.TaskID, 3*time.Minute)

	// Every admin action is in the audit trail, newest first.
	audit := must(c.admin().Audit(t.Context(), 3))(t)
	if entries := audit.Entries; len(entries) != 3 || entries[0].Target != victim || entries[0].Client == "" {
		t.Fatalf("audit = %+v, want the last restore first", audit)
	}

	// A program with another key refuses to start, naming the setting.
	api2 := c.progs.Command(harness.API, nil, "API_ADDR=127.0.0.1:0", "BACKUP_SIGNING_KEY=another-key-0123456789abcdefghijklmnop")
	b, err := api2.CombinedOutput()
	if err == nil || !strings.Contains(string(b), "BACKUP_SIGNING_KEY") {
		t.Fatalf("api with another signing key: err %v, output %s; want a refusal naming BACKUP_SIGNING_KEY", err, b)
	}
}

// tamperManifest rewrites a backup's manifest in MinIO as someone with
// write access to the bucket could.
func tamperManifest(t *testing.T, c *cluster, name string, edit func(map[string]any)) {
	t.Helper()
	ctx := context.Background()
	s := c.minio()
	rc, err := s.Get(ctx, "postgres/"+name+".manifest.json")
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	dec := json.NewDecoder(rc)
	dec.UseNumber()
	err = dec.Decode(&m)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	edit(m)
	b, _ := json.Marshal(m)
	if err := s.Put(ctx, "postgres/"+name+".manifest.json", bytes.NewReader(b), nil); err != nil {
		t.Fatal(err)
	}
}

// TestAPIServesTLS starts the API with a certificate made here and talks
// to it over HTTPS only.
func TestAPIServesTLS(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	certFile, keyFile, pool := selfSignedCert(t, c.dir)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	p := c.start("api", "api", "API_ADDR="+addr, "API_TLS_CERT_FILE="+certFile, "API_TLS_KEY_FILE="+keyFile)
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	if err := p.WaitHTTP(t.Context(), hc, "https://"+addr+"/readyz", 30*time.Second); err != nil {
		t.Fatalf("api over TLS not ready: %v\n%s", err, logText(t, p))
	}
	if _, err := c.apiAt("http://"+addr, "").Readyz(t.Context()); err == nil {
		t.Fatal("the TLS API also answered plain HTTP")
	}
}

// selfSignedCert writes a certificate for 127.0.0.1 and its key, and
// returns a pool that trusts it.
func selfSignedCert(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "pgbackup test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "api.crt"), filepath.Join(dir, "api.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}
