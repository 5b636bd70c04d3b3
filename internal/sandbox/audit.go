package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/agentkernel/agentkernel/internal/audit"
	"github.com/agentkernel/agentkernel/internal/supervisor"
	"github.com/agentkernel/agentkernel/pkg/api"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// Bounds of audit queries and forwarding.
const (
	// DefaultAuditLimit and MaxAuditLimit bound the records one GET
	// /audit returns.
	DefaultAuditLimit = 200
	MaxAuditLimit     = 10000
	// auditForwardQueue is how many records wait to be sent to their
	// sandbox's supervisor; beyond it they reach only the global log.
	auditForwardQueue = 1024
	// auditForwardTimeout bounds one POST /audit to a supervisor.
	auditForwardTimeout = 2 * time.Second
	// auditHeadTimeout bounds asking a supervisor for its log's head.
	auditHeadTimeout = 2 * time.Second
	// MaxKeptSandboxLogs bounds the logs of removed sandboxes kept in
	// Layout.AuditDir()/sandboxes: beyond it the oldest go, so that a
	// stream of ephemeral sandboxes (POST /run) cannot fill the disk.
	MaxKeptSandboxLogs = 1000
)

// sandboxAuditTypes are the events that also go to the sandbox's own log
// (the global log has every event). Exec is recorded once, at its end.
// sandbox_created reaches a supervisor only for a claimed pooled sandbox
// (others have none yet), which then names its records after the claim
// (supervisor.TypeClaimed).
var sandboxAuditTypes = map[string]bool{"command_finished": true, "file_written": true, "file_deleted": true, "command_detached": true,
	supervisor.TypeClaimed: true}

// forwarded is a record on its way to a supervisor.
type forwarded struct {
	uuid string
	rec  supervisor.AuditRecord
}

// audit writes an event to the global log (Config.Audit) and, for the
// types in sandboxAuditTypes, queues it for the sandbox's own log. It
// never blocks on a supervisor.
func (m *Manager) audit(uuid, name, ev string, raw json.RawMessage) {
	now := time.Now()
	e := audit.Entry{Time: now, Type: ev, Sandbox: name, SandboxID: uuid}
	if len(raw) > 0 {
		e.Fields = raw
	}
	if m.cfg.Audit == nil {
		return
	}
	if err := m.cfg.Audit.Append(e); err != nil {
		m.log.Warn("writing the audit log", "sandbox", name, "event", ev, "err", err)
	}
	if !sandboxAuditTypes[ev] {
		return
	}
	select {
	case m.auditQ <- forwarded{uuid, supervisor.AuditRecord{Time: now, Type: ev, Sandbox: name, SandboxID: uuid, Fields: raw}}:
	default:
		if n := m.auditUnforwarded.Add(1); n%100 == 1 {
			m.log.Warn("audit forwarding queue full; records are only in the global log", "sandbox", name, "event", ev, "total", n)
		}
	}
}

// forwardAudit sends queued records to their supervisors until the
// Manager closes. A supervisor that is gone loses nothing the global log
// does not hold. Started by Recover.
func (m *Manager) forwardAudit() {
	defer m.wg.Done()
	for {
		select {
		case <-m.ctx.Done():
			return
		case f := <-m.auditQ:
			l := m.getLive(f.uuid)
			if l == nil {
				continue
			}
			ctx, cancel := context.WithTimeout(m.ctx, auditForwardTimeout)
			if err := l.sup.Audit(ctx, f.rec); err != nil {
				m.log.Warn("sending an audit record to the supervisor", "sandbox", f.rec.Sandbox, "event", f.rec.Type, "err", err)
			}
			cancel()
		}
	}
}

// envNames returns the names of env's KEY=VALUE entries: values, which may
// hold secret placeholders or secrets, are never audited.
func envNames(env []string) []string {
	if len(env) == 0 {
		return nil
	}
	out := make([]string, 0, len(env))
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		out = append(out, k)
	}
	return out
}

// keepSandboxAudit moves a removed sandbox's log out of its state
// directory to Layout.RemovedSandboxAudit, so it can still be read and
// verified.
func (m *Manager) keepSandboxAudit(uuid, name string) {
	if strings.HasPrefix(name, pooledNamePrefix) {
		return
	}
	from := filepath.Join(m.stateDir(uuid), supervisor.AuditLogFile)
	if _, err := os.Lstat(from); err != nil {
		return
	}
	to := m.cfg.Layout.RemovedSandboxAudit(name, uuid)
	if err := audit.Move(from, to); err != nil {
		m.log.Error("keeping the removed sandbox's audit log", "sandbox", name, "err", err)
		return
	}
	pruneKeptAudit(filepath.Dir(to), MaxKeptSandboxLogs)
}

// pruneKeptAudit removes the oldest logs (by modification time, each with
// its .1) of dir beyond max.
func pruneKeptAudit(dir string, max int) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	type kept struct {
		path string
		mod  time.Time
	}
	var logs []kept
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".jsonl") {
			continue
		}
		if fi, err := e.Info(); err == nil {
			logs = append(logs, kept{filepath.Join(dir, e.Name()), fi.ModTime()})
		}
	}
	if len(logs) <= max {
		return
	}
	sort.Slice(logs, func(i, j int) bool { return logs[i].mod.Before(logs[j].mod) })
	for _, l := range logs[:len(logs)-max] {
		os.Remove(l.path + ".1")
		os.Remove(l.path)
	}
}

// auditLog is one log to read: its current file, its files oldest first,
// and, when its writer is alive, the writer's head.
type auditLog struct {
	path  string
	files []string
	head  *audit.Head
	live  bool
}

// findAuditLog locates the global log (sandbox "") or a sandbox's: the
// live sandbox's state directory, else the newest kept log of a removed
// sandbox of that name.
func (m *Manager) findAuditLog(ctx context.Context, sandbox string) (auditLog, error) {
	if sandbox == "" {
		if m.cfg.Audit == nil {
			return auditLog{}, fmt.Errorf("%w: the daemon keeps no audit log", errdefs.ErrFailedPrecondition)
		}
		h := m.cfg.Audit.Head()
		p := m.cfg.Audit.Path()
		return auditLog{path: p, files: audit.Files(p), head: &h, live: true}, nil
	}
	rec, err := m.lookup(ctx, sandbox)
	if err == nil {
		p := filepath.Join(m.stateDir(rec.UUID), supervisor.AuditLogFile)
		lg := auditLog{path: p, files: audit.Files(p)}
		if l := m.getLive(rec.UUID); l != nil {
			hctx, cancel := context.WithTimeout(ctx, auditHeadTimeout)
			h, err := l.sup.AuditHead(hctx)
			cancel()
			if err == nil {
				lg.head, lg.live = &h, true
			}
		}
		return lg, nil
	}
	if !errors.Is(err, errdefs.ErrNotFound) {
		return auditLog{}, err
	}
	// Removed: audit/sandboxes/<name>-<uuid>.jsonl; the newest wins.
	pat := m.cfg.Layout.RemovedSandboxAudit(sandbox, "*")
	matches, _ := filepath.Glob(pat)
	var best string
	var bestT time.Time
	for _, p := range matches {
		// The name must match exactly: "dev-<uuid>", not "dev-2-<uuid>".
		rest := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(p), sandbox+"-"), ".jsonl")
		if len(rest) != 36 {
			continue
		}
		if fi, err := os.Stat(p); err == nil && fi.ModTime().After(bestT) {
			best, bestT = p, fi.ModTime()
		}
	}
	if best == "" {
		return auditLog{}, err
	}
	return auditLog{path: best, files: audit.Files(best)}, nil
}

// AuditLog returns the last limit records (DefaultAuditLimit if 0) at or
// after since of the global audit log, or of a sandbox's, oldest first.
func (m *Manager) AuditLog(ctx context.Context, sandbox string, since time.Time, limit int) (api.AuditLog, error) {
	if limit < 0 || limit > MaxAuditLimit {
		return api.AuditLog{}, fmt.Errorf("%w: limit %d: must be 0 to %d", errdefs.ErrInvalidArgument, limit, MaxAuditLimit)
	}
	if limit == 0 {
		limit = DefaultAuditLimit
	}
	lg, err := m.findAuditLog(ctx, sandbox)
	if err != nil {
		return api.AuditLog{}, err
	}
	recs, err := tailAudit(lg.files, limit, func(r audit.Record) bool { return !r.Time.Before(since) })
	if err != nil {
		return api.AuditLog{}, err
	}
	out := api.AuditLog{Path: lg.path, Records: make([]json.RawMessage, 0, len(recs))}
	for _, r := range recs {
		out.Records = append(out.Records, r.Line)
	}
	return out, nil
}

// tailAudit returns the last n records of files that keep accepts.
func tailAudit(files []string, n int, keep func(audit.Record) bool) ([]audit.Record, error) {
	ring := make([]audit.Record, 0, min(n, 1024))
	next := 0
	err := audit.Read(func(r audit.Record) bool {
		if !keep(r) {
			return true
		}
		if len(ring) < n {
			ring = append(ring, r)
		} else {
			ring[next] = r
			next = (next + 1) % n
		}
		return true
	}, files...)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	return append(ring[next:], ring[:next]...), nil
}

// VerifyAudit checks the global audit log, or a sandbox's (see
// audit.Verify). A broken log is reported in the result, not as an error.
func (m *Manager) VerifyAudit(ctx context.Context, sandbox string) (api.AuditVerification, error) {
	lg, err := m.findAuditLog(ctx, sandbox)
	if err != nil {
		return api.AuditVerification{}, err
	}
	out := api.AuditVerification{Path: lg.path, Files: lg.files, Live: lg.live}
	if len(lg.files) == 0 {
		return out, fmt.Errorf("%w: no audit log at %s", errdefs.ErrNotFound, lg.path)
	}
	res, err := audit.Verify(lg.head, lg.files...)
	out.Records, out.FirstSeq, out.LastSeq, out.LastHash = res.Records, res.First, res.Last, res.LastHash
	var b *audit.Broken
	switch {
	case errors.As(err, &b):
		out.Broken = &api.AuditBreak{File: b.File, Line: b.Line, Seq: b.Seq, Reason: b.Reason}
	case err != nil:
		return out, err
	default:
		out.OK = true
	}
	return out, nil
}
