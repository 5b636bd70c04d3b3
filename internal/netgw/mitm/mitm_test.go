package mitm

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

func TestCA(t *testing.T) {
	ca, err := NewCA("sandbox test")
	if err != nil {
		t.Fatal(err)
	}
	key, err := ca.KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	ca2, err := LoadCA(ca.CertPEM(), key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca2.Leaf("api.example.test")
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.CertPEM())
	if _, err := leaf.Leaf.Verify(x509.VerifyOptions{DNSName: "api.example.test", Roots: pool}); err != nil {
		t.Fatalf("leaf does not verify against the CA: %v", err)
	}
	if _, err := leaf.Leaf.Verify(x509.VerifyOptions{DNSName: "other.test", Roots: pool}); err == nil {
		t.Fatal("leaf verifies for another name")
	}
	if again, _ := ca2.Leaf("api.example.test"); again != leaf {
		t.Fatal("leaf not cached")
	}
	if _, err := LoadCA([]byte("x"), key); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("LoadCA of garbage: %v", err)
	}
}

func TestBindings(t *testing.T) {
	m, err := Bindings([]Binding{{Host: "API.Anthropic.com.", Header: "x-api-key", Value: "k"}, {Host: "api.openai.com", Value: "Bearer k"}})
	if err != nil || m["api.anthropic.com"].Header != "x-api-key" || m["api.openai.com"].header() != "Authorization" {
		t.Fatalf("Bindings = %v, %v", m, err)
	}
	if s := fmt.Sprint(m["api.openai.com"]); strings.Contains(s, "Bearer k") {
		t.Fatalf("binding prints its value: %s", s)
	}
	for _, bad := range [][]Binding{
		{{Host: "*.x.test", Value: "v"}},
		{{Host: "a.test"}},
		{{Host: "a.test", Value: "v\r\nX-Evil: 1"}},
		{{Host: "a.test", Header: "Bad Header", Value: "v"}},
		{{Host: "a.test", Value: "v"}, {Host: "A.test", Value: "w"}},
	} {
		if _, err := Bindings(bad); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("Bindings(%v) err = %v", bad, err)
		}
	}
}

// TestProxyInjects runs a sandbox client against Proxy over a pipe, with an
// httptest TLS server as the upstream.
func TestProxyInjects(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	up := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Host+" "+r.Header.Get("X-Api-Key")+" "+r.Header.Get("X-Forwarded-For"))
		mu.Unlock()
		fmt.Fprintf(w, "key=%s", r.Header.Get("X-Api-Key"))
	}))
	defer up.Close()
	roots := x509.NewCertPool()
	roots.AddCert(up.Certificate())
	ca, err := NewCA("test")
	if err != nil {
		t.Fatal(err)
	}
	var reqs []Request
	p := &Proxy{
		CA:      ca,
		RootCAs: roots,
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
		OnRequest: func(r Request) { mu.Lock(); reqs = append(reqs, r); mu.Unlock() },
	}
	b := Binding{Host: "example.com", Header: "x-api-key", Value: "the-real-key"}
	client, server := net.Pipe()
	done := make(chan error, 1)
	go func() { done <- p.Serve(context.Background(), server, b, up.Listener.Addr().String()) }()

	sandboxRoots := x509.NewCertPool()
	sandboxRoots.AppendCertsFromPEM(ca.CertPEM())
	tc := tls.Client(client, &tls.Config{ServerName: "example.com", RootCAs: sandboxRoots})
	br := bufio.NewReader(tc)
	for i := range 2 { // two requests on one connection
		fmt.Fprintf(tc, "GET /%d HTTP/1.1\r\nHost: example.com\r\nX-Api-Key: PLACEHOLDER\r\n\r\n", i)
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		if string(body) != "key=the-real-key" {
			t.Fatalf("request %d: upstream saw %q", i, body)
		}
	}
	// A request for another host on the same connection is refused.
	fmt.Fprintf(tc, "GET / HTTP/1.1\r\nHost: evil.test\r\n\r\n")
	res, err := http.ReadResponse(br, nil)
	if err != nil || res.StatusCode != http.StatusMisdirectedRequest {
		t.Fatalf("other host: %v %v", res, err)
	}
	tc.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after the client closed")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 2 || seen[0] != "example.com the-real-key " {
		t.Fatalf("upstream saw %q", seen)
	}
	if len(reqs) != 3 || !reqs[0].Injected || reqs[0].Status != 200 || reqs[2].Status != http.StatusMisdirectedRequest {
		t.Fatalf("reported %+v", reqs)
	}
}

func TestProxyRejectsWrongSNI(t *testing.T) {
	ca, _ := NewCA("test")
	p := &Proxy{CA: ca, Dial: func(context.Context, string, string) (net.Conn, error) { return nil, errors.New("no dial") }}
	client, server := net.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- p.Serve(context.Background(), server, Binding{Host: "a.test", Value: "v"}, "127.0.0.1:1")
	}()
	tc := tls.Client(client, &tls.Config{ServerName: "b.test", InsecureSkipVerify: true})
	tc.Handshake()
	tc.Close()
	if err := <-done; err == nil {
		t.Fatal("Serve accepted a server name other than the binding's")
	}
}
