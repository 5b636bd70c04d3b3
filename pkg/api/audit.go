package api

import (
	"encoding/json"
	"time"
)

// AuditLog is what GET /audit returns: the last records of one audit log
// (the global one, or a sandbox's with ?sandbox=), oldest first. Each
// record is the JSON object as written: seq, time, type, sandbox,
// sandbox_id, the type's fields, prev and hash.
type AuditLog struct {
	// Path is the log's current file on the daemon's host.
	Path    string            `json:"path"`
	Records []json.RawMessage `json:"records"`
}

// AuditRecordHeader is the part of an audit record every record has.
type AuditRecordHeader struct {
	Seq       int64     `json:"seq"`
	Time      time.Time `json:"time"`
	Type      string    `json:"type"`
	Sandbox   string    `json:"sandbox,omitempty"`
	SandboxID string    `json:"sandbox_id,omitempty"`
}

// AuditVerification is what GET /audit/verify returns. A broken log is
// not an error of the request: OK is false and Broken names the first
// record that does not verify.
type AuditVerification struct {
	OK       bool     `json:"ok"`
	Path     string   `json:"path"`
	Files    []string `json:"files"`
	Records  int      `json:"records"`
	FirstSeq int64    `json:"first_seq,omitempty"`
	LastSeq  int64    `json:"last_seq,omitempty"`
	LastHash string   `json:"last_hash,omitempty"`
	// Live says the log's writer (the daemon, or the sandbox's
	// supervisor) was asked for its last record, so a cut tail is found.
	Live   bool        `json:"live"`
	Broken *AuditBreak `json:"broken,omitempty"`
}

// AuditBreak is the first record of a log that does not verify.
type AuditBreak struct {
	File   string `json:"file"`
	Line   int    `json:"line"`
	Seq    int64  `json:"seq"`
	Reason string `json:"reason"`
}
