package opencodeproxy

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"strings"
	"time"

	"github.com/agentkernel/agentkernel/pkg/api"
)

// serverUser is the basic-auth user of the sandbox's server (OpenCode's
// default, set explicitly so the image cannot change it).
const serverUser = "opencode"

// healthPath answers 200 once `opencode serve` is up.
const healthPath = "/global/health"

// healthTimeout bounds one health check.
const healthTimeout = 2 * time.Second

// upstream is one sandbox's server: where its published port listens, the
// password it was started with, and the reverse proxy to it.
type upstream struct {
	uuid, addr, password string
	transport            *http.Transport
	proxy                *httputil.ReverseProxy
}

func (p *Proxy) newUpstream(uuid, addr string) *upstream {
	up := &upstream{uuid: uuid, addr: addr, password: p.password(uuid)}
	up.transport = &http.Transport{
		Proxy:       nil, // never through a proxy of the daemon's environment
		DialContext: (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		// Bodies pass as they are: no transparent gzip.
		DisableCompression:    true,
		MaxIdleConnsPerHost:   32,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
		// No ResponseHeaderTimeout: OpenCode's long polls are legitimate.
	}
	up.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			// The path, already below /opencode, and the query stay.
			pr.Out.URL.Scheme, pr.Out.URL.Host = "http", up.addr
			pr.Out.Host = ""
			// The client's credentials are the daemon's token: ours.
			pr.Out.Header.Del("Authorization")
			pr.Out.Header.Del("X-Api-Key")
			pr.Out.SetBasicAuth(serverUser, up.password)
		},
		Transport: up.transport,
		// Every write is flushed at once: SSE and chunked answers stream.
		FlushInterval: -1,
		ModifyResponse: func(resp *http.Response) error {
			stripCORS(resp.Header)
			// The server's password is ours; never invite a browser to ask
			// for it.
			resp.Header.Del("Www-Authenticate")
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) { p.upstreamFailed(w, r, up, err) },
		ErrorLog:     slog.NewLogLogger(p.log.Handler(), slog.LevelDebug),
	}
	return up
}

func (up *upstream) close() { up.transport.CloseIdleConnections() }

// stripCORS drops the CORS headers of an answer: the API blesses no
// origin, whatever OpenCode would allow.
func stripCORS(h http.Header) {
	for k := range h {
		if strings.HasPrefix(k, "Access-Control-") {
			delete(h, k)
		}
	}
}

// healthy reports whether up's server answers its health check.
func (up *upstream) healthy(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, healthTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+up.addr+healthPath, nil)
	if err != nil {
		return err
	}
	req.SetBasicAuth(serverUser, up.password)
	resp, err := up.transport.RoundTrip(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", healthPath, resp.Status)
	}
	return nil
}

// upstreamFailed answers a request the server did not take: the client
// left (nothing to answer), the server is gone (forget it, provision anew
// and say so with 503 and Retry-After), or it failed this once (502).
func (p *Proxy) upstreamFailed(w http.ResponseWriter, r *http.Request, up *upstream, err error) {
	if r.Context().Err() != nil {
		return
	}
	p.log.Warn("opencode proxy: request to its server failed", "method", r.Method, "path", r.URL.Path, "err", err)
	if herr := up.healthy(context.WithoutCancel(r.Context())); herr != nil {
		p.drop(up, "it does not answer: "+herr.Error())
		if _, up2, berr := p.begin(); berr != nil {
			writeError(w, berr)
			return
		} else if up2 != nil && up2 != up {
			writeEnvelope(w, http.StatusBadGateway, api.Envelope{Error: "the OpenCode server was replaced; retry", Code: "unavailable"})
			return
		}
		writeError(w, errStarting)
		return
	}
	writeEnvelope(w, http.StatusBadGateway, api.Envelope{
		Error: fmt.Sprintf("the OpenCode server in sandbox %s: %v", SandboxName, err), Code: "unavailable"})
}
