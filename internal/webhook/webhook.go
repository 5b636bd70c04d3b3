// Package webhook delivers the daemon's sandbox events to HTTP endpoints
// (`serve --webhook-url`), each event one signed POST, in order, at least
// once: an endpoint that is down gets the events after it comes back
// (retried with backoff), one that refuses an event for good, or never
// comes back within the attempts, gets a dead-letter record instead, and a
// restarted daemon resumes each endpoint after the last event it took.
//
// The signature is HMAC-SHA256 over "TIMESTAMP.BODY" with a secret from the
// daemon's vault, sent as
//
//	X-Agentkernel-Signature: t=TIMESTAMP,v1=HEX
//
// (TIMESTAMP in Unix seconds); receivers check it with Verify, refusing
// stale timestamps so that a recorded delivery cannot be replayed later.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/agentkernel/agentkernel/internal/events"
	"github.com/agentkernel/agentkernel/pkg/api"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// Header names.
const (
	SignatureHeader = "X-Agentkernel-Signature"
	EventHeader     = "X-Agentkernel-Event"
	EventIDHeader   = "X-Agentkernel-Event-Id"
)

// Defaults of Config's zero values.
const (
	defaultMinBackoff  = 500 * time.Millisecond
	defaultMaxBackoff  = time.Minute
	defaultMaxAttempts = 12 // about 7 minutes of retrying
	attemptTimeout     = 10 * time.Second
	// maxDeadLetters bounds an endpoint's dead-letter file.
	maxDeadLetters = 64 << 20
)

// Source is where events come from: the recorded history and the live
// ones (events.Source), and where a new endpoint starts.
type Source interface {
	events.Source
	LastEventID(ctx context.Context) (int64, error)
}

// Config configures Start.
type Config struct {
	URLs   []string
	Secret []byte
	Source Source
	// Dir keeps each endpoint's progress and dead letters.
	Dir string
	// MinBackoff, MaxBackoff and MaxAttempts shape retries; zero values
	// take the defaults.
	MinBackoff, MaxBackoff time.Duration
	MaxAttempts            int
	// Client sends the requests; nil is one that follows no redirect.
	Client *http.Client
	Logger *slog.Logger
}

// Deliverers deliver events to every configured endpoint until Close.
type Deliverers struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// CheckURL refuses what is not an absolute http or https URL with a host.
func CheckURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return fmt.Errorf("%w: webhook URL %q: want http:// or https://HOST/… without credentials", errdefs.ErrInvalidArgument, s)
	}
	return nil
}

// Start begins delivering to each of cfg.URLs, from where it left off (or,
// for an endpoint new to Dir, from the events recorded from now on).
func Start(ctx context.Context, cfg Config) (*Deliverers, error) {
	if len(cfg.Secret) < 16 {
		return nil, fmt.Errorf("%w: the webhook secret must be at least 16 bytes", errdefs.ErrInvalidArgument)
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = defaultMinBackoff
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = defaultMaxBackoff
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = defaultMaxAttempts
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, err
	}
	now, err := cfg.Source.LastEventID(ctx)
	if err != nil {
		return nil, err
	}
	var eps []*endpoint
	for _, u := range cfg.URLs {
		if err := CheckURL(u); err != nil {
			return nil, err
		}
		ep := &endpoint{cfg: &cfg, url: u, file: filepath.Join(cfg.Dir, fileName(u))}
		if ep.after, err = ep.loadProgress(now); err != nil {
			return nil, err
		}
		eps = append(eps, ep)
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	d := &Deliverers{cancel: cancel}
	for _, ep := range eps {
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			ep.run(ctx)
		}()
	}
	return d, nil
}

// Close stops delivering and waits for the deliverers; an event in
// flight is delivered again by the next daemon (at least once).
func (d *Deliverers) Close() {
	d.cancel()
	d.wg.Wait()
}

// fileName is the files' base name for an endpoint: a hash of its URL.
func fileName(u string) string {
	h := sha256.Sum256([]byte(u))
	return hex.EncodeToString(h[:8])
}

type endpoint struct {
	cfg   *Config
	url   string
	file  string // base path: .progress and .dead.jsonl
	after int64
}

type progress struct {
	URL    string `json:"url"`
	LastID int64  `json:"last_id"`
}

func (ep *endpoint) loadProgress(def int64) (int64, error) {
	b, err := os.ReadFile(ep.file + ".progress")
	if errors.Is(err, os.ErrNotExist) {
		return def, nil
	}
	if err != nil {
		return 0, err
	}
	var p progress
	if err := json.Unmarshal(b, &p); err != nil || p.URL != ep.url || p.LastID < 0 {
		return 0, fmt.Errorf("%w: %s.progress is corrupt; remove it to start the endpoint afresh", errdefs.ErrFailedPrecondition, ep.file)
	}
	return p.LastID, nil
}

func (ep *endpoint) saveProgress(id int64) error {
	b, _ := json.Marshal(progress{URL: ep.url, LastID: id})
	tmp := ep.file + ".progress.tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, ep.file+".progress")
}

func (ep *endpoint) run(ctx context.Context) {
	log := ep.cfg.Logger.With("webhook", ep.url)
	for ctx.Err() == nil {
		err := events.Follow(ctx, ep.cfg.Source, ep.after, func(ev api.Event) error {
			if err := ep.deliver(ctx, ev); err != nil {
				return err
			}
			ep.after = ev.ID
			if err := ep.saveProgress(ev.ID); err != nil {
				log.Warn("saving webhook progress", "err", err)
			}
			return nil
		})
		if ctx.Err() != nil {
			return
		}
		log.Warn("webhook delivery stopped; resuming", "err", err)
		sleep(ctx, ep.cfg.MinBackoff)
	}
}

// permanentError is a refusal retrying cannot change (a 4xx other than
// 408 and 429).
type permanentError struct{ status int }

func (e permanentError) Error() string { return "the endpoint answered " + strconv.Itoa(e.status) }

// deliver POSTs ev until the endpoint takes it, refuses it for good or the
// attempts run out; the last two leave a dead letter. Only ctx ending is
// an error: the event then goes again after a restart.
func (ep *endpoint) deliver(ctx context.Context, ev api.Event) error {
	body, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	backoff := ep.cfg.MinBackoff
	var last error
	attempt := 0
	for attempt < ep.cfg.MaxAttempts {
		attempt++
		last = ep.post(ctx, ev, body)
		if last == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var perm permanentError
		if errors.As(last, &perm) {
			break
		}
		if attempt < ep.cfg.MaxAttempts {
			if !sleep(ctx, backoff) {
				return ctx.Err()
			}
			backoff = min(backoff*2, ep.cfg.MaxBackoff)
		}
	}
	ep.cfg.Logger.Warn("webhook gave up on an event; dead-lettered", "webhook", ep.url, "event_id", ev.ID, "attempts", attempt, "err", last)
	ep.deadLetter(ev, attempt, last)
	return nil
}

func (ep *endpoint) post(ctx context.Context, ev api.Event, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, attemptTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "POST", ep.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "agentkernel-webhook")
	req.Header.Set(EventHeader, ev.Event)
	req.Header.Set(EventIDHeader, strconv.FormatInt(ev.ID, 10))
	req.Header.Set(SignatureHeader, Sign(ep.cfg.Secret, time.Now(), body))
	resp, err := ep.cfg.Client.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	case resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != 408 && resp.StatusCode != 429:
		return permanentError{resp.StatusCode}
	}
	return fmt.Errorf("the endpoint answered %s", resp.Status)
}

// DeadLetter is one event an endpoint never took.
type DeadLetter struct {
	At       time.Time `json:"at"`
	Attempts int       `json:"attempts"`
	Error    string    `json:"error"`
	Event    api.Event `json:"event"`
}

func (ep *endpoint) deadLetter(ev api.Event, attempts int, cause error) {
	path := ep.file + ".dead.jsonl"
	if st, err := os.Stat(path); err == nil && st.Size() > maxDeadLetters {
		ep.cfg.Logger.Error("webhook dead-letter file is full; dropping", "file", path, "event_id", ev.ID)
		return
	}
	b, _ := json.Marshal(DeadLetter{At: time.Now().UTC(), Attempts: attempts, Error: cause.Error(), Event: ev})
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		ep.cfg.Logger.Error("writing a webhook dead letter", "err", err)
		return
	}
	defer f.Close()
	f.Write(append(b, '\n'))
}

// DeadLettersFile is where the dead letters of the endpoint url are kept
// under dir (one JSON DeadLetter per line).
func DeadLettersFile(dir, url string) string {
	return filepath.Join(dir, fileName(url)+".dead.jsonl")
}

// Sign returns the signature header value of body sent at t.
func Sign(secret []byte, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + mac(secret, ts, body)
}

func mac(secret []byte, ts string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte("."))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// Verify checks a signature header against body: the HMAC must match and
// the timestamp lie within tolerance of now.
func Verify(secret []byte, header string, body []byte, now time.Time, tolerance time.Duration) error {
	var ts, sig string
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			sig = v
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || sig == "" {
		return errors.New("webhook: malformed signature header")
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return errors.New("webhook: signature timestamp out of tolerance")
	}
	want := mac(secret, ts, body)
	if !hmac.Equal([]byte(want), []byte(sig)) {
		return errors.New("webhook: signature mismatch")
	}
	return nil
}

// sleep waits d or until ctx ends; false when ctx ended.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
