package httpapi

import (
	"net/http"

	"github.com/agentkernel/agentkernel/pkg/api"
)

// route is one entry of the route table, which drives both the mux and the
// OpenAPI document.
type route struct {
	// method is "" for a route of every method (a proxy), which the
	// OpenAPI document lists under each of proxyMethods.
	method  string
	pattern string // net/http pattern without the method
	handle  func(*server, http.ResponseWriter, *http.Request)
	// first routes are matched before the others (see server.first).
	first bool
	// public routes need no token.
	public bool
	// basicAuth routes also take the token as the basic-auth password
	// (what `opencode attach --password` sends).
	basicAuth bool

	op, tag, summary string
	// req is the JSON request body's type (a zero value) or nil; reqOptional
	// says the body may be empty. reqRaw is the content type of a raw body
	// accepted instead of (or, without req, as) the JSON one.
	req         any
	reqOptional bool
	reqRaw      string
	// resp is the type of the success envelope's data (an alternatives value
	// when it depends on the query). respRaw is the content type of a raw
	// answer, when the client asks for one or it is the only one.
	resp    any
	respRaw string
	// plain responses are not wrapped in the envelope.
	plain bool
	// stream is "sse" or "websocket" for streaming routes.
	stream string
	status int // success status; 0 means 200
	query  []param
}

// muxPattern is rt's net/http pattern.
func (rt route) muxPattern() string {
	if rt.method == "" {
		return rt.pattern
	}
	return rt.method + " " + rt.pattern
}

// param is a query parameter.
type param struct {
	name, typ, desc string
	required        bool
	enum            []string
}

// alternatives is a response whose data is one of several types.
type alternatives []any

const (
	ctOctet = "application/octet-stream"
	ctTar   = "application/x-tar"
)

// routes is the API. Keep it sorted by path; the OpenAPI document lists
// operations in this order.
var routes = []route{
	{method: "GET", pattern: "/health", handle: (*server).health, public: true,
		op: "healthCheck", tag: "Health", summary: "Health check (no token needed)", resp: ""},
	{method: "GET", pattern: "/openapi.json", handle: (*server).openAPI, plain: true,
		op: "openAPI", tag: "Health", summary: "This OpenAPI 3.1 document", resp: map[string]any{}},
	{method: "POST", pattern: "/run", handle: (*server).run,
		op: "runCommand", tag: "Run", summary: "Run a command in a new ephemeral sandbox, then remove it",
		req: api.RunRequest{}, resp: api.RunResponse{}},
	{method: "POST", pattern: "/run/stream", handle: (*server).runStream, stream: "sse",
		op: "runCommandStream", tag: "Run", summary: "Run a command in an ephemeral sandbox, streaming Server-Sent Events (started, progress, output, done | error)",
		req: api.RunRequest{}},
	{method: "POST", pattern: "/batch/run", handle: (*server).batchRun,
		op: "batchRun", tag: "Run", summary: "Run several commands concurrently, each in its own ephemeral sandbox; results in request order",
		req: api.BatchRunRequest{}, resp: api.BatchRunResponse{}},

	{method: "GET", pattern: "/sandboxes", handle: (*server).listSandboxes,
		op: "listSandboxes", tag: "Sandboxes", summary: "List sandboxes", resp: []api.SandboxInfo{}},
	{method: "POST", pattern: "/sandboxes", handle: (*server).createSandbox, status: http.StatusCreated,
		op: "createSandbox", tag: "Sandboxes", summary: "Create (and by default start) a sandbox",
		req: api.CreateSandboxRequest{}, resp: api.SandboxInfo{}},
	{method: "GET", pattern: "/sandboxes/by-uuid/{uuid}", handle: (*server).getSandboxByUUID, first: true,
		op: "getSandboxByUuid", tag: "Sandboxes", summary: "Get a sandbox by UUID", resp: api.SandboxInfo{}},
	{method: "GET", pattern: "/sandboxes/{name}", handle: (*server).getSandbox,
		op: "getSandbox", tag: "Sandboxes", summary: "Get a sandbox", resp: api.SandboxInfo{}},
	{method: "DELETE", pattern: "/sandboxes/{name}", handle: (*server).removeSandbox,
		op: "deleteSandbox", tag: "Sandboxes", summary: "Stop and remove a sandbox", resp: ""},
	{method: "POST", pattern: "/sandboxes/{name}/start", handle: (*server).startSandbox,
		op: "startSandbox", tag: "Sandboxes", summary: "Start a stopped sandbox", resp: api.SandboxInfo{}},
	{method: "POST", pattern: "/sandboxes/{name}/stop", handle: (*server).stopSandbox,
		op: "stopSandbox", tag: "Sandboxes", summary: "Stop a sandbox", resp: api.SandboxInfo{}},
	{method: "POST", pattern: "/sandboxes/{name}/pause", handle: (*server).pauseSandbox,
		op: "pauseSandbox", tag: "Sandboxes", summary: "Pause a running sandbox: its processes frozen, kept", resp: api.SandboxInfo{}},
	{method: "POST", pattern: "/sandboxes/{name}/resume", handle: (*server).resumeSandbox,
		op: "resumeSandbox", tag: "Sandboxes", summary: "Resume a paused sandbox where it was", resp: api.SandboxInfo{}},
	{method: "POST", pattern: "/sandboxes/{name}/extend", handle: (*server).extendSandbox,
		op: "extendTtl", tag: "Sandboxes", summary: "Extend a sandbox's time to live by a duration (30m, 2h, 1d)",
		req: api.ExtendRequest{}, resp: api.ExtendResponse{}},
	{method: "GET", pattern: "/sandboxes/{name}/logs", handle: (*server).sandboxLogs,
		op: "getSandboxLogs", tag: "Sandboxes", summary: "A sandbox's audit events", resp: []api.LogEvent{}},
	{method: "GET", pattern: "/sandboxes/{name}/network", handle: (*server).getNetwork,
		op: "getSandboxNetwork", tag: "Network", summary: "A sandbox's network: egress policy, published ports, secret bindings (no values), gateway counters",
		resp: api.NetworkInfo{}},
	{method: "PUT", pattern: "/sandboxes/{name}/network", handle: (*server).putNetwork,
		op: "setSandboxNetwork", tag: "Network", summary: "Replace a sandbox's egress policy, at once on its running gateway (an empty profile keeps the current one)",
		req: api.NetworkPolicy{}, resp: api.NetworkInfo{}},
	{method: "GET", pattern: "/sandboxes/{name}/network/log", handle: (*server).networkLog,
		op: "getSandboxNetworkLog", tag: "Network", summary: "The last events of a sandbox's network audit log: DNS answers, connections allowed and denied with the rule, intercepted requests",
		resp: []api.NetworkEvent{}, query: []param{{name: "limit", typ: "integer", desc: "how many of the last events (default 200, at most 10000)"}}},

	{method: "POST", pattern: "/sandboxes/{name}/exec", handle: (*server).exec,
		op: "execInSandbox", tag: "Exec", summary: "Run a command in a sandbox and wait for it (output capped; see exec/ws for streaming)",
		req: api.ExecRequest{}, resp: api.ExecResponse{}},
	{method: "POST", pattern: "/sandboxes/{name}/exec/detach", handle: (*server).execDetached,
		op: "execDetached", tag: "Exec", summary: "Start a background command", req: api.ExecRequest{}, resp: api.DetachedCommand{}},
	{method: "GET", pattern: "/sandboxes/{name}/exec/detached", handle: (*server).listDetached,
		op: "detachedList", tag: "Exec", summary: "List background commands", resp: []api.DetachedCommand{}},
	{method: "GET", pattern: "/sandboxes/{name}/exec/detached/{id}", handle: (*server).getDetached,
		op: "detachedStatus", tag: "Exec", summary: "Get a background command", resp: api.DetachedCommand{}},
	{method: "GET", pattern: "/sandboxes/{name}/exec/detached/{id}/logs", handle: (*server).detachedLogs,
		op: "detachedLogs", tag: "Exec", summary: "A background command's output", resp: api.DetachedLogs{},
		query: []param{{name: "stream", typ: "string", enum: []string{"stdout", "stderr"}, desc: "only this stream (the other comes back empty)"}}},
	{method: "DELETE", pattern: "/sandboxes/{name}/exec/detached/{id}", handle: (*server).killDetached,
		op: "detachedKill", tag: "Exec", summary: "Kill a background command", resp: ""},
	{method: "GET", pattern: "/sandboxes/{name}/exec/ws", handle: (*server).execWS, stream: "websocket",
		op: "execStream", tag: "Exec", summary: "Streaming exec over WebSocket (first message: an ExecRequest; then channel-prefixed binary data and JSON control messages)"},
	{method: "GET", pattern: "/sandboxes/{name}/attach", handle: (*server).attach, stream: "websocket",
		op: "attach", tag: "Exec", summary: "Interactive shell over WebSocket: exec/ws with a TTY and, without a command, /bin/sh -l"},

	{method: "GET", pattern: "/sandboxes/{name}/files/{path...}", handle: (*server).readFile,
		op: "readFile", tag: "Files", summary: "Read a file (JSON, utf8 or base64; raw with Accept: application/octet-stream) or, with list=1, list a directory",
		resp: alternatives{api.FileReadResponse{}, []api.FileInfo{}}, respRaw: ctOctet,
		query: []param{{name: "list", typ: "boolean", desc: "list the directory instead of reading a file"}}},
	{method: "PUT", pattern: "/sandboxes/{name}/files/{path...}", handle: (*server).writeFile,
		op: "writeFile", tag: "Files", summary: "Write a file (JSON body, or raw with Content-Type: application/octet-stream) or, with dir=1, make a directory",
		req: api.FileWriteRequest{}, reqRaw: ctOctet, resp: "",
		query: []param{
			{name: "dir", typ: "boolean", desc: "make a directory (and its parents); no body"},
			{name: "mode", typ: "string", desc: "octal file mode for a raw body, default 0644"},
		}},
	{method: "DELETE", pattern: "/sandboxes/{name}/files/{path...}", handle: (*server).deleteFile,
		op: "deleteFile", tag: "Files", summary: "Delete a file, or with recursive=1 a directory tree", resp: "",
		query: []param{{name: "recursive", typ: "boolean", desc: "delete a directory and everything in it"}}},
	{method: "POST", pattern: "/sandboxes/{name}/files", handle: (*server).writeFiles,
		op: "writeFiles", tag: "Files", summary: "Write several utf8 files at once",
		req: api.BatchFileWriteRequest{}, resp: api.BatchFileWriteResponse{}},
	{method: "GET", pattern: "/sandboxes/{name}/archive", handle: (*server).tarOut,
		op: "archiveGet", tag: "Files", summary: "Download a file or directory tree as a tar stream", respRaw: ctTar,
		query: []param{{name: "path", typ: "string", required: true, desc: "absolute path inside the sandbox"}}},
	{method: "PUT", pattern: "/sandboxes/{name}/archive", handle: (*server).tarIn,
		op: "archivePut", tag: "Files", summary: "Extract a tar stream into a directory", reqRaw: ctTar, resp: "",
		query: []param{{name: "path", typ: "string", required: true, desc: "absolute directory inside the sandbox"}}},

	{method: "POST", pattern: "/sandboxes/{name}/commit", handle: (*server).commitSandbox, status: http.StatusCreated,
		op: "commitSandbox", tag: "Images", summary: "Save a container sandbox's changes as a new layer on top of its image, as a new image (the name moves if taken)",
		req: api.CommitSandboxRequest{}, resp: api.ImageInfo{}},
	{method: "POST", pattern: "/sandboxes/{name}/fork", handle: (*server).forkSandbox, status: http.StatusCreated,
		op: "forkSandbox", tag: "Snapshots", summary: "Take a snapshot of a sandbox and restore it count times as PREFIX-1..N (a memory snapshot where the backend takes them, gvisor: processes continue; else processes restart)",
		req: api.ForkSandboxRequest{}, resp: api.ForkSandboxResponse{}},
	{method: "GET", pattern: "/snapshots", handle: (*server).listSnapshots,
		op: "listSnapshots", tag: "Snapshots", summary: "List filesystem snapshots", resp: []api.SnapshotInfo{}},
	{method: "POST", pattern: "/snapshots", handle: (*server).takeSnapshot, status: http.StatusCreated,
		op: "takeSnapshot", tag: "Snapshots", summary: "Take a snapshot of a sandbox (a commit kept in the image store; with memory, also a checkpoint of its processes, gvisor only)",
		req: api.TakeSnapshotRequest{}, resp: api.SnapshotInfo{}},
	{method: "GET", pattern: "/snapshots/{name}", handle: (*server).getSnapshot,
		op: "getSnapshot", tag: "Snapshots", summary: "Describe a snapshot", resp: api.SnapshotInfo{}},
	{method: "DELETE", pattern: "/snapshots/{name}", handle: (*server).deleteSnapshot,
		op: "deleteSnapshot", tag: "Snapshots", summary: "Delete a snapshot (refused while a running sandbox uses its layers)", resp: ""},
	{method: "POST", pattern: "/snapshots/{name}/restore", handle: (*server).restoreSnapshot, status: http.StatusCreated,
		op: "restoreSnapshot", tag: "Snapshots", summary: "Create and start a sandbox from a snapshot, on any backend",
		req: api.RestoreSnapshotRequest{}, resp: api.SandboxInfo{}},
	{method: "GET", pattern: "/sandboxes/{name}/export", handle: (*server).exportSandbox,
		op: "exportSandbox", tag: "Images", summary: "Download a container sandbox's whole filesystem (its layers and changes merged, without /proc, /sys, /dev and /.agentkernel) as a tar stream",
		respRaw: ctTar},

	{method: "GET", pattern: "/volumes", handle: (*server).listVolumes,
		op: "listVolumes", tag: "Volumes", summary: "List named volumes, with the sandboxes that use each", resp: []api.VolumeInfo{}},
	{method: "POST", pattern: "/volumes", handle: (*server).createVolume, status: http.StatusCreated,
		op: "createVolume", tag: "Volumes", summary: "Create a named volume: a sparse, size-limited ext4 image kept until deleted (size as 512MB or 2GB; default 1GB)",
		req: api.CreateVolumeRequest{}, resp: api.VolumeInfo{}},
	{method: "GET", pattern: "/volumes/{name}", handle: (*server).getVolume,
		op: "getVolume", tag: "Volumes", summary: "Describe a named volume", resp: api.VolumeInfo{}},
	{method: "DELETE", pattern: "/volumes/{name}", handle: (*server).deleteVolume,
		op: "deleteVolume", tag: "Volumes", summary: "Delete a named volume and its data; refused while a sandbox names it unless force (running sandboxes keep their copy until they stop)",
		resp:  api.DeleteVolumeResponse{},
		query: []param{{name: "force", typ: "boolean", desc: "delete even while sandboxes use the volume"}}},

	{method: "GET", pattern: "/images", handle: (*server).listImages,
		op: "listImages", tag: "Images", summary: "List images", resp: []api.ImageInfo{}},
	{method: "POST", pattern: "/images/build", handle: (*server).buildImage, status: http.StatusCreated,
		op: "buildImage", tag: "Images", summary: "Build an image from Debian packages (debootstrap) or a Dockerfile; with Accept: text/event-stream, progress as Server-Sent Events (progress, then done | error)",
		req: api.BuildImageRequest{}, resp: api.ImageInfo{}, respRaw: "text/event-stream"},
	{method: "POST", pattern: "/images/import", handle: (*server).importImage, status: http.StatusCreated,
		op: "importImage", tag: "Images", summary: "Import an image from a host directory or tarball",
		req: api.ImportImageRequest{}, resp: api.ImageInfo{}},
	{method: "POST", pattern: "/images/prune", handle: (*server).pruneImages,
		op: "pruneImages", tag: "Images", summary: "Remove blobs and unpacked layers that no image uses and no running sandbox has mounted",
		resp: api.PruneImagesResponse{}},
	{method: "POST", pattern: "/images/pull", handle: (*server).pullImage,
		op: "pullImage", tag: "Images", summary: "Pull an image from a registry; with Accept: text/event-stream, progress as Server-Sent Events (progress, then done | error)",
		req: api.PullImageRequest{}, resp: api.ImageInfo{}, respRaw: "text/event-stream"},
	{method: "POST", pattern: "/images/tag", handle: (*server).tagImage, status: http.StatusCreated,
		op: "tagImage", tag: "Images", summary: "Give an image a second name",
		req: api.TagImageRequest{}, resp: api.ImageInfo{}},
	{method: "GET", pattern: "/images/{name}", handle: (*server).inspectImage,
		op: "inspectImage", tag: "Images", summary: "Describe an image: layers and config (escape '/' in the name as %2F)", resp: api.ImageDetails{}},
	{method: "DELETE", pattern: "/images/{name}", handle: (*server).removeImage,
		op: "removeImage", tag: "Images", summary: "Remove an image (escape '/' in the name as %2F)", resp: ""},
	{method: "GET", pattern: "/secrets", handle: (*server).listSecrets,
		op: "listSecrets", tag: "Secrets", summary: "List the vault's secrets, never their values (Unix socket only)", resp: []api.SecretInfo{}},
	{method: "GET", pattern: "/secrets/{name}", handle: (*server).getSecret,
		op: "getSecret", tag: "Secrets", summary: "A secret's value (Unix socket only)", resp: api.SecretValue{}},
	{method: "PUT", pattern: "/secrets/{name}", handle: (*server).putSecret,
		op: "setSecret", tag: "Secrets", summary: "Store a secret, encrypted at rest (Unix socket only)", req: api.SetSecretRequest{}, resp: api.SecretInfo{}},
	{method: "DELETE", pattern: "/secrets/{name}", handle: (*server).deleteSecret,
		op: "deleteSecret", tag: "Secrets", summary: "Delete a secret (Unix socket only)", resp: ""},
	{method: "GET", pattern: "/events", handle: (*server).events,
		op: "events", tag: "Events", summary: "Sandbox events: Server-Sent Events (id per event; resume with Last-Event-ID or ?after=ID; ?sandbox=NAME, ?label=KEY[=VALUE]), or without Accept: text/event-stream a JSON list collected for ?wait= (30s) up to ?limit= (100)", resp: []api.Event{}},
	{method: "GET", pattern: "/audit", handle: (*server).auditLog,
		op: "auditLog", tag: "Audit", summary: "The last records of the hash-chained audit log: the global one (every lifecycle, exec, file and policy event), or with ?sandbox= that sandbox's (its exec and file records and its network gateway's connections), also after its removal",
		resp: api.AuditLog{}, query: []param{
			{name: "sandbox", typ: "string", desc: "a sandbox's log instead of the global one"},
			{name: "since", typ: "string", desc: "only records at or after this RFC 3339 time"},
			{name: "limit", typ: "integer", desc: "how many of the last records (default 200, at most 10000)"}}},
	{method: "GET", pattern: "/audit/verify", handle: (*server).verifyAudit,
		op: "verifyAudit", tag: "Audit", summary: "Check an audit log's hash chain; a broken log answers ok false and names the first broken record (file, line, seq, reason)",
		resp: api.AuditVerification{}, query: []param{{name: "sandbox", typ: "string", desc: "a sandbox's log instead of the global one"}}},
	{method: "GET", pattern: "/metrics", handle: (*server).metrics,
		op: "metrics", tag: "Health", summary: "Prometheus metrics (text format): operations and their latency by backend, sandboxes by status, warm pools, event followers, the Go runtime; the token is needed over TCP unless serve --metrics-public", resp: ""},
	{method: "GET", pattern: "/pools", handle: (*server).listPools,
		op: "listPools", tag: "Pools", summary: "The warm pools of fresh sandboxes: size, ready, starting, claims", resp: []api.PoolInfo{}},
	{method: "PUT", pattern: "/pools", handle: (*server).setPool,
		op: "setPool", tag: "Pools", summary: "Set one warm pool's size (0 drains it); the key's empty fields take the defaults", req: api.SetPoolRequest{}, resp: api.PoolInfo{}},
	{method: "GET", pattern: "/backends", handle: (*server).backends,
		op: "listBackends", tag: "Health", summary: "The backends this daemon offers and what each can do", resp: []api.BackendInfo{}},
	{method: "GET", pattern: "/doctor", handle: (*server).doctor,
		op: "doctor", tag: "Health", summary: "Check the host's prerequisites", resp: []api.DoctorCheck{}},

	{pattern: "/mcp", handle: (*server).mcp,
		op: "mcp", tag: "MCP", summary: "The MCP server (Streamable HTTP: POST JSON-RPC, GET the event stream, DELETE the session); token required, Origin checked"},

	{method: "DELETE", pattern: "/opencode", handle: (*server).openCodeTeardown, basicAuth: true,
		op: "opencodeTeardown", tag: "OpenCode", summary: "Remove the OpenCode sandbox (opencode-attach) of the /opencode proxy; the next request provisions a new one", resp: ""},
	{pattern: "/opencode", handle: (*server).openCode, basicAuth: true,
		op: "opencodeProxyRoot", tag: "OpenCode", summary: openCodeSummary},
	{pattern: "/opencode/{path...}", handle: (*server).openCode, basicAuth: true,
		op: "opencodeProxy", tag: "OpenCode", summary: openCodeSummary},
}

const openCodeSummary = "OpenCode's server API (`opencode attach http://127.0.0.1:18888/opencode --password <token>`), passed through to `opencode serve` " +
	"in the sandbox opencode-attach, provisioned on the first request (503 with Retry-After while it starts); over TCP the token " +
	"may also be the basic-auth password"
