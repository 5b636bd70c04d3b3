// Package client is the Go SDK of agentkernel's HTTP API, and what the
// agentkernel CLI itself uses to reach the daemon.
//
// A Client talks to one daemon, over TCP ("http://127.0.0.1:18888", with a
// token) or its Unix socket ("unix:///path/to/agentkernel.sock"). Errors
// from the daemon come back as *errdefs.Remote whose class comes from the
// answer, so errors.Is(err, errdefs.ErrNotFound) works across the wire.
//
// A Client is safe for concurrent use. It holds no goroutines or
// connections of its own beyond the http.Client's idle pool; Streams
// (ExecStream, Attach) own a WebSocket each and must be closed. The client
// never logs, and never puts the token anywhere but the Authorization
// header.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
	"unicode/utf8"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"

	"github.com/agentkernel/agentkernel/pkg/api"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// DefaultBaseURL is used when neither WithBaseURL nor AGENTKERNEL_BASE_URL
// gives one (upstream's default port, on the IPv4 loopback the daemon
// listens on).
const DefaultBaseURL = "http://127.0.0.1:18888"

// DefaultUserAgent is the User-Agent of requests unless WithUserAgent says
// otherwise.
const DefaultUserAgent = "agentkernel-go-sdk/1"

// Bounds on what the client reads from a server.
const (
	// maxResponseBytes bounds a JSON answer and ReadFile.
	maxResponseBytes = 256 << 20
	// maxErrorBytes bounds the body read from an error answer.
	maxErrorBytes = 64 << 10
)

// Option configures New.
type Option func(*options)

type options struct {
	baseURL   string
	token     string
	http      *http.Client
	userAgent string
}

// WithBaseURL sets the daemon's address: "http://host:port[/prefix]",
// "https://…" or "unix:///absolute/path/to.sock".
func WithBaseURL(u string) Option { return func(o *options) { o.baseURL = u } }

// WithToken sets the API token, sent as "Authorization: Bearer <token>".
func WithToken(tok string) Option { return func(o *options) { o.token = tok } }

// WithHTTPClient sets the http.Client to use. With a unix:// base URL its
// Transport must be nil or an *http.Transport, which is cloned to dial the
// socket.
func WithHTTPClient(h *http.Client) Option { return func(o *options) { o.http = h } }

// WithUserAgent sets the User-Agent header.
func WithUserAgent(ua string) Option { return func(o *options) { o.userAgent = ua } }

// Client is a connection to one agentkernel daemon.
type Client struct {
	// base is the scheme, host and escaped path prefix of every request,
	// without a trailing slash.
	base  string
	token string
	ua    string
	http  *http.Client
}

// New returns a Client. The base URL and token default to
// $AGENTKERNEL_BASE_URL (else DefaultBaseURL) and $AGENTKERNEL_API_KEY.
func New(opts ...Option) (*Client, error) {
	o := options{
		baseURL:   os.Getenv("AGENTKERNEL_BASE_URL"),
		token:     os.Getenv("AGENTKERNEL_API_KEY"),
		userAgent: DefaultUserAgent,
	}
	for _, opt := range opts {
		opt(&o)
	}
	if o.baseURL == "" {
		o.baseURL = DefaultBaseURL
	}
	if strings.ContainsAny(o.token, "\r\n") {
		return nil, errors.New("client: the token contains a line break")
	}
	u, err := url.Parse(o.baseURL)
	if err != nil {
		return nil, fmt.Errorf("client: invalid base URL: %w", err)
	}
	c := &Client{token: o.token, ua: o.userAgent, http: o.http}
	switch u.Scheme {
	case "http", "https":
		if u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			return nil, fmt.Errorf("client: invalid base URL %q: want http(s)://host[:port][/prefix]", o.baseURL)
		}
		c.base = u.Scheme + "://" + u.Host + strings.TrimRight(u.EscapedPath(), "/")
		if c.http == nil {
			c.http = &http.Client{CheckRedirect: noRedirects}
		}
	case "unix":
		if u.Host != "" || !strings.HasPrefix(u.Path, "/") {
			return nil, fmt.Errorf("client: invalid base URL %q: want unix:///absolute/path/to.sock", o.baseURL)
		}
		c.base = "http://localhost"
		if c.http, err = unixHTTPClient(c.http, u.Path); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("client: invalid base URL %q: the scheme must be http, https or unix", o.baseURL)
	}
	return c, nil
}

// noRedirects stops the client from following redirects: the API never
// sends one, and following one could carry the token elsewhere.
func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// unixHTTPClient returns a copy of h (or a new client) whose transport
// dials the Unix socket at path whatever the request's host.
func unixHTTPClient(h *http.Client, path string) (*http.Client, error) {
	var tr *http.Transport
	c := &http.Client{CheckRedirect: noRedirects}
	if h != nil {
		*c = *h
		switch t := h.Transport.(type) {
		case nil:
		case *http.Transport:
			tr = t.Clone()
		default:
			return nil, fmt.Errorf("client: a unix:// base URL needs an *http.Transport, not %T", h.Transport)
		}
	}
	if tr == nil {
		tr = http.DefaultTransport.(*http.Transport).Clone()
	}
	tr.Proxy = nil
	tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}
	c.Transport = tr
	return c, nil
}

// urlFor is the request URL of the escaped path p ("/sandboxes/x") with
// query q.
func (c *Client) urlFor(p string, q url.Values) string {
	u := c.base + p
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	return u
}

// seg escapes one path segment.
func seg(s string) string { return url.PathEscape(s) }

// filePath escapes a path inside a sandbox for …/files/{path...}: relative
// to /, each segment escaped, slashes kept.
func filePath(p string) string {
	parts := strings.Split(strings.TrimLeft(p, "/"), "/")
	for i, s := range parts {
		parts[i] = url.PathEscape(s)
	}
	return strings.Join(parts, "/")
}

// ErrDaemonLost is the error of a request or stream whose connection to
// the daemon broke before the daemon answered (the daemon was killed,
// stopped or restarted): the operation may or may not have taken effect.
// It replaces the transport's own words ("EOF", "failed to read frame
// header", "connection reset by peer").
var ErrDaemonLost = errors.New("the connection to the daemon was lost (the daemon stopped or restarted)")

// connectionLost reports whether err is an established connection to the
// daemon breaking (rather than, say, no daemon to connect to).
func connectionLost(err error) bool {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "frame header") || strings.Contains(msg, "StatusAbnormalClosure") ||
		strings.Contains(msg, "connection reset") || strings.Contains(msg, "broken pipe")
}

// request describes one HTTP exchange.
type request struct {
	method, path string
	query        url.Values
	body         io.Reader
	contentType  string
	accept       string
	// decodes409: the caller decodes a 409's envelope (call does).
	decodes409 bool
}

// send performs r and returns the response when its status is 2xx, else
// the daemon's error. The caller closes the body.
func (c *Client) send(ctx context.Context, r request) (*http.Response, error) {
	if _, ok := r.body.(io.Closer); ok {
		// net/http closes a body that is a Closer; the caller's file is
		// not ours to close.
		r.body = struct{ io.Reader }{r.body}
	}
	req, err := http.NewRequestWithContext(ctx, r.method, c.urlFor(r.path, r.query), r.body)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	c.setHeaders(req.Header)
	// The caller's trace context, when a propagator is installed (the
	// daemon's MCP tools: see internal/telemetry).
	otel.GetTextMapPropagator().Inject(ctx, propagation.HeaderCarrier(req.Header))
	if r.contentType != "" {
		req.Header.Set("Content-Type", r.contentType)
	}
	if r.accept != "" {
		req.Header.Set("Accept", r.accept)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if connectionLost(err) && ctx.Err() == nil {
			return nil, fmt.Errorf("%w before it answered %s %s", ErrDaemonLost, r.method, r.path)
		}
		return nil, fmt.Errorf("agentkernel %s %s: %w", r.method, r.path, err)
	}
	// A 409 of a JSON call may be a command that exited non-zero, an
	// answer with data (see decodeEnvelope); the caller decodes it.
	if resp.StatusCode == http.StatusConflict && r.decodes409 {
		return resp, nil
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		defer resp.Body.Close()
		return nil, responseError(resp)
	}
	return resp, nil
}

func (c *Client) setHeaders(h http.Header) {
	if c.ua != "" {
		h.Set("User-Agent", c.ua)
	}
	if c.token != "" {
		h.Set("Authorization", "Bearer "+c.token)
	}
}

// call sends in (if not nil) as JSON and decodes the envelope's data into
// out (if not nil).
func (c *Client) call(ctx context.Context, method, path string, query url.Values, in, out any) error {
	r := request{method: method, path: path, query: query, accept: "application/json", decodes409: true}
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("client: encoding the request: %w", err)
		}
		r.body, r.contentType = bytes.NewReader(b), "application/json"
	}
	resp, err := c.send(ctx, r)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return decodeEnvelope(resp, out)
}

// envelope is the JSON answer of every non-streaming route.
type envelope struct {
	Success bool            `json:"success"`
	Data    json.RawMessage `json:"data"`
	Error   string          `json:"error"`
	Code    string          `json:"code"`
}

func decodeEnvelope(resp *http.Response, out any) error {
	var env envelope
	dec := json.NewDecoder(io.LimitReader(resp.Body, maxResponseBytes))
	if err := dec.Decode(&env); err != nil {
		return fmt.Errorf("agentkernel: decoding the answer (%s): %w", resp.Status, err)
	}
	if !env.Success && !(env.Code == api.CodeCommandFailed && len(env.Data) > 0) {
		return remoteError(resp.StatusCode, env)
	}
	// A command that exited non-zero is an answer (409 for upstream's
	// clients): its data is the result.
	if out == nil || len(env.Data) == 0 {
		return nil
	}
	if err := json.Unmarshal(env.Data, out); err != nil {
		return fmt.Errorf("agentkernel: decoding the answer's data: %w", err)
	}
	return nil
}

// responseError turns a non-2xx answer into an *errdefs.Remote.
func responseError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBytes))
	var env envelope
	if json.Unmarshal(b, &env) == nil && (env.Error != "" || env.Code != "") {
		return remoteError(resp.StatusCode, env)
	}
	msg := resp.Status
	if text := strings.TrimSpace(string(b)); text != "" && utf8.ValidString(text) {
		if len(text) > 512 {
			text = text[:512] + "…"
		}
		msg += ": " + text
	}
	return &errdefs.Remote{Class: errdefs.FromHTTPStatus(resp.StatusCode), Message: msg}
}

// remoteError builds the error of an envelope: its class from the code,
// else from the HTTP status.
func remoteError(status int, env envelope) error {
	class := errdefs.FromCode(env.Code)
	if class == nil {
		class = errdefs.FromHTTPStatus(status)
	}
	msg := env.Error
	if msg == "" {
		msg = fmt.Sprintf("request failed with status %d", status)
	}
	return &errdefs.Remote{Class: class, Message: msg}
}
