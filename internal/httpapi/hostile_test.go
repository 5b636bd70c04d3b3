package httpapi

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/agentkernel/agentkernel/pkg/api"
)

// TestHugeInputNotEchoed: a 10 MB invalid name was echoed whole in the
// error; now every echoed input is cut and the message is bounded.
func TestHugeInputNotEchoed(t *testing.T) {
	e := newEnv(t, HandlerOptions{MaxBodyBytes: 32 << 20})
	huge := strings.Repeat("x", 10<<20)
	for _, c := range []struct{ path, body string }{
		{"/sandboxes", fmt.Sprintf(`{"name":%q}`, "!"+huge)},
		{"/images/import", fmt.Sprintf(`{"name":"ok","path":%q}`, "relative"+huge)},
		{"/sandboxes", fmt.Sprintf(`{"name":"ok","image":%q}`, huge+" x")},
		{"/sandboxes/x/extend", fmt.Sprintf(`{"by":%q}`, huge)},
	} {
		resp, out := e.do(t, "POST", c.path, []byte(c.body), jsonHeader)
		var env api.Envelope
		if err := json.Unmarshal(out, &env); err != nil {
			t.Fatalf("%s: %v", c.path, err)
		}
		if resp.StatusCode/100 != 4 || len(env.Error) > maxErrorBytes+64 || len(out) > 8192 {
			t.Errorf("%s: status %d, error of %d bytes (response %d bytes)", c.path, resp.StatusCode, len(env.Error), len(out))
		}
		if !strings.Contains(env.Error, "bytes") {
			t.Errorf("%s: the cut is not said: %.300s", c.path, env.Error)
		}
	}
}

// TestExpectContinueTooLarge: a body declared larger than the limit is
// refused with 413 before the server asks for it (the finding: 100 Continue
// and then a dropped connection).
func TestExpectContinueTooLarge(t *testing.T) {
	e := newEnv(t, HandlerOptions{MaxBodyBytes: 1 << 20, MaxArchiveBytes: 4 << 20})
	for _, c := range []struct{ method, path, ctype string }{
		{"PUT", "/sandboxes/x/files/big.bin", "application/octet-stream"},
		{"PUT", "/sandboxes/x/archive?path=/tmp", "application/x-tar"},
		{"POST", "/sandboxes", "application/json"},
	} {
		conn, err := net.Dial("tcp", strings.TrimPrefix(e.srv.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n",
			c.method, c.path, c.ctype, 20<<20)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("%s %s: %v", c.method, c.path, err)
		}
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("%s %s with Expect: 100-continue: %s, want 413 first", c.method, c.path, resp.Status)
		}
		resp.Body.Close()
		conn.Close()
	}
}
