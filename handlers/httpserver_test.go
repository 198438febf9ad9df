package handlers

import (
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// serve runs the API's http.Server with t on a free port.
func serve(t *testing.T, h http.Handler, to Timeouts) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewHTTPServer("", h, to)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

// trickle sends head at once, then one byte of rest every 50 ms, and
// returns how long the server took to close the connection (or to answer
// and close it), failing if it holds on past limit.
func trickle(t *testing.T, addr, head, rest string, limit time.Duration) time.Duration {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	closed := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, conn)
		close(closed)
	}()
	if _, err := io.WriteString(conn, head); err != nil {
		t.Fatal(err)
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-closed:
			return time.Since(start)
		case <-tick.C:
		}
		if time.Since(start) > limit {
			t.Fatalf("the server still holds a trickling connection after %v", limit)
		}
		if i < len(rest) {
			_, _ = conn.Write([]byte{rest[i]})
		}
	}
}

func TestTricklingClientsAreCutOff(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	to := Timeouts{ReadHeader: 300 * time.Millisecond, Read: 600 * time.Millisecond, Write: 5 * time.Second, Idle: time.Second, MaxHeaderBytes: 4 << 10}
	addr := serve(t, f.e, to)
	headers := strings.Repeat("X-Slow: a\r\n", 200)
	if d := trickle(t, addr, "GET /healthz HTTP/1.1\r\nHost: x\r\n", headers, 3*time.Second); d < to.ReadHeader/2 {
		t.Fatalf("closed after %v, before the header timeout", d)
	}
	body := `{"backup_name":"slow"` + strings.Repeat(" ", 200) + `}`
	head := "POST /api/admin/backup/create HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + testAdmin +
		"\r\nContent-Type: application/json\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n"
	trickle(t, addr, head, body, 3*time.Second)
	if n := f.queue.count(); n != 0 {
		t.Fatalf("a trickled body enqueued %d tasks", n)
	}
}

func TestOversizedHeadersAreRefused(t *testing.T) {
	t.Parallel()
	addr := serve(t, newFixture(t).e, DefaultTimeouts())
	req, _ := http.NewRequest("GET", "http://"+addr+"/healthz", nil)
	req.Header.Set("X-Big", strings.Repeat("a", 200<<10))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("200 KiB of headers: %d, want 431", resp.StatusCode)
	}
}

// TestDefaultTimeoutsLetSlowRoutesFinish: the write timeout must outlast a
// cancel's wait for the task's handler, or the admin gets a reset
// connection instead of the task's final state.
func TestDefaultTimeoutsLetSlowRoutesFinish(t *testing.T) {
	t.Parallel()
	d := DefaultTimeouts()
	if d.ReadHeader <= 0 || d.Read <= 0 || d.Idle <= 0 || d.MaxHeaderBytes <= 0 {
		t.Fatalf("default timeouts %+v: every one must be set", d)
	}
	if d.Write < cancelWait+30*time.Second {
		t.Fatalf("write timeout %v leaves a cancel (up to %v) too little time", d.Write, cancelWait)
	}
}
