package opencodeproxy

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/agentkernel/agentkernel/pkg/api"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// SandboxName is the proxy's sandbox.
const SandboxName = "opencode-attach"

// Defaults of Options' zero values.
const (
	DefaultStartWait    = 10 * time.Second
	DefaultReadyTimeout = 2 * time.Minute
)

// retryAfter is the Retry-After (seconds) of a 503 while starting, and
// failedFor how long a failed provisioning's error answers requests before
// the next request tries again.
const (
	retryAfter = 2
	failedFor  = retryAfter * time.Second
)

// Options configure New.
type Options struct {
	Sandboxes Sandboxes
	// Secret keys the passwords of the sandbox's server. Keep it across
	// daemon restarts so that a restarted daemon re-adopts a running
	// sandbox; empty means a random one (a restarted daemon then replaces
	// the sandbox).
	Secret []byte
	// Logger receives the provisioning's progress. Nil discards.
	Logger *slog.Logger
	// StartWait is how long a request waits for a provisioning in
	// progress before it is answered 503 with Retry-After. Default 10s;
	// negative: no wait.
	StartWait time.Duration
	// ReadyTimeout bounds the wait for the started server's health check.
	// Default 2 minutes.
	ReadyTimeout time.Duration
}

// Proxy is the /opencode handler. It is safe for concurrent use.
type Proxy struct {
	sb     Sandboxes
	opts   Options
	secret []byte
	log    *slog.Logger

	// ctx ends with Close; provisionings run under it.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu sync.Mutex
	// up is the ready server, or nil.
	up *upstream
	// cur is the provisioning in progress, or the last one if it failed
	// less than failedFor ago; nil otherwise.
	cur    *attempt
	closed bool
}

// attempt is one provisioning. done is closed when it ends, with up or
// err set.
type attempt struct {
	done   chan struct{}
	cancel context.CancelFunc
	up     *upstream
	err    error
	ended  time.Time
}

// New returns a Proxy over o.Sandboxes.
func New(o Options) *Proxy {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.StartWait == 0 {
		o.StartWait = DefaultStartWait
	}
	if o.ReadyTimeout <= 0 {
		o.ReadyTimeout = DefaultReadyTimeout
	}
	secret := o.Secret
	if len(secret) == 0 {
		secret = make([]byte, 32)
		rand.Read(secret)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Proxy{sb: o.Sandboxes, opts: o, secret: secret, log: o.Logger, ctx: ctx, cancel: cancel}
}

// ServeHTTP proxies r, whose path is the one below /opencode ("/" for
// /opencode itself), to the sandbox's server, provisioning it first when
// there is none.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	up, err := p.ready(r.Context())
	if err != nil {
		if r.Context().Err() == nil {
			writeError(w, err)
		}
		return
	}
	// Event streams last as long as the client keeps them: no server
	// timeout applies to this request. And the request's body may still
	// flow while the answer streams.
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{})
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.EnableFullDuplex()
	up.proxy.ServeHTTP(w, r)
}

// ready returns the ready server, after checking that its sandbox is
// still the same and running; else it starts a provisioning (or joins the
// one in progress) and waits for it at most StartWait.
func (p *Proxy) ready(ctx context.Context) (*upstream, error) {
	p.mu.Lock()
	up := p.up
	p.mu.Unlock()
	if up != nil {
		ok, err := p.stillThere(ctx, up)
		if err != nil {
			return nil, err
		}
		if ok {
			return up, nil
		}
	}
	a, up, err := p.begin()
	if up != nil || err != nil {
		return up, err
	}
	var timeout <-chan time.Time
	if p.opts.StartWait > 0 {
		t := time.NewTimer(p.opts.StartWait)
		defer t.Stop()
		timeout = t.C
	} else {
		select {
		case <-a.done:
		default:
			return nil, errStarting
		}
	}
	select {
	case <-a.done:
		if a.err != nil {
			return nil, a.err
		}
		return a.up, nil
	case <-timeout:
		return nil, errStarting
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// stillThere reports whether up's sandbox still exists, is the one up was
// started in and runs; when not, it forgets up.
func (p *Proxy) stillThere(ctx context.Context, up *upstream) (bool, error) {
	info, err := p.sb.GetSandbox(ctx, SandboxName)
	switch {
	case errors.Is(err, errdefs.ErrNotFound):
		p.drop(up, "the sandbox was removed")
		return false, nil
	case err != nil:
		return false, err
	case info.UUID != up.uuid:
		p.drop(up, "the sandbox was replaced")
		return false, nil
	case info.Status != api.StatusRunning:
		p.drop(up, "the sandbox is "+info.Status)
		return false, nil
	}
	return true, nil
}

// drop forgets up if it is the current server.
func (p *Proxy) drop(up *upstream, why string) {
	p.mu.Lock()
	current := p.up == up
	if current {
		p.up = nil
	}
	p.mu.Unlock()
	if current {
		p.log.Info("opencode proxy: its server is gone", "sandbox", SandboxName, "reason", why)
	}
	up.close()
}

// begin returns the ready server if another request just provisioned
// one, else the provisioning in progress (or the one that failed a moment
// ago), starting one when there is none.
func (p *Proxy) begin() (*attempt, *upstream, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.closed:
		return nil, nil, fmt.Errorf("%w: the daemon is shutting down", errdefs.ErrUnavailable)
	case p.up != nil:
		return nil, p.up, nil
	case p.cur != nil && (p.cur.ended.IsZero() || time.Since(p.cur.ended) < failedFor):
		return p.cur, nil, nil
	}
	ctx, cancel := context.WithCancel(p.ctx)
	a := &attempt{done: make(chan struct{}), cancel: cancel}
	p.cur = a
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer cancel()
		p.run(ctx, a)
	}()
	return a, nil, nil
}

// run provisions for a and publishes the result.
func (p *Proxy) run(ctx context.Context, a *attempt) {
	start := time.Now()
	up, err := p.provision(ctx)
	if err != nil {
		p.log.Warn("opencode proxy: provisioning failed", "sandbox", SandboxName, "err", err, "duration", time.Since(start).Round(time.Millisecond))
	} else {
		p.log.Info("opencode proxy: ready", "sandbox", SandboxName, "address", up.addr, "duration", time.Since(start).Round(time.Millisecond))
	}
	if err != nil && p.ctx.Err() != nil {
		err = fmt.Errorf("%w: the daemon is shutting down", errdefs.ErrUnavailable)
	}
	p.mu.Lock()
	superseded := p.cur != a
	if superseded {
		// Torn down meanwhile: Teardown removes the sandbox.
		if up != nil {
			up.close()
		}
		up, err = nil, fmt.Errorf("%w: the OpenCode sandbox was removed (DELETE /opencode) while it started", errdefs.ErrUnavailable)
	}
	a.up, a.err, a.ended = up, err, time.Now()
	if !superseded && err == nil {
		p.up, p.cur = up, nil
	}
	close(a.done)
	p.mu.Unlock()
}

// Teardown removes the sandbox (DELETE /opencode), after cancelling a
// provisioning in progress. A sandbox of that name that the proxy did not
// create is left alone (failed precondition); none at all is no error.
func (p *Proxy) Teardown(ctx context.Context) error {
	p.mu.Lock()
	a, up := p.cur, p.up
	p.cur, p.up = nil, nil
	p.mu.Unlock()
	if a != nil {
		a.cancel()
		select {
		case <-a.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if up != nil {
		up.close()
	}
	info, err := p.sb.GetSandbox(ctx, SandboxName)
	if errors.Is(err, errdefs.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if !ours(info) {
		return errNotOurs(errdefs.ErrFailedPrecondition)
	}
	p.log.Info("opencode proxy: removing its sandbox (DELETE /opencode)", "sandbox", SandboxName, "uuid", info.UUID)
	if err := p.sb.RemoveSandbox(ctx, SandboxName); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
		return err
	}
	return nil
}

// Close cancels provisionings in progress (which remove what they had
// made) and waits for them. The sandbox itself keeps running, for the
// next daemon to re-adopt.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	up := p.up
	p.up = nil
	p.mu.Unlock()
	p.cancel()
	p.wg.Wait()
	if up != nil {
		up.close()
	}
	return nil
}

// startingError is the answer while a provisioning is in progress: 503
// with Retry-After.
type startingError struct{}

func (startingError) Error() string {
	return "the OpenCode sandbox " + SandboxName + " is starting; retry in a moment"
}
func (startingError) Unwrap() error { return errdefs.ErrUnavailable }

var errStarting error = startingError{}

func errNotOurs(class error) error {
	return fmt.Errorf("%w: a sandbox named %s exists that the OpenCode proxy did not create (it has no label %s=%s); "+
		"remove or rename it (agentkernel sandbox remove %s)", class, SandboxName, labelProxy, labelProxyValue, SandboxName)
}

// writeError answers err's class with an error envelope.
func writeError(w http.ResponseWriter, err error) {
	status := errdefs.HTTPStatus(err)
	if errors.Is(err, errStarting) {
		w.Header().Set("Retry-After", strconv.Itoa(retryAfter))
	}
	writeEnvelope(w, status, api.Envelope{Success: false, Error: err.Error(), Code: errdefs.Code(err)})
}

func writeEnvelope(w http.ResponseWriter, status int, env api.Envelope) {
	b, _ := json.Marshal(env)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)+1))
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
