package supervisor

import (
	"bufio"
	"encoding/json"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/agentkernel/agentkernel/internal/netgw"
)

// Bounds of the network audit log.
const (
	// MaxNetworkLog is the size at which network.log is rotated to
	// network.log.1 (which is replaced): the log keeps between one and two
	// times this much.
	MaxNetworkLog = 8 << 20
	// auditQueue is how many events wait for the writer; beyond it events
	// are dropped and counted (the gateway must never block on its log).
	auditQueue = 4096
)

// auditLog writes a gateway's events as JSON lines to NetworkLogFile. It is
// the file's only writer. emit may be called from any goroutine, also after
// close (the event is then dropped); close waits for the writer.
type auditLog struct {
	path    string
	log     *slog.Logger
	dropped atomic.Int64
	done    chan struct{}

	// mu guards ch against a send after close.
	mu     sync.RWMutex
	ch     chan netgw.Event
	closed bool
}

func openAuditLog(path string, log *slog.Logger) (*auditLog, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, err
	}
	a := &auditLog{path: path, log: log, ch: make(chan netgw.Event, auditQueue), done: make(chan struct{})}
	go a.write(f)
	return a, nil
}

// emit queues e; it never blocks.
func (a *auditLog) emit(e netgw.Event) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	if a.closed {
		return
	}
	select {
	case a.ch <- e:
	default:
		a.dropped.Add(1)
	}
}

// write is the writer goroutine: it appends each event, flushes when the
// queue is empty, and rotates the file when it grows past MaxNetworkLog.
func (a *auditLog) write(f *os.File) {
	defer close(a.done)
	size := int64(0)
	if fi, err := f.Stat(); err == nil {
		size = fi.Size()
	}
	w := bufio.NewWriterSize(f, 64<<10)
	defer func() {
		w.Flush()
		f.Close()
	}()
	reported := int64(0)
	for e := range a.ch {
		b, err := json.Marshal(e)
		if err != nil {
			continue
		}
		b = append(b, '\n')
		if size+int64(len(b)) > MaxNetworkLog {
			w.Flush()
			f.Close()
			if err := os.Rename(a.path, a.path+".1"); err != nil {
				a.log.Warn("rotating the network log", "err", err)
			}
			nf, err := os.OpenFile(a.path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|unix.O_NOFOLLOW, 0o600)
			if err != nil {
				a.log.Error("reopening the network log; dropping events", "err", err)
				for range a.ch {
					a.dropped.Add(1)
				}
				f = nil
				return
			}
			f, size = nf, 0
			w.Reset(f)
		}
		n, _ := w.Write(b)
		size += int64(n)
		if len(a.ch) == 0 {
			w.Flush()
			if d := a.dropped.Load(); d > reported {
				a.log.Warn("network audit events dropped", "total", d)
				reported = d
			}
		}
	}
}

// close stops accepting events, writes what is queued and closes the file.
// Idempotent.
func (a *auditLog) close() {
	a.mu.Lock()
	if !a.closed {
		a.closed = true
		close(a.ch)
	}
	a.mu.Unlock()
	<-a.done
}
