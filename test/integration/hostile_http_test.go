package integration

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentkernel/agentkernel/internal/httpapi"
	"github.com/agentkernel/agentkernel/internal/testutil/akhome"
)

// TestHTTPAttacks drives the TCP API as a hostile client would (issue 16,
// item 4): a slowloris crowd, a burst of parallel requests, header
// injection and oversized headers. The daemon must keep answering its
// real clients on TCP and on its socket, hold no more descriptors than
// its connection guard allows, and reflect nothing into response headers.
func TestHTTPAttacks(t *testing.T) {
	requireEnv(t)
	e := newEnv(t)
	base := serveTCP(t, e)
	addr := strings.TrimPrefix(base, "http://")
	tokBytes, err := os.ReadFile(filepath.Join(e.home, "token"))
	if err != nil {
		t.Fatal(err)
	}
	tok := strings.TrimSpace(string(tokBytes))
	pid, err := akhome.ReadPID(filepath.Join(e.home, "run", "daemon.pid"))
	if err != nil {
		t.Fatal(err)
	}
	fds := func() int {
		ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		return len(ents)
	}
	get := func(path string) (int, error) {
		req, _ := http.NewRequest("GET", base+path, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := c.Do(req)
		if err != nil {
			return 0, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	idle := fds()

	t.Run("slowloris", func(t *testing.T) {
		// 2,000 connections that each send half a request head and then
		// a header line now and then, never the end of the head.
		const crowd = 2000
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for i := 0; i < crowd; i++ {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatalf("dial %d: %v", i, err)
			}
			conns = append(conns, c)
			fmt.Fprintf(c, "GET /sandboxes HTTP/1.1\r\nHost: %s\r\n", addr)
			if i%200 == 199 {
				time.Sleep(200 * time.Millisecond) // older than the guard's grace, as a real crowd would be
			}
		}
		for _, c := range conns {
			c.Write([]byte("X-Slow: 1\r\n")) // still not the end of the head
		}
		// The daemon's real clients are served meanwhile, on TCP and on
		// its socket.
		for i := 0; i < 20; i++ {
			if code, err := get("/sandboxes"); err != nil || code != 200 {
				t.Fatalf("GET /sandboxes during the crowd: %d, %v", code, err)
			}
		}
		if r := e.ak(t, "sandbox", "list"); r.code != 0 {
			t.Fatalf("sandbox list on the socket during the crowd: %s", r.stderr)
		}
		// The guard keeps at most 4 x its bound waiting; without it the
		// daemon would hold a descriptor for every one of the crowd.
		held := fds() - idle
		if limit := 4*httpapi.DefaultMaxWaitingConns + 50; held > limit {
			t.Fatalf("the daemon holds %d descriptors more than idle with %d slow connections open; want at most %d", held, crowd, limit)
		}
		t.Logf("%d slow connections: the daemon holds %d descriptors more than idle", crowd, held)
	})
	if !waitFor(15*time.Second, func() bool { return fds() <= idle+10 }) {
		t.Errorf("after the crowd left the daemon holds %d descriptors, idle it held %d", fds(), idle)
	}

	t.Run("parallel requests", func(t *testing.T) {
		const n = 1000
		var wg sync.WaitGroup
		var mu sync.Mutex
		failed := map[string]int{}
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				code, err := get("/sandboxes")
				if err != nil || code != 200 {
					mu.Lock()
					failed[fmt.Sprint(code, err)]++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if len(failed) > 0 {
			t.Fatalf("of %d parallel requests, failed: %v", n, failed)
		}
		if code, err := get("/health"); err != nil || code != 200 {
			t.Fatalf("after the burst: %d, %v", code, err)
		}
	})

	// raw sends a request head as written and returns the response's
	// status line and headers.
	raw := func(t *testing.T, head string) (string, http.Header) {
		t.Helper()
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(c, head); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("reading the answer: %v", err)
		}
		resp.Body.Close()
		return resp.Status, resp.Header
	}
	t.Run("header injection", func(t *testing.T) {
		auth := "Authorization: Bearer " + tok + "\r\n"
		for _, path := range []string{
			"/sandboxes/a%0D%0ASet-Cookie:%20injected=1",
			"/sandboxes/a%0ASet-Cookie:%20injected=1/exec",
			"/images/x%0D%0ALocation:%20http://evil.test/",
		} {
			status, h := raw(t, "GET "+path+" HTTP/1.1\r\nHost: "+addr+"\r\n"+auth+"Connection: close\r\n\r\n")
			if h.Get("Set-Cookie") != "" || h.Get("Location") != "" {
				t.Errorf("GET %s: %s reflected a header: %v", path, status, h)
			}
			if !strings.HasPrefix(status, "4") {
				t.Errorf("GET %s: %s, want a 4xx", path, status)
			}
		}
		// A header value with a bare CR, and a header name with a space:
		// refused before any handler runs.
		for _, bad := range []string{"X-A: b\rSet-Cookie: x=1\r\n", "X A: b\r\n"} {
			status, h := raw(t, "GET /sandboxes HTTP/1.1\r\nHost: "+addr+"\r\n"+auth+bad+"Connection: close\r\n\r\n")
			if !strings.HasPrefix(status, "400") || h.Get("Set-Cookie") != "" {
				t.Errorf("header %q: %s %v, want 400 and nothing reflected", bad, status, h)
			}
		}
	})
	t.Run("oversized headers", func(t *testing.T) {
		big := "X-Big: " + strings.Repeat("a", 2<<20) + "\r\n"
		status, _ := raw(t, "GET /sandboxes HTTP/1.1\r\nHost: "+addr+"\r\n"+big+"Connection: close\r\n\r\n")
		if !strings.HasPrefix(status, "431") {
			t.Errorf("a 2 MiB header: %s, want 431", status)
		}
		if code, err := get("/health"); err != nil || code != 200 {
			t.Fatalf("after the oversized headers: %d, %v", code, err)
		}
	})
}
