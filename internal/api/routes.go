package api

import (
	"net/http"

	"github.com/agentkernel/agentkernel/pkg/api"
)

// route is one entry of the route table, which drives both the mux and the
// OpenAPI document.
type route struct {
	method  string
	pattern string // net/http pattern without the method
	handle  func(*server, http.ResponseWriter, *http.Request)
	// first routes are matched before the others (see server.first).
	first bool
	// public routes need no token.
	public bool

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
	{method: "POST", pattern: "/sandboxes/{name}/extend", handle: (*server).extendSandbox,
		op: "extendTtl", tag: "Sandboxes", summary: "Extend a sandbox's time to live by a duration (30m, 2h, 1d)",
		req: api.ExtendRequest{}, resp: api.ExtendResponse{}},
	{method: "GET", pattern: "/sandboxes/{name}/logs", handle: (*server).sandboxLogs,
		op: "getSandboxLogs", tag: "Sandboxes", summary: "A sandbox's audit events", resp: []api.LogEvent{}},

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

	{method: "GET", pattern: "/images", handle: (*server).listImages,
		op: "listImages", tag: "Images", summary: "List images", resp: []api.ImageInfo{}},
	{method: "POST", pattern: "/images/import", handle: (*server).importImage, status: http.StatusCreated,
		op: "importImage", tag: "Images", summary: "Import an image from a host directory or tarball",
		req: api.ImportImageRequest{}, resp: api.ImageInfo{}},
	{method: "DELETE", pattern: "/images/{name}", handle: (*server).removeImage,
		op: "removeImage", tag: "Images", summary: "Remove an image (escape '/' in the name as %2F)", resp: ""},
	{method: "GET", pattern: "/doctor", handle: (*server).doctor,
		op: "doctor", tag: "Health", summary: "Check the host's prerequisites", resp: []api.DoctorCheck{}},
}
