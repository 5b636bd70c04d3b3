package api

import "time"

// SnapshotFormat is the version of the snapshot metadata record this
// build writes and understands; restoring a snapshot of another format
// is refused.
const SnapshotFormat = 1

// SnapshotInfo describes a snapshot: a commit of a sandbox's changes,
// stored as an image, plus where it came from; a memory snapshot also has
// a checkpoint of the sandbox's memory and processes.
type SnapshotInfo struct {
	Name          string    `json:"name"`
	SourceSandbox string    `json:"sandbox"`
	SourceBackend string    `json:"backend"`
	Image         string    `json:"image"`
	ImageID       string    `json:"image_id"`
	Size          int64     `json:"size"`
	CreatedAt     time.Time `json:"created_at"`
	Version       string    `json:"agentkernel_version"`
	Format        int       `json:"format"`
	// Kind is "filesystem" or "memory".
	Kind string `json:"kind"`
	// Memory is the digest of a memory snapshot's checkpoint (the sha256
	// of the manifest of its files); empty for a filesystem snapshot.
	Memory string `json:"memory,omitempty"`
}

// TakeSnapshotRequest is the body of POST /snapshots.
type TakeSnapshotRequest struct {
	Sandbox string `json:"sandbox"`
	// Name defaults to SANDBOX-snap-UNIXTIME.
	Name string `json:"name,omitempty"`
	// Memory asks for a memory snapshot: the sandbox's processes and
	// memory too, so that a restore continues them. Only backends whose
	// capabilities say checkpoint take one (gvisor, through runsc
	// checkpoint); others refuse, naming the backend and why. The sandbox
	// is paused for the checkpoint and its files captured meanwhile;
	// connections to its agent open at the time (running execs, attached
	// shells) end, background commands go on. Secrets are never in it.
	// A memory snapshot restores on its own backend only.
	Memory bool `json:"memory,omitempty"`
}

// RestoreSnapshotRequest is the body of POST /snapshots/{name}/restore.
type RestoreSnapshotRequest struct {
	// As names the new sandbox; default the snapshot's name.
	As string `json:"as,omitempty"`
	// Backend defaults to the snapshot's source backend.
	Backend string `json:"backend,omitempty"`
	// TTL is the new sandbox's own ("30m"); empty means no expiry. The
	// source sandbox's TTL is never inherited.
	TTL string `json:"ttl,omitempty"`
}

// ForkSandboxRequest is the body of POST /sandboxes/{name}/fork.
type ForkSandboxRequest struct {
	Count  int    `json:"count,omitempty"`
	Prefix string `json:"prefix,omitempty"`
}

// ForkSandboxResponse answers POST /sandboxes/{name}/fork.
type ForkSandboxResponse struct {
	Snapshot  SnapshotInfo  `json:"snapshot"`
	Sandboxes []SandboxInfo `json:"sandboxes"`
	Note      string        `json:"note"`
}
