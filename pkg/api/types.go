// Package api holds the JSON wire types of agentkernel's HTTP API. They are a
// promise to outside clients: field names follow upstream agentkernel so its
// published SDKs (npm "agentkernel", PyPI "agentkernel-sdk") work unchanged.
// Additions beyond upstream are optional fields that old clients ignore.
//
// Both internal/httpapi (the server) and pkg/client (the Go SDK) use these types;
// request types are decoded strictly, so a field added here is the only way a
// request may carry it.
package api

import "time"

// Envelope wraps every JSON response: {"success":…,"data":…,"error":…}.
// Code is an addition: the error class (see pkg/errdefs), for clients that
// want more than the HTTP status.
type Envelope struct {
	Success bool   `json:"success"`
	Data    any    `json:"data,omitempty"`
	Error   string `json:"error,omitempty"`
	Code    string `json:"code,omitempty"`
	// ExitCode and Output are set, as upstream does, on the 409 of /run
	// and /sandboxes/{name}/exec for a command that exited non-zero (Code
	// CodeCommandFailed); Data then holds the whole ExecResponse.
	ExitCode *int    `json:"exit_code,omitempty"`
	Output   *string `json:"output,omitempty"`
}

// CodeCommandFailed is Envelope.Code of a command that ran and exited
// non-zero: an answer, not an error of the API (pkg/client returns Data).
const CodeCommandFailed = "command_failed"

// Sandbox statuses. Upstream clients know "running" and "stopped"; the others
// are transient or terminal states of ours.
const (
	StatusCreated  = "created"
	StatusStarting = "starting"
	StatusRunning  = "running"
	StatusStopping = "stopping"
	StatusStopped  = "stopped"
	StatusPaused   = "paused"
	StatusFailed   = "failed"
)

// SandboxInfo describes one sandbox (GET /sandboxes/{name}).
type SandboxInfo struct {
	Name      string            `json:"name"`
	UUID      string            `json:"uuid"`
	Status    string            `json:"status"`
	Backend   string            `json:"backend"`
	Image     string            `json:"image,omitempty"`
	Profile   string            `json:"profile,omitempty"`
	VCPUs     int               `json:"vcpus,omitempty"`
	MemoryMB  int               `json:"memory_mb,omitempty"`
	Labels    map[string]string `json:"labels,omitempty"`
	CreatedAt time.Time         `json:"created_at"`
	ExpiresAt *time.Time        `json:"expires_at,omitempty"`
	// Network says what network the sandbox has: "gateway" (its own
	// network gateway, see GET /sandboxes/{name}/network), "none" or
	// "loopback" (lo only).
	Network string `json:"network,omitempty"`
	// Accelerator is how a microVM sandbox's CPU is virtualised while it
	// runs: "kvm" (hardware) or "tcg" (software emulation, much slower).
	Accelerator string `json:"accelerator,omitempty"`
	// Error is why the sandbox failed, when Status is "failed".
	Error string `json:"error,omitempty"`
	// Ephemeral sandboxes belong to one run and are removed with it.
	Ephemeral bool `json:"ephemeral,omitempty"`
	// DiskMB is the size of the sandbox's writable disk; 0 for a sandbox
	// made before disks had a size, whose writes are not limited.
	DiskMB int `json:"disk_mb,omitempty"`
	// Disk is the disk's use, asked of the running sandbox (absent when
	// it is not running or did not answer in time).
	Disk *DiskUsage `json:"disk,omitempty"`
	// Volumes are the named volumes the sandbox mounts, as the create
	// request wrote them: "NAME:/PATH", with ":ro" or ":shared".
	Volumes []string `json:"volumes,omitempty"`
}

// DiskUsage is how full a running sandbox's writable disk is. Full means
// writes fail with "No space left on device" (ENOSPC): the sandbox keeps
// running, and deleting files makes room again.
type DiskUsage struct {
	SizeMB  int64 `json:"size_mb"`  // the filesystem's size (a little under DiskMB)
	UsedMB  int64 `json:"used_mb"`  // in use
	AvailMB int64 `json:"avail_mb"` // still writable
	Full    bool  `json:"full"`
	// ReadOnly: a write to the disk failed under the sandbox (its host's
	// filesystem filled up) and ext4 made it read-only until a restart.
	ReadOnly bool `json:"read_only,omitempty"`
}

// DiskFull is how the CLI and the docs name a sandbox whose disk is full.
const DiskFull = "disk full"

// DiskReadOnly names a sandbox whose disk was made read-only under it.
const DiskReadOnly = "disk read-only"

// CreateSandboxRequest is the body of POST /sandboxes.
//
// SourceURL, SourceRef, Volumes, Secrets and SecretFiles are sent by
// upstream's clients; a non-empty value that this server cannot honour is
// refused with a clear error rather than ignored. SourceURL (http or
// https) is cloned by the started sandbox into /workspace, at SourceRef
// (a branch, tag or commit) when given, through its gateway.
//
// Secrets bind vault secrets to hosts (upstream's syntax): "KEY:host",
// "KEY:host:header", or "KEY=value:host" with the value inline. The
// sandbox's variable KEY then holds a placeholder and the network gateway
// adds the real value to HTTPS requests to host (Authorization: Bearer by
// default, x-api-key for api.anthropic.com). Network and Publish are
// additions (see NetworkPolicy).
type CreateSandboxRequest struct {
	Name     string `json:"name"`
	Image    string `json:"image,omitempty"`
	Profile  string `json:"profile,omitempty"`
	VCPUs    int    `json:"vcpus,omitempty"`
	MemoryMB int    `json:"memory_mb,omitempty"`
	// DiskMB is the size of the sandbox's writable disk, which holds all
	// it writes (/tmp included); default 10240. Writes past it fail with
	// "No space left on device".
	DiskMB int               `json:"disk_mb,omitempty"`
	Labels map[string]string `json:"labels,omitempty"`
	// TTL is a duration such as "30m" or "2h"; empty means no expiry.
	TTL string `json:"ttl,omitempty"`
	// Dirs are host directories mounted into the sandbox: "HOST:SANDBOX[:ro]".
	Dirs    []string `json:"dirs,omitempty"`
	Backend string   `json:"backend,omitempty"`
	// Start defaults to true: a created sandbox is running, as upstream.
	Start *bool `json:"start,omitempty"`
	// NoPool creates the sandbox cold even when a warm pool matches.
	NoPool bool `json:"no_pool,omitempty"`
	// Ephemeral marks a sandbox owned by a single run.
	Ephemeral bool `json:"ephemeral,omitempty"`

	// Network adjusts the egress policy the profile gives; nil keeps it.
	Network *NetworkPolicy `json:"network,omitempty"`
	// Publish forwards ports of the host's loopback to the sandbox:
	// "HOSTPORT:SANDBOXPORT" (HOSTPORT 0 picks a free port).
	Publish []string `json:"publish,omitempty"`

	SourceURL   string   `json:"source_url,omitempty"`
	SourceRef   string   `json:"source_ref,omitempty"`
	Volumes     []string `json:"volumes,omitempty"`
	Secrets     []string `json:"secrets,omitempty"`
	SecretFiles []string `json:"secret_files,omitempty"`
}

// ExtendRequest is the body of POST /sandboxes/{name}/extend.
type ExtendRequest struct {
	By string `json:"by"`
}

// ExtendResponse answers POST /sandboxes/{name}/extend.
type ExtendResponse struct {
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

// ExecRequest is the body of POST /sandboxes/{name}/exec and of
// …/exec/detach, and the first message of the streaming exec WebSocket.
type ExecRequest struct {
	Command []string `json:"command"`
	// Env entries are KEY=VALUE.
	Env     []string `json:"env,omitempty"`
	Workdir string   `json:"workdir,omitempty"`
	// User is a name or uid[:gid] inside the sandbox; empty means the image's.
	User string `json:"user,omitempty"`
	// Sudo is upstream's "run as root"; it sets User to "0" when User is empty.
	Sudo bool `json:"sudo,omitempty"`
	// Timeout is a duration ("30s"); the process is killed when it passes
	// and the exit code is 124.
	Timeout string `json:"timeout,omitempty"`
	// Stdin is the whole standard input for a non-streaming exec (utf8).
	Stdin string `json:"stdin,omitempty"`
	// TTY, Rows and Cols apply to the streaming exec only.
	TTY  bool   `json:"tty,omitempty"`
	Rows uint16 `json:"rows,omitempty"`
	Cols uint16 `json:"cols,omitempty"`
	// Receipt asks a non-streaming exec for a signed receipt of the run.
	Receipt bool `json:"receipt,omitempty"`
}

// ExecResponse answers POST /sandboxes/{name}/exec. Output is stdout and
// stderr interleaved in arrival order (upstream's field); Stdout and Stderr
// are the same bytes kept apart.
type ExecResponse struct {
	Output   string `json:"output"`
	Stdout   string `json:"stdout"`
	Stderr   string `json:"stderr"`
	ExitCode int    `json:"exit_code"`
	// TimedOut is true when the timeout killed the process.
	TimedOut bool `json:"timed_out,omitempty"`
	// Error explains an exit code the sandbox chose (127: not found, 126:
	// not executable, 124: timeout).
	Error string `json:"error,omitempty"`
	// Receipt is the signed receipt the request asked for.
	Receipt *SignedReceipt `json:"receipt,omitempty"`
}

// RunRequest is the body of POST /run and /run/stream: an ephemeral sandbox
// that lives for one command. Fast is upstream's pool switch; it is accepted
// and has no effect (we never share a warm sandbox across callers).
type RunRequest struct {
	Command  []string `json:"command"`
	Image    string   `json:"image,omitempty"`
	Profile  string   `json:"profile,omitempty"`
	Fast     *bool    `json:"fast,omitempty"`
	Env      []string `json:"env,omitempty"`
	Workdir  string   `json:"workdir,omitempty"`
	Timeout  string   `json:"timeout,omitempty"`
	Backend  string   `json:"backend,omitempty"`
	MemoryMB int      `json:"memory_mb,omitempty"`
	VCPUs    int      `json:"vcpus,omitempty"`
	DiskMB   int      `json:"disk_mb,omitempty"`
	Stdin    string   `json:"stdin,omitempty"`
	// Network adjusts the egress policy the profile gives, as in
	// CreateSandboxRequest (an addition to upstream's fields).
	Network *NetworkPolicy `json:"network,omitempty"`
}

// RunResponse answers POST /run. It is an ExecResponse plus the name of the
// sandbox that ran it (already removed).
type RunResponse struct {
	ExecResponse
	Sandbox string `json:"sandbox,omitempty"`
}

// BatchRunRequest is the body of POST /batch/run.
type BatchRunRequest struct {
	Commands []RunRequest `json:"commands"`
}

// BatchResult is one entry of BatchRunResponse, in request order.
type BatchResult struct {
	Output   *string `json:"output"`
	Error    *string `json:"error"`
	ExitCode *int    `json:"exit_code,omitempty"`
}

// BatchRunResponse answers POST /batch/run.
type BatchRunResponse struct {
	Results []BatchResult `json:"results"`
}

// Server-Sent Event names of /run/stream, in the order they are sent:
// started, then any number of output, then exactly one of done or error.
const (
	EventStarted  = "started"
	EventProgress = "progress"
	EventOutput   = "output"
	EventDone     = "done"
	EventError    = "error"
)

// StartedEvent is the data of "started".
type StartedEvent struct {
	Sandbox string `json:"sandbox"`
}

// OutputEvent is the data of "output". Stream is "stdout" or "stderr".
type OutputEvent struct {
	Stream string `json:"stream"`
	Data   string `json:"data"`
}

// DoneEvent is the data of "done".
type DoneEvent struct {
	ExitCode int  `json:"exit_code"`
	Success  bool `json:"success"`
}

// ErrorEvent is the data of "error".
type ErrorEvent struct {
	Message string `json:"message"`
	// Code is the error's class, as in the envelope ("not_found",
	// "permission_denied", …); an addition upstream clients ignore.
	Code string `json:"code,omitempty"`
}

// Detached command statuses.
const (
	DetachedRunning   = "running"
	DetachedCompleted = "completed"
	DetachedFailed    = "failed"
)

// DetachedCommand describes a background command (…/exec/detached/{id}).
type DetachedCommand struct {
	ID        string    `json:"id"`
	Sandbox   string    `json:"sandbox"`
	Command   []string  `json:"command"`
	PID       int       `json:"pid"`
	Status    string    `json:"status"`
	ExitCode  *int      `json:"exit_code"`
	StartedAt time.Time `json:"started_at"`
}

// DetachedLogs answers …/exec/detached/{id}/logs.
type DetachedLogs struct {
	Stdout string `json:"stdout"`
	Stderr string `json:"stderr"`
}

// FileWriteRequest is the JSON body of PUT /sandboxes/{name}/files/{path}.
// Encoding is "utf8" (default) or "base64". Mode is an addition (octal
// string such as "0644").
type FileWriteRequest struct {
	Content  string `json:"content"`
	Encoding string `json:"encoding,omitempty"`
	Mode     string `json:"mode,omitempty"`
}

// FileReadResponse answers GET /sandboxes/{name}/files/{path} with JSON.
// Content that is not valid UTF-8 comes back base64-encoded.
type FileReadResponse struct {
	Content  string `json:"content"`
	Encoding string `json:"encoding"`
	Size     int64  `json:"size"`
}

// BatchFileWriteRequest is the body of POST /sandboxes/{name}/files:
// path → utf8 content.
type BatchFileWriteRequest struct {
	Files map[string]string `json:"files"`
}

// BatchFileWriteResponse answers POST /sandboxes/{name}/files.
type BatchFileWriteResponse struct {
	Written int `json:"written"`
}

// FileInfo describes one entry of a directory listing
// (GET /sandboxes/{name}/files/{path}?list=1).
type FileInfo struct {
	Name    string    `json:"name"`
	Size    int64     `json:"size"`
	Mode    string    `json:"mode"`
	IsDir   bool      `json:"is_dir"`
	ModTime time.Time `json:"mod_time"`
	// Link is the target when the entry is a symbolic link.
	Link string `json:"link,omitempty"`
}

// LogEvent is one entry of GET /sandboxes/{name}/logs (the sandbox's audit
// trail).
type LogEvent struct {
	Timestamp time.Time      `json:"timestamp"`
	Event     string         `json:"event"`
	Sandbox   string         `json:"sandbox"`
	Details   map[string]any `json:"details,omitempty"`
}

// ImageInfo describes one image in the store (GET /images).
type ImageInfo struct {
	Name      string    `json:"name"`
	ID        string    `json:"id"`
	Size      int64     `json:"size"`
	CreatedAt time.Time `json:"created_at"`
	Source    string    `json:"source,omitempty"`
}

// ImportImageRequest is the body of POST /images/import: a host directory or
// tarball the daemon reads (the daemon runs as the same user as the CLI).
type ImportImageRequest struct {
	Name string `json:"name"`
	Path string `json:"path"`
}

// DoctorCheck is one line of GET /doctor.
// BackendInfo answers GET /backends: a backend this daemon offers and what
// it can do. An operation a backend cannot do is refused naming it.
type BackendInfo struct {
	Name    string `json:"name"`
	Default bool   `json:"default,omitempty"`
	// Isolation names the boundary: container, gvisor or microvm.
	Isolation      string `json:"isolation"`
	Pause          bool   `json:"pause"`
	Checkpoint     bool   `json:"checkpoint"`
	NetworkGateway bool   `json:"network_gateway"`
	// Platform is how the backend runs its sandboxes where it has a
	// choice: gVisor's platform ("systrap", "ptrace"). Empty otherwise.
	Platform string `json:"platform,omitempty"`
}

type DoctorCheck struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
	Fix    string `json:"fix,omitempty"`
}

// Event is one lifecycle event of a sandbox as GET /events streams it and
// webhooks deliver it. ID grows with every event the daemon records; a
// client resumes after the last one it saw (Last-Event-ID).
type Event struct {
	ID          int64          `json:"id"`
	Time        time.Time      `json:"time"`
	Event       string         `json:"event"`
	Sandbox     string         `json:"sandbox"`
	SandboxUUID string         `json:"sandbox_uuid"`
	Details     map[string]any `json:"details,omitempty"`
}

// Receipt records one command a sandbox ran: what ran where, under which
// policy, and how it ended, with hashes of its output. The daemon signs it
// (SignedReceipt); `agentkernel receipt verify` checks it against a key
// the verifier trusts, never one the receipt carries.
type Receipt struct {
	Version     int    `json:"version"`
	Sandbox     string `json:"sandbox"`
	SandboxUUID string `json:"sandbox_uuid"`
	Backend     string `json:"backend"`
	Profile     string `json:"profile"`
	Image       string `json:"image"`
	// ImageID is the image's content ID (the host image has none).
	ImageID string `json:"image_id,omitempty"`
	// Network is the egress policy in force when the command ran (nil:
	// no gateway, so no network beyond loopback).
	Network  *NetworkPolicy `json:"network,omitempty"`
	Command  []string       `json:"command"`
	Workdir  string         `json:"workdir,omitempty"`
	User     string         `json:"user,omitempty"`
	ExitCode int            `json:"exit_code"`
	TimedOut bool           `json:"timed_out,omitempty"`
	// StdoutSHA256 and StderrSHA256 are hex SHA-256 of the output bytes.
	StdoutSHA256 string    `json:"stdout_sha256"`
	StderrSHA256 string    `json:"stderr_sha256"`
	StartedAt    time.Time `json:"started_at"`
	FinishedAt   time.Time `json:"finished_at"`
}

// SignedReceipt is a Receipt's JSON (Payload, exactly the bytes signed)
// and its Ed25519 signature. KeyID (the hex SHA-256 of the public key)
// only says which key signed; it proves nothing.
type SignedReceipt struct {
	Payload   []byte `json:"payload"`
	Signature []byte `json:"signature"`
	KeyID     string `json:"key_id"`
}
