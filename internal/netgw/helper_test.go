package netgw

import (
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
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// The test binary doubles as the program run inside the sandbox's network
// namespace: with NETGW_HELPER set to a JSON helperReq, TestMain runs it and
// prints a JSON helperResp instead of running tests. It uses the ordinary Go
// resolver (the namespace's resolv.conf names the gateway) and never looks
// at proxy variables.

type helperReq struct {
	Op      string        `json:"op"`
	Name    string        `json:"name,omitempty"`
	URL     string        `json:"url,omitempty"`
	CA      string        `json:"ca,omitempty"`
	SNI     string        `json:"sni,omitempty"`
	Host    string        `json:"host,omitempty"`
	Header  http.Header   `json:"header,omitempty"`
	Addr    string        `json:"addr,omitempty"`
	Send    []byte        `json:"send,omitempty"`
	N       int           `json:"n,omitempty"`
	Workers int           `json:"workers,omitempty"`
	Timeout time.Duration `json:"timeout,omitempty"`
}

type helperResp struct {
	IPs       []string      `json:"ips,omitempty"`
	NotFound  bool          `json:"not_found,omitempty"`
	Status    int           `json:"status,omitempty"`
	Body      string        `json:"body,omitempty"`
	Err       string        `json:"err,omitempty"`
	Refused   int           `json:"refused,omitempty"`
	Reset     bool          `json:"reset,omitempty"`
	Connected int           `json:"connected,omitempty"`
	TimedOut  int           `json:"timed_out,omitempty"`
	Other     int           `json:"other,omitempty"`
	Elapsed   time.Duration `json:"elapsed,omitempty"`
}

func TestMain(m *testing.M) {
	if req := os.Getenv("NETGW_HELPER"); req != "" {
		var r helperReq
		if err := json.Unmarshal([]byte(req), &r); err != nil {
			fmt.Fprintln(os.Stderr, "bad helper request:", err)
			os.Exit(2)
		}
		json.NewEncoder(os.Stdout).Encode(runHelper(r))
		os.Exit(0)
	}
	if code, ok := enterWorld(); ok {
		os.Exit(code)
	}
	code := m.Run()
	if worldResolvConf != "" {
		os.Remove(worldResolvConf)
	}
	os.Exit(code)
}

func runHelper(r helperReq) (resp helperResp) {
	start := time.Now()
	defer func() { resp.Elapsed = time.Since(start) }()
	if r.Timeout == 0 {
		r.Timeout = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	switch r.Op {
	case "resolve":
		ips, err := net.DefaultResolver.LookupHost(ctx, r.Name)
		resp.IPs = ips
		if err != nil {
			resp.Err = err.Error()
			var de *net.DNSError
			resp.NotFound = errors.As(err, &de) && de.IsNotFound
		}
	case "get":
		pool := x509.NewCertPool()
		if pem, err := os.ReadFile(r.CA); err == nil {
			pool.AppendCertsFromPEM(pem)
		}
		tr := &http.Transport{
			Proxy:             nil, // ignore HTTPS_PROXY and friends on purpose
			TLSClientConfig:   &tls.Config{RootCAs: pool, ServerName: r.SNI},
			DisableKeepAlives: true,
		}
		c := &http.Client{Transport: tr, Timeout: r.Timeout}
		req, _ := http.NewRequestWithContext(ctx, "GET", r.URL, nil)
		if r.Host != "" {
			req.Host = r.Host
		}
		for k, v := range r.Header {
			req.Header[k] = v
		}
		res, err := c.Do(req)
		if err != nil {
			resp.Err = err.Error()
			resp.Reset = errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
			resp.Refused = b2i(errors.Is(err, syscall.ECONNREFUSED))
			return
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
		resp.Status, resp.Body = res.StatusCode, string(body)
	case "dial":
		// N connection attempts by Workers goroutines; each is closed at once.
		var refused, connected, timedOut, other atomic.Int64
		var next atomic.Int64
		var wg sync.WaitGroup
		for range max(r.Workers, 1) {
			wg.Go(func() {
				for next.Add(1) <= int64(max(r.N, 1)) {
					c, err := net.DialTimeout("tcp4", r.Addr, r.Timeout)
					switch {
					case err == nil:
						connected.Add(1)
						c.Close()
					case errors.Is(err, syscall.ECONNREFUSED):
						refused.Add(1)
					case errors.Is(err, os.ErrDeadlineExceeded) || isTimeout(err):
						timedOut.Add(1)
					default:
						other.Add(1)
						if resp.Err == "" {
							resp.Err = err.Error()
						}
					}
				}
			})
		}
		wg.Wait()
		resp.Refused, resp.Connected = int(refused.Load()), int(connected.Load())
		resp.TimedOut, resp.Other = int(timedOut.Load()), int(other.Load())
	case "raw":
		// Send raw bytes on a TCP connection and read what comes back.
		c, err := net.DialTimeout("tcp4", r.Addr, r.Timeout)
		if err != nil {
			resp.Err = err.Error()
			resp.Refused = b2i(errors.Is(err, syscall.ECONNREFUSED))
			return
		}
		defer c.Close()
		resp.Connected = 1
		c.SetDeadline(time.Now().Add(r.Timeout))
		c.Write(r.Send)
		b, err := io.ReadAll(c)
		resp.Body = string(b)
		if err != nil {
			resp.Err = err.Error()
			resp.Reset = errors.Is(err, syscall.ECONNRESET)
		}
	case "udp":
		c, err := net.Dial("udp4", r.Addr)
		if err != nil {
			resp.Err = err.Error()
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(r.Timeout))
		c.Write(r.Send)
		// A denied flow gets ICMP port unreachable: the first Read
		// reports ECONNREFUSED.
		buf := make([]byte, 2048)
		n, err := c.Read(buf)
		resp.Body = string(buf[:n])
		if err != nil {
			resp.Err = err.Error()
			resp.Refused = b2i(errors.Is(err, syscall.ECONNREFUSED))
		}
	case "download":
		// Read everything a server sends; report bytes and time.
		c, err := net.DialTimeout("tcp4", r.Addr, r.Timeout)
		if err != nil {
			resp.Err = err.Error()
			return
		}
		defer c.Close()
		n, err := io.Copy(io.Discard, c)
		resp.Connected = int(n)
		if err != nil {
			resp.Err = err.Error()
		}
	case "dnsflood":
		// N queries for distinct names, as fast as the socket takes them.
		c, err := net.Dial("udp4", r.Addr)
		if err != nil {
			resp.Err = err.Error()
			return
		}
		defer c.Close()
		for i := range r.N {
			q := dnsmessage.Message{Header: dnsmessage.Header{ID: uint16(i), RecursionDesired: true},
				Questions: []dnsmessage.Question{{Name: dnsmessage.MustNewName(fmt.Sprintf("f%d.flood.test.", i)), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET}}}
			b, _ := q.Pack()
			if _, err := c.Write(b); err == nil {
				resp.Connected++
			}
		}
	default:
		resp.Err = "unknown op " + r.Op
	}
	return resp
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
