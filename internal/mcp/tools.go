package mcp

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentkernel/agentkernel/pkg/api"
)

var errSessionEnded = errors.New("the MCP session has ended")

func errTooMany(n int) error {
	return fmt.Errorf("this MCP session already holds %d sandboxes, the most its policy allows (--max-sandboxes); remove one first", n)
}

// Tool inputs and outputs. The jsonschema tags are the descriptions the
// client sees.
type (
	RunInput struct {
		Command Command  `json:"command" jsonschema:"the command: argv array, or one shell string"`
		Image   string   `json:"image,omitempty" jsonschema:"image to run in (default: the server's)"`
		Profile string   `json:"profile,omitempty" jsonschema:"security profile: restrictive, moderate or permissive; at most the server's limit"`
		Timeout string   `json:"timeout,omitempty" jsonschema:"kill the command after this duration, e.g. 30s or 5m"`
		Allow   []string `json:"allow,omitempty" jsonschema:"domains the sandbox may reach (example.com, *.example.com); a subset of the server's allowed domains"`
		// Upstream's names.
		Cwd       string            `json:"cwd,omitempty" jsonschema:"working directory inside the sandbox"`
		Env       map[string]string `json:"env,omitempty" jsonschema:"environment variables to set"`
		TimeoutMS int64             `json:"timeout_ms,omitempty" jsonschema:"timeout in milliseconds (timeout wins when both are given)"`
		Fast      *bool             `json:"fast,omitempty" jsonschema:"take a fresh sandbox from a warm pool when one matches (default true; never a used one)"`
	}
	ExecOutput struct {
		Stdout    string `json:"stdout"`
		Stderr    string `json:"stderr"`
		ExitCode  int    `json:"exit_code"`
		TimedOut  bool   `json:"timed_out,omitempty"`
		Truncated bool   `json:"truncated,omitempty" jsonschema:"true when stdout or stderr was cut in the middle"`
		Error     string `json:"error,omitempty" jsonschema:"why the sandbox chose the exit code, if it did"`
	}
	CreateInput struct {
		Name    string   `json:"name,omitempty" jsonschema:"sandbox name (default: generated)"`
		Image   string   `json:"image,omitempty" jsonschema:"image (default: the server's)"`
		Profile string   `json:"profile,omitempty" jsonschema:"security profile: restrictive, moderate or permissive; at most the server's limit"`
		Keep    bool     `json:"keep,omitempty" jsonschema:"keep the sandbox after this MCP session ends"`
		Allow   []string `json:"allow,omitempty" jsonschema:"domains the sandbox may reach (example.com, *.example.com); a subset of the server's allowed domains"`
		// The clone runs inside the sandbox, under the network policy
		// above, so it reaches only hosts the policy allows.
		SourceURL string `json:"source_url,omitempty" jsonschema:"a git repository (http or https) to clone into /workspace; its host must be in allow"`
		SourceRef string `json:"source_ref,omitempty" jsonschema:"with source_url, the branch, tag or commit to check out"`
	}
	SandboxOutput struct {
		Name    string `json:"name"`
		Status  string `json:"status"`
		Image   string `json:"image,omitempty"`
		Profile string `json:"profile,omitempty"`
		// Session is true for sandboxes this MCP session created.
		Session bool `json:"session,omitempty" jsonschema:"created by this MCP session"`
	}
	ExecInput struct {
		Name    string  `json:"name" jsonschema:"sandbox name"`
		Command Command `json:"command" jsonschema:"the command: argv array, or one shell string"`
		Timeout string  `json:"timeout,omitempty" jsonschema:"kill the command after this duration, e.g. 30s or 5m"`
	}
	ListInput  struct{}
	ListOutput struct {
		Sandboxes []SandboxOutput `json:"sandboxes"`
	}
	NameInput struct {
		Name string `json:"name" jsonschema:"sandbox name"`
	}
	RemoveOutput struct {
		Removed string `json:"removed"`
	}
	FileInput struct {
		Name string `json:"name" jsonschema:"sandbox name"`
		Path string `json:"path" jsonschema:"absolute path inside the sandbox"`
	}
	FileOutput struct {
		Path      string `json:"path"`
		Content   string `json:"content"`
		Size      int    `json:"size" jsonschema:"the file's whole size in bytes"`
		Truncated bool   `json:"truncated,omitempty" jsonschema:"true when content was cut in the middle"`
	}
	WriteInput struct {
		Name    string `json:"name" jsonschema:"sandbox name"`
		Path    string `json:"path" jsonschema:"absolute path inside the sandbox"`
		Content string `json:"content" jsonschema:"the file's new content"`
	}
	WriteOutput struct {
		Path         string `json:"path"`
		BytesWritten int    `json:"bytes_written"`
	}
)

func (st *state) addTools(s *mcp.Server) {
	mcp.AddTool(s, &mcp.Tool{Name: "sandbox_run", InputSchema: inputSchema[RunInput](),
		Description: "Run a command in a new ephemeral sandbox, removed afterwards; returns stdout, stderr and exit_code."}, st.run)
	mcp.AddTool(s, &mcp.Tool{Name: "sandbox_create", InputSchema: inputSchema[CreateInput](),
		Description: "Create and start a sandbox that lives for this MCP session (or longer with keep)."}, st.create)
	mcp.AddTool(s, &mcp.Tool{Name: "sandbox_exec", InputSchema: inputSchema[ExecInput](),
		Description: "Run a command in an existing sandbox; returns stdout, stderr and exit_code."}, st.exec)
	mcp.AddTool(s, &mcp.Tool{Name: "sandbox_list", Description: "List sandboxes."}, st.list)
	mcp.AddTool(s, &mcp.Tool{Name: "sandbox_remove", Description: "Remove a sandbox."}, st.remove)
	mcp.AddTool(s, &mcp.Tool{Name: "sandbox_file_read", Description: "Read a file of a sandbox."}, st.readFile)
	mcp.AddTool(s, &mcp.Tool{Name: "sandbox_file_write", Description: "Write a file of a sandbox."}, st.writeFile)
	st.addMoreTools(s)
	st.addSnapshotTools(s)
	st.addTransferTools(s)
	st.addResources(s)
}

func (st *state) execOutput(r api.ExecResponse) ExecOutput {
	out, cut1 := truncateMiddle(r.Stdout, st.policy.MaxOutputBytes)
	errs, cut2 := truncateMiddle(r.Stderr, st.policy.MaxOutputBytes)
	return ExecOutput{Stdout: out, Stderr: errs, ExitCode: r.ExitCode, TimedOut: r.TimedOut, Truncated: cut1 || cut2, Error: r.Error}
}

func (st *state) run(ctx context.Context, req *mcp.CallToolRequest, in RunInput) (*mcp.CallToolResult, ExecOutput, error) {
	profile, err := st.policy.profile(in.Profile)
	if err != nil {
		return nil, ExecOutput{}, err
	}
	image, err := st.policy.image(in.Image)
	if err != nil {
		return nil, ExecOutput{}, err
	}
	network, err := st.policy.network(in.Allow)
	if err != nil {
		return nil, ExecOutput{}, err
	}
	if len(in.Command) == 0 {
		return nil, ExecOutput{}, errors.New("command is empty")
	}
	s := st.session(req.Session)
	if err := st.reserve(s); err != nil {
		return nil, ExecOutput{}, err
	}
	defer st.release(s)
	defer reportProgress(ctx, req, elapsedStatus)()
	// ctx is the request's: a cancelled tools/call ends the HTTP request,
	// and with it the command and its ephemeral sandbox.
	rr := api.RunRequest{Command: in.Command, Image: image, Profile: profile, Timeout: in.Timeout, Network: network,
		Workdir: in.Cwd, Fast: in.Fast}
	if rr.Timeout == "" && in.TimeoutMS > 0 {
		rr.Timeout = (time.Duration(in.TimeoutMS) * time.Millisecond).String()
	}
	for _, k := range slices.Sorted(maps.Keys(in.Env)) {
		rr.Env = append(rr.Env, k+"="+in.Env[k])
	}
	r, err := st.c.Run(ctx, rr)
	if err != nil {
		return nil, ExecOutput{}, err
	}
	return nil, st.execOutput(r.ExecResponse), nil
}

func (st *state) create(ctx context.Context, req *mcp.CallToolRequest, in CreateInput) (*mcp.CallToolResult, SandboxOutput, error) {
	profile, err := st.policy.profile(in.Profile)
	if err != nil {
		return nil, SandboxOutput{}, err
	}
	image, err := st.policy.image(in.Image)
	if err != nil {
		return nil, SandboxOutput{}, err
	}
	network, err := st.policy.network(in.Allow)
	if err != nil {
		return nil, SandboxOutput{}, err
	}
	s := st.session(req.Session)
	if err := st.reserve(s); err != nil {
		return nil, SandboxOutput{}, err
	}
	name := in.Name
	if name == "" {
		var b [4]byte
		rand.Read(b[:])
		name = "mcp-" + hex.EncodeToString(b[:])
	}
	info, err := st.c.CreateSandbox(ctx, api.CreateSandboxRequest{
		Name: name, Image: image, Profile: profile, Network: network,
		Labels: map[string]string{SessionLabel: s.id}, SourceURL: in.SourceURL, SourceRef: in.SourceRef,
	})
	if err != nil {
		st.release(s)
		return nil, SandboxOutput{}, err
	}
	st.own(s, info.Name, in.Keep)
	return nil, sandboxOutput(info, true), nil
}

func sandboxOutput(info api.SandboxInfo, session bool) SandboxOutput {
	return SandboxOutput{Name: info.Name, Status: info.Status, Image: info.Image, Profile: info.Profile, Session: session}
}

// access checks that the session may use the sandbox name: one it created,
// or one whose profile and image the policy would allow it to create.
func (st *state) access(ctx context.Context, s *session, name string) error {
	if name == "" {
		return errors.New("name is empty")
	}
	if st.owns(s, name) {
		return nil
	}
	info, err := st.c.GetSandbox(ctx, name)
	if err != nil {
		return err
	}
	if _, err := st.policy.profile(info.Profile); err != nil {
		return fmt.Errorf("sandbox %s: %w", name, err)
	}
	if info.Image != "" {
		if _, err := st.policy.image(info.Image); err != nil {
			return fmt.Errorf("sandbox %s: %w", name, err)
		}
	}
	return nil
}

func (st *state) exec(ctx context.Context, req *mcp.CallToolRequest, in ExecInput) (*mcp.CallToolResult, ExecOutput, error) {
	s := st.session(req.Session)
	if err := st.access(ctx, s, in.Name); err != nil {
		return nil, ExecOutput{}, err
	}
	if len(in.Command) == 0 {
		return nil, ExecOutput{}, errors.New("command is empty")
	}
	er := api.ExecRequest{Command: in.Command, Timeout: in.Timeout}
	if es, ok := st.c.(execStreamer); ok && req.Params.GetProgressToken() != nil {
		out, err := st.execStreaming(ctx, es, req, in.Name, er)
		return nil, out, err
	}
	r, err := st.c.Exec(ctx, in.Name, er)
	if err != nil {
		return nil, ExecOutput{}, err
	}
	return nil, st.execOutput(r), nil
}

func (st *state) list(ctx context.Context, req *mcp.CallToolRequest, _ ListInput) (*mcp.CallToolResult, ListOutput, error) {
	s := st.session(req.Session)
	infos, err := st.c.ListSandboxes(ctx)
	if err != nil {
		return nil, ListOutput{}, err
	}
	out := ListOutput{Sandboxes: []SandboxOutput{}}
	for _, info := range infos {
		if info.Ephemeral {
			continue
		}
		out.Sandboxes = append(out.Sandboxes, sandboxOutput(info, info.Labels[SessionLabel] == s.id))
	}
	return nil, out, nil
}

func (st *state) remove(ctx context.Context, req *mcp.CallToolRequest, in NameInput) (*mcp.CallToolResult, RemoveOutput, error) {
	s := st.session(req.Session)
	if err := st.access(ctx, s, in.Name); err != nil {
		return nil, RemoveOutput{}, err
	}
	if err := st.c.RemoveSandbox(ctx, in.Name); err != nil {
		return nil, RemoveOutput{}, err
	}
	st.disown(s, in.Name)
	return nil, RemoveOutput{Removed: in.Name}, nil
}

func (st *state) readFile(ctx context.Context, req *mcp.CallToolRequest, in FileInput) (*mcp.CallToolResult, FileOutput, error) {
	s := st.session(req.Session)
	if err := st.access(ctx, s, in.Name); err != nil {
		return nil, FileOutput{}, err
	}
	b, err := st.c.ReadFile(ctx, in.Name, in.Path)
	if err != nil {
		return nil, FileOutput{}, err
	}
	content, cut := truncateMiddle(string(b), st.policy.MaxOutputBytes)
	return nil, FileOutput{Path: in.Path, Content: content, Size: len(b), Truncated: cut}, nil
}

func (st *state) writeFile(ctx context.Context, req *mcp.CallToolRequest, in WriteInput) (*mcp.CallToolResult, WriteOutput, error) {
	s := st.session(req.Session)
	if err := st.access(ctx, s, in.Name); err != nil {
		return nil, WriteOutput{}, err
	}
	if err := st.c.WriteFile(ctx, in.Name, in.Path, strings.NewReader(in.Content), 0o644); err != nil {
		return nil, WriteOutput{}, err
	}
	return nil, WriteOutput{Path: in.Path, BytesWritten: len(in.Content)}, nil
}
