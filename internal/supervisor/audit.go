package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agentkernel/agentkernel/internal/audit"
	"github.com/agentkernel/agentkernel/internal/netgw"
)

// Bounds of the sandbox's audit log.
const (
	// MaxAuditLog is the size at which AuditLogFile is rotated to
	// AuditLogFile + ".1" (which is replaced): the log keeps between one
	// and two times this much.
	MaxAuditLog = audit.DefaultMaxSize
	// auditQueue is how many records wait for the writer; beyond it
	// records are dropped, counted, and the count is written as an
	// audit.TypeDropped record (the gateway must never block on its log).
	auditQueue = 4096
	// TypeNetwork is the type of the gateway's records; their fields are
	// a netgw.Event's.
	TypeNetwork = "network"
)

// auditLog writes the sandbox's audit records (the gateway's events and
// what the daemon sends to POST /audit) to AuditLogFile, chained (see
// internal/audit). The supervisor is the file's only writer. emit may be
// called from any goroutine, also after close (the record is then
// dropped); close waits for the writer goroutine.
type auditLog struct {
	w *audit.Writer
	// sandbox is the name in the supervisor's own records; a claimed
	// pooled sandbox takes its new name (see TypeClaimed).
	sandbox   atomic.Pointer[string]
	sandboxID string
	log       *slog.Logger
	dropped   atomic.Int64
	done      chan struct{}

	// mu guards ch against a send after close.
	mu     sync.RWMutex
	ch     chan audit.Entry
	closed bool
}

func openAuditLog(path, sandbox, sandboxID string, log *slog.Logger) (*auditLog, error) {
	w, err := audit.Open(path, audit.Options{MaxSize: MaxAuditLog})
	if err != nil {
		return nil, err
	}
	a := &auditLog{w: w, sandboxID: sandboxID, log: log, ch: make(chan audit.Entry, auditQueue), done: make(chan struct{})}
	a.sandbox.Store(&sandbox)
	go a.write()
	return a, nil
}

// emitNet queues a gateway event; it never blocks.
func (a *auditLog) emitNet(e netgw.Event) {
	a.emit(audit.Entry{Time: e.Time, Type: TypeNetwork, Fields: e})
}

// emit queues e; it never blocks. The sandbox's name and id are filled in
// when e has none.
func (a *auditLog) emit(e audit.Entry) {
	if e.Sandbox == "" {
		e.Sandbox = *a.sandbox.Load()
	}
	if e.SandboxID == "" {
		e.SandboxID = a.sandboxID
	}
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

// write is the writer goroutine: it appends each record and, when the
// queue runs empty after drops, a record counting them.
func (a *auditLog) write() {
	defer close(a.done)
	defer a.w.Close()
	reported := int64(0)
	for e := range a.ch {
		if err := a.w.Append(e); err != nil {
			a.dropped.Add(1)
			a.log.Warn("writing the audit log", "err", err)
		}
		if len(a.ch) == 0 {
			if d := a.dropped.Load(); d > reported {
				a.w.Append(audit.Entry{Type: audit.TypeDropped, Sandbox: *a.sandbox.Load(), SandboxID: a.sandboxID, Fields: map[string]any{"count": d - reported}})
				a.log.Warn("audit records dropped", "total", d)
				reported = d
			}
		}
	}
}

// head is the last record written.
func (a *auditLog) head() audit.Head { return a.w.Head() }

// close stops accepting records, writes what is queued and closes the
// file. Idempotent.
func (a *auditLog) close() {
	a.mu.Lock()
	if !a.closed {
		a.closed = true
		close(a.ch)
	}
	a.mu.Unlock()
	<-a.done
}

// TypeClaimed is the type of the record the daemon sends when it hands a
// pooled sandbox to a caller (the claim's sandbox_created): its Sandbox
// becomes the name of the supervisor's own records from then on.
const TypeClaimed = "sandbox_created"

// AuditRecord is what the daemon sends to POST /audit: one record for the
// sandbox's log. Fields must be a JSON object.
type AuditRecord struct {
	// Time is when it happened (default: when the supervisor writes it).
	Time      time.Time       `json:"time,omitzero"`
	Type      string          `json:"type"`
	Sandbox   string          `json:"sandbox,omitempty"`
	SandboxID string          `json:"sandbox_id,omitempty"`
	Fields    json.RawMessage `json:"fields,omitempty"`
}

// maxAuditRecord bounds a POST /audit body.
const maxAuditRecord = audit.MaxLine

func (s *server) auditRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /audit", func(w http.ResponseWriter, r *http.Request) {
		var rec AuditRecord
		b, err := io.ReadAll(io.LimitReader(r.Body, maxAuditRecord+1))
		if err == nil && len(b) > maxAuditRecord {
			err = errors.New("record too large")
		}
		if err == nil {
			err = json.Unmarshal(b, &rec)
		}
		if err == nil && rec.Type == "" {
			err = errors.New("record without a type")
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		e := audit.Entry{Time: rec.Time, Type: rec.Type, Sandbox: rec.Sandbox, SandboxID: rec.SandboxID}
		if len(rec.Fields) > 0 {
			e.Fields = rec.Fields
		}
		if rec.Type == TypeClaimed && rec.Sandbox != "" {
			s.audit.sandbox.Store(&rec.Sandbox)
		}
		s.audit.emit(e)
		writeJSON(w, struct{}{})
	})
	mux.HandleFunc("GET /audit/head", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, s.audit.head())
	})
}

// Audit queues rec for the sandbox's audit log. It returns once the
// supervisor has queued it (not written it).
func (c *Client) Audit(ctx context.Context, rec AuditRecord) error {
	return c.callJSONOn(c.keepHTTP, ctx, "POST", "/audit", rec, nil)
}

// AuditHead is the last record the supervisor wrote to its audit log.
func (c *Client) AuditHead(ctx context.Context) (audit.Head, error) {
	var h audit.Head
	err := c.callJSON(ctx, "GET", "/audit/head", nil, &h)
	return h, err
}
