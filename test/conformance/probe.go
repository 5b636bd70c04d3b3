package conformance

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// BuildProbe compiles the network probe into dir/probe, static, with the
// go command: the program RunNetwork runs in sandboxes (bound at /probe).
// It never looks at proxy variables and uses the resolver of
// /etc/resolv.conf; it takes one JSON request as its argument and prints a
// JSON answer.
func BuildProbe(t *testing.T, dir string) {
	t.Helper()
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "go.mod"), []byte("module probe\n\ngo 1.22\n"), 0o644)
	os.WriteFile(filepath.Join(src, "main.go"), []byte(probeSource), 0o644)
	cmd := exec.Command("go", "build", "-o", filepath.Join(dir, "probe"), ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=", "GOTOOLCHAIN=local")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the probe: %v\n%s", err, out)
	}
}

const probeSource = `package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"syscall"
	"time"
)

type req struct {
	Op, Name, URL, CA, SNI, Host, Addr, Auth string
	N                                       int
}

type resp struct {
	IPs      []string ` + "`json:\"ips,omitempty\"`" + `
	NotFound bool     ` + "`json:\"not_found,omitempty\"`" + `
	Status   int      ` + "`json:\"status,omitempty\"`" + `
	Body     string   ` + "`json:\"body,omitempty\"`" + `
	Err      string   ` + "`json:\"err,omitempty\"`" + `
	Refused  bool     ` + "`json:\"refused,omitempty\"`" + `
	Reset    bool     ` + "`json:\"reset,omitempty\"`" + `
	Opened   int      ` + "`json:\"opened,omitempty\"`" + `
	Failed   int      ` + "`json:\"failed,omitempty\"`" + `
}

func main() {
	var r req
	json.Unmarshal([]byte(os.Args[1]), &r)
	var out resp
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	fail := func(err error) {
		out.Err = err.Error()
		out.Refused = errors.Is(err, syscall.ECONNREFUSED)
		out.Reset = errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
	}
	switch r.Op {
	case "resolve":
		ips, err := net.DefaultResolver.LookupHost(ctx, r.Name)
		out.IPs = ips
		var de *net.DNSError
		if err != nil {
			fail(err)
			out.NotFound = errors.As(err, &de) && de.IsNotFound
		}
	case "get":
		pool := x509.NewCertPool()
		if b, err := os.ReadFile(r.CA); err == nil {
			pool.AppendCertsFromPEM(b)
		}
		c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil,
			TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: r.SNI}, DisableKeepAlives: true}}
		q, _ := http.NewRequestWithContext(ctx, "GET", r.URL, nil)
		if r.Host != "" {
			q.Host = r.Host
		}
		if r.Auth != "" {
			q.Header.Set("Authorization", r.Auth)
		}
		res, err := c.Do(q)
		if err != nil {
			fail(err)
			break
		}
		b, _ := io.ReadAll(res.Body)
		out.Status, out.Body = res.StatusCode, string(b)
	case "dial":
		c, err := (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, "tcp", r.Addr)
		if err != nil {
			fail(err)
			break
		}
		c.Close()
	case "udp":
		c, err := net.Dial("udp", r.Addr)
		if err == nil {
			c.SetDeadline(time.Now().Add(2 * time.Second))
			c.Write([]byte("ping"))
			_, err = c.Read(make([]byte, 64))
		}
		if err != nil {
			fail(err)
		}
	case "conns":
		// N connections to Addr, each sending an HTTP request for Host
		// and reading its answer, all held open until the end: a sandbox
		// that floods its gateway with open connections.
		// Host is resolved once, through the sandbox's resolver, and
		// the answer dialled on Addr's port N times.
		var held []net.Conn
		addr := r.Addr
		if ips, err := net.DefaultResolver.LookupHost(ctx, r.Host); err == nil && len(ips) > 0 {
			_, port, _ := net.SplitHostPort(r.Addr)
			addr = net.JoinHostPort(ips[0], port)
		}
		for i := 0; i < r.N; i++ {
			c, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err == nil {
				c.SetDeadline(time.Now().Add(5 * time.Second))
				fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", r.Host)
				var res *http.Response
				if res, err = http.ReadResponse(bufio.NewReader(c), nil); err == nil && res.StatusCode != 200 {
					err = fmt.Errorf("status %d", res.StatusCode)
				}
			}
			if err != nil {
				if out.Failed == 0 {
					fail(err)
				}
				out.Failed++
				if c != nil {
					c.Close()
				}
				continue
			}
			out.Opened++
			held = append(held, c)
		}
		for _, c := range held {
			c.Close()
		}
	case "serve":
		http.ListenAndServe(r.Addr, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			fmt.Fprint(w, "hello from the sandbox")
		}))
	}
	json.NewEncoder(os.Stdout).Encode(out)
}
`
