package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/agentkernel/agentkernel/pkg/api"
)

// sseKeepalive is how often a quiet stream sends a comment, so proxies and
// idle timers keep the connection.
const sseKeepalive = 15 * time.Second

// sseWriter writes Server-Sent Events, flushing each. It is used by one
// goroutine at a time.
type sseWriter struct {
	w  http.ResponseWriter
	rc *http.ResponseController
}

func (e *sseWriter) event(name string, data any) error {
	b, err := json.Marshal(data)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(e.w, "event: %s\ndata: %s\n\n", name, b); err != nil {
		return err
	}
	return e.rc.Flush()
}

// eventID writes an event with an id line, which a reconnecting client
// sends back as Last-Event-ID.
func (e *sseWriter) eventID(id int64, name string, data any) error {
	b, err := json.Marshal(data)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(e.w, "id: %d\nevent: %s\ndata: %s\n\n", id, name, b); err != nil {
		return err
	}
	return e.rc.Flush()
}

func (e *sseWriter) comment(text string) error {
	if _, err := fmt.Fprintf(e.w, ": %s\n\n", text); err != nil {
		return err
	}
	return e.rc.Flush()
}

// sseStream is the one server side of every streaming response (run,
// image pull, image build): events and keepalive comments serialised, and
// a failed write (the client is gone) cancelling the request's work. It
// starts at the first event, so that a request refused before anything
// happened can still be answered as JSON with its status; start begins it
// at once. Its methods are safe for concurrent use.
type sseStream struct {
	w      http.ResponseWriter
	cancel context.CancelFunc

	mu      sync.Mutex
	sse     *sseWriter // nil until the stream starts
	stopped chan struct{}
	done    sync.WaitGroup // the keepalive goroutine
}

func newSSEStream(w http.ResponseWriter, cancel context.CancelFunc) *sseStream {
	return &sseStream{w: w, cancel: cancel, stopped: make(chan struct{})}
}

// start sends the response header, if not yet sent.
func (b *sseStream) start() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.startLocked()
}

func (b *sseStream) startLocked() {
	if b.sse != nil {
		return
	}
	h := b.w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	b.w.WriteHeader(http.StatusOK)
	b.sse = &sseWriter{w: b.w, rc: http.NewResponseController(b.w)}
	b.done.Add(1)
	go b.keepalive()
}

// send writes one event, starting the stream first if needed. A write that
// fails cancels the work and is returned.
func (b *sseStream) send(event string, data any) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.startLocked()
	err := b.sse.event(event, data)
	if err != nil {
		b.cancel()
	}
	return err
}

// sendID is send with an event id.
func (b *sseStream) sendID(id int64, event string, data any) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.startLocked()
	err := b.sse.eventID(id, event, data)
	if err != nil {
		b.cancel()
	}
	return err
}

// streamError sends err as an "error" event carrying its message and class.
func (s *server) streamError(b *sseStream, r *http.Request, event string, err error) {
	status, code, err := statusOf(err)
	if status >= 500 {
		s.log.Error("stream failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	_ = b.send(event, api.ErrorEvent{Message: boundMessage(err.Error()), Code: code})
}

func (b *sseStream) started() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.sse != nil
}

func (b *sseStream) keepalive() {
	defer b.done.Done()
	t := time.NewTicker(sseKeepalive)
	defer t.Stop()
	for {
		select {
		case <-b.stopped:
			return
		case <-t.C:
			b.mu.Lock()
			err := b.sse.comment("keepalive")
			b.mu.Unlock()
			if err != nil {
				b.cancel()
				return
			}
		}
	}
}

// close stops the keepalive and waits for it. Call it once, when the
// handler is done with the stream.
func (b *sseStream) close() {
	close(b.stopped)
	b.done.Wait()
}
