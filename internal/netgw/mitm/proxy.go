package mitm

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"strings"
	"sync"
	"time"

	"github.com/agentkernel/agentkernel/internal/netgw/policy"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// Binding tells the gateway to add a header to every request to Host.
type Binding struct {
	// Host is the exact name (no wildcard) whose requests get the header.
	Host string
	// Header is the header to set; "" means "Authorization".
	Header string
	// Value is the header's complete value, e.g. "Bearer sk-..." for
	// Authorization or the bare key for Anthropic's x-api-key. Whatever
	// the sandbox sent in this header (the placeholder) is replaced.
	Value string
}

// String never prints the value.
func (b Binding) String() string { return fmt.Sprintf("%s (%s: <redacted>)", b.Host, b.header()) }

func (b Binding) header() string {
	if b.Header == "" {
		return "Authorization"
	}
	return b.Header
}

// Bindings indexes bindings by host after checking them.
func Bindings(bs []Binding) (map[string]Binding, error) {
	m := make(map[string]Binding, len(bs))
	for _, b := range bs {
		host, ok := policy.NormalizeName(b.Host)
		if !ok || b.Value == "" || strings.ContainsAny(b.Value, "\r\n") || strings.ContainsAny(b.header(), " :\r\n") {
			return nil, fmt.Errorf("mitm: invalid binding for %q: %w", b.Host, errdefs.ErrInvalidArgument)
		}
		if _, dup := m[host]; dup {
			return nil, fmt.Errorf("mitm: two bindings for %s: %w", host, errdefs.ErrInvalidArgument)
		}
		b.Host = host
		m[host] = b
	}
	return m, nil
}

// Request describes one intercepted request, for the audit log. It never
// carries header values.
type Request struct {
	Host     string
	Method   string
	Status   int // 502 when upstream failed
	Injected bool
	Err      string
}

// Proxy serves intercepted connections for one sandbox. Its fields are set
// before the first Serve and not changed after.
type Proxy struct {
	CA *CA
	// Dial connects to the upstream address the gateway chose (the
	// address the sandbox connected to); addr is that address.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// RootCAs verifies upstream servers; nil means the host's roots.
	RootCAs *x509.CertPool
	// OnRequest, if set, is told about every request.
	OnRequest func(Request)
	Logger    *slog.Logger
}

// Serve terminates TLS on conn, whose ClientHello (still unread in conn)
// asked for b.Host, and forwards its HTTP/1.1 requests to upstream (an
// "ip:port") with b's header set. It returns when the connection ends or ctx
// is done, and closes conn.
func (p *Proxy) Serve(ctx context.Context, conn net.Conn, b Binding, upstream string) error {
	defer conn.Close()
	leaf, err := p.CA.Leaf(b.Host)
	if err != nil {
		return err
	}
	tconn := tls.Server(conn, &tls.Config{
		Certificates: []tls.Certificate{*leaf},
		NextProtos:   []string{"http/1.1"},
		MinVersion:   tls.VersionTLS12,
	})
	hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err = tconn.HandshakeContext(hctx)
	cancel()
	if err != nil {
		return fmt.Errorf("mitm: handshake with the sandbox: %w", err)
	}
	if sni := strings.ToLower(strings.TrimSuffix(tconn.ConnectionState().ServerName, ".")); sni != b.Host {
		return fmt.Errorf("mitm: server name %q is not %q", sni, b.Host)
	}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return p.Dial(ctx, network, upstream)
		},
		TLSClientConfig:     &tls.Config{ServerName: b.Host, RootCAs: p.RootCAs, MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2:   true,
		MaxIdleConnsPerHost: 2,
		IdleConnTimeout:     30 * time.Second,
		TLSHandshakeTimeout: 10 * time.Second,
	}
	defer tr.CloseIdleConnections()
	header := b.header()
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.Out.URL.Scheme = "https"
			r.Out.URL.Host = b.Host
			r.Out.Host = b.Host
			r.Out.Header.Set(header, b.Value)
			r.Out.Header.Del("X-Forwarded-For") // the sandbox's address is ours to keep
		},
		Transport:     tr,
		FlushInterval: -1, // stream responses (server-sent events) as they come
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			p.report(Request{Host: b.Host, Method: r.Method, Status: http.StatusBadGateway, Injected: true, Err: err.Error()})
			w.WriteHeader(http.StatusBadGateway)
		},
		ModifyResponse: func(res *http.Response) error {
			p.report(Request{Host: b.Host, Method: res.Request.Method, Status: res.StatusCode, Injected: true})
			return nil
		},
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if h, _, _ := strings.Cut(r.Host, ":"); !strings.EqualFold(strings.TrimSuffix(h, "."), b.Host) {
				p.report(Request{Host: r.Host, Method: r.Method, Status: http.StatusMisdirectedRequest, Err: "Host differs from the TLS server name"})
				w.WriteHeader(http.StatusMisdirectedRequest)
				return
			}
			rp.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
	if p.Logger != nil {
		srv.ErrorLog = slog.NewLogLogger(p.Logger.Handler(), slog.LevelDebug)
	}
	ln := &oneConnListener{conn: tconn, done: make(chan struct{})}
	stop := context.AfterFunc(ctx, func() { srv.Close() })
	defer stop()
	err = srv.Serve(ln) // returns once the connection is closed
	if errors.Is(err, http.ErrServerClosed) || errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

func (p *Proxy) report(r Request) {
	if p.OnRequest != nil {
		p.OnRequest(r)
	}
}

// oneConnListener hands out one connection, then blocks until it is
// closed, then reports net.ErrClosed; done is closed when the connection is.
type oneConnListener struct {
	mu   sync.Mutex
	conn net.Conn
	done chan struct{}
	once sync.Once
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	c := l.conn
	l.conn = nil
	l.mu.Unlock()
	if c != nil {
		return &notifyConn{Conn: c, closed: func() { l.once.Do(func() { close(l.done) }) }}, nil
	}
	<-l.done
	return nil, net.ErrClosed
}

func (l *oneConnListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *oneConnListener) Addr() net.Addr { return &net.TCPAddr{} }

type notifyConn struct {
	net.Conn
	closed func()
}

func (c *notifyConn) Close() error {
	err := c.Conn.Close()
	c.closed()
	return err
}
