package mcp

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentkernel/agentkernel/pkg/api"
)

// fakeClient records the calls and keeps sandboxes in a map.
type fakeClient struct {
	mu         sync.Mutex
	sandboxes  map[string]api.SandboxInfo
	files      map[string]string
	creates    int
	lastCreate api.CreateSandboxRequest
	runs       []api.RunRequest
	removed    []string
	stdout     string
	cancelled  chan struct{} // closed when a blocking Run sees its ctx end
}

func newFake() *fakeClient {
	return &fakeClient{sandboxes: map[string]api.SandboxInfo{}, files: map[string]string{}}
}

func (f *fakeClient) Run(ctx context.Context, req api.RunRequest) (api.RunResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.runs = append(f.runs, req)
	if f.cancelled != nil {
		f.mu.Unlock()
		<-ctx.Done()
		close(f.cancelled)
		f.mu.Lock()
		return api.RunResponse{}, ctx.Err()
	}
	return api.RunResponse{ExecResponse: api.ExecResponse{Stdout: f.stdout, Stderr: "err", ExitCode: 3}}, nil
}

func (f *fakeClient) CreateSandbox(ctx context.Context, req api.CreateSandboxRequest) (api.SandboxInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.creates++
	f.lastCreate = req
	info := api.SandboxInfo{Name: req.Name, Status: "running", Image: req.Image, Profile: req.Profile, Labels: req.Labels}
	f.sandboxes[req.Name] = info
	return info, nil
}

func (f *fakeClient) GetSandbox(ctx context.Context, name string) (api.SandboxInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	info, ok := f.sandboxes[name]
	if !ok {
		return info, fmt.Errorf("sandbox %s not found", name)
	}
	return info, nil
}

func (f *fakeClient) ListSandboxes(ctx context.Context) ([]api.SandboxInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []api.SandboxInfo
	for _, info := range f.sandboxes {
		out = append(out, info)
	}
	return out, nil
}

func (f *fakeClient) RemoveSandbox(ctx context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.sandboxes, name)
	f.removed = append(f.removed, name)
	return nil
}

func (f *fakeClient) Exec(ctx context.Context, name string, req api.ExecRequest) (api.ExecResponse, error) {
	return api.ExecResponse{Stdout: strings.Join(req.Command, " ")}, nil
}

func (f *fakeClient) ReadFile(ctx context.Context, name, path string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return []byte(f.files[name+":"+path]), nil
}

func (f *fakeClient) WriteFile(ctx context.Context, name, path string, data io.Reader, mode os.FileMode) error {
	b, err := io.ReadAll(data)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.files[name+":"+path] = string(b)
	return err
}

// connect starts a server session of New(f, p) and returns a client
// session of it and the server session.
func connect(t *testing.T, c Client, p Policy) (*mcp.ClientSession, *mcp.ServerSession) {
	t.Helper()
	ctx := context.Background()
	st, ct := mcp.NewInMemoryTransports()
	ss, err := New(c, p).Connect(ctx, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "0"}, nil).Connect(ctx, ct, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close(); ss.Close() })
	return cs, ss
}

func call(t *testing.T, cs *mcp.ClientSession, tool string, args any, out any) *mcp.CallToolResult {
	t.Helper()
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: tool, Arguments: args})
	if err != nil {
		t.Fatalf("%s: %v", tool, err)
	}
	if out != nil && !res.IsError {
		b, _ := json.Marshal(res.StructuredContent)
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s: structured content %s: %v", tool, b, err)
		}
	}
	return res
}

func errText(res *mcp.CallToolResult) string {
	var b strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	return b.String()
}

func TestToolsListed(t *testing.T) {
	cs, _ := connect(t, newFake(), Policy{})
	res, err := cs.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"sandbox_run": true, "sandbox_create": true, "sandbox_exec": true, "sandbox_list": true,
		"sandbox_remove": true, "sandbox_file_read": true, "sandbox_file_write": true}
	for _, tool := range res.Tools {
		if !want[tool.Name] {
			t.Errorf("unexpected tool %s", tool.Name)
		}
		delete(want, tool.Name)
		if tool.InputSchema == nil || tool.OutputSchema == nil {
			t.Errorf("%s: input schema %v, output schema %v", tool.Name, tool.InputSchema, tool.OutputSchema)
		}
		if tool.Name == "sandbox_run" {
			b, _ := json.Marshal(tool.InputSchema)
			if !strings.Contains(string(b), `"anyOf"`) || !strings.Contains(string(b), `"required":["command"]`) {
				t.Errorf("sandbox_run input schema: %s", b)
			}
		}
	}
	for name := range want {
		t.Errorf("tool %s not listed", name)
	}
}

func TestCommandForms(t *testing.T) {
	f := newFake()
	cs, _ := connect(t, f, Policy{})
	var out ExecOutput
	call(t, cs, "sandbox_run", map[string]any{"command": "echo hi"}, &out)
	call(t, cs, "sandbox_run", map[string]any{"command": []string{"echo", "hi"}}, &out)
	if out.ExitCode != 3 || out.Stderr != "err" {
		t.Errorf("output %+v", out)
	}
	if len(f.runs) != 2 || strings.Join(f.runs[0].Command, "|") != "sh|-c|echo hi" || strings.Join(f.runs[1].Command, "|") != "echo|hi" {
		t.Errorf("runs %+v", f.runs)
	}
	if f.runs[0].Profile != "moderate" {
		t.Errorf("default profile %q, want moderate", f.runs[0].Profile)
	}
}

func TestPolicyNarrows(t *testing.T) {
	f := newFake()
	cs, _ := connect(t, f, Policy{Profile: "moderate", AllowedImages: []string{"alpine:3", "debian:12"}, MaxSandboxes: 1})
	for _, tool := range []string{"sandbox_create", "sandbox_run"} {
		args := func(k, v string) map[string]any {
			if tool == "sandbox_run" {
				return map[string]any{"command": "true", k: v}
			}
			return map[string]any{"name": "x", k: v}
		}
		res := call(t, cs, tool, args("profile", "permissive"), nil)
		if !res.IsError || !strings.Contains(errText(res), `at most "moderate"`) {
			t.Errorf("%s permissive under moderate: error %v %q", tool, res.IsError, errText(res))
		}
		res = call(t, cs, tool, args("image", "ubuntu"), nil)
		if !res.IsError || !strings.Contains(errText(res), "alpine:3, debian:12") {
			t.Errorf("%s image not allowed: error %v %q", tool, res.IsError, errText(res))
		}
	}
	if f.creates != 0 || len(f.runs) != 0 {
		t.Fatalf("%d creates and %d runs after refused requests", f.creates, len(f.runs))
	}
	var sb SandboxOutput
	call(t, cs, "sandbox_create", map[string]any{"name": "a", "profile": "restrictive"}, &sb)
	if sb.Profile != "restrictive" || sb.Image != "alpine:3" {
		t.Errorf("narrowed create: %+v", sb)
	}
	res := call(t, cs, "sandbox_create", map[string]any{"name": "b"}, nil)
	if !res.IsError || !strings.Contains(errText(res), "holds 1 sandboxes") || f.creates != 1 {
		t.Errorf("second create over MaxSandboxes=1: %q, %d creates", errText(res), f.creates)
	}
	// A sandbox made outside MCP with a wider profile is out of reach.
	f.sandboxes["wide"] = api.SandboxInfo{Name: "wide", Profile: "permissive"}
	res = call(t, cs, "sandbox_exec", map[string]any{"name": "wide", "command": "id"}, nil)
	if !res.IsError {
		t.Errorf("exec into a permissive sandbox under a moderate policy succeeded")
	}
}

func TestTruncateMiddle(t *testing.T) {
	f := newFake()
	f.stdout = "HEAD" + strings.Repeat("x", 10000) + "TAIL"
	cs, _ := connect(t, f, Policy{MaxOutputBytes: 1000})
	var out ExecOutput
	call(t, cs, "sandbox_run", map[string]any{"command": "big"}, &out)
	if !out.Truncated || len(out.Stdout) > 1000 || !strings.HasPrefix(out.Stdout, "HEAD") || !strings.HasSuffix(out.Stdout, "TAIL") {
		t.Fatalf("truncated %v, %d bytes, %.20q…%.20q", out.Truncated, len(out.Stdout), out.Stdout, out.Stdout[len(out.Stdout)-20:])
	}
	kept := strings.Count(out.Stdout, "x") + 8
	note := fmt.Sprintf("[... agentkernel: %d bytes truncated ...]", len(f.stdout)-kept)
	if !strings.Contains(out.Stdout, note) {
		t.Errorf("no note %q in the middle of %d bytes", note, len(out.Stdout))
	}
	if out.Stderr != "err" {
		t.Errorf("short stderr changed: %q", out.Stderr)
	}
	// Exactly at the limit: whole.
	f.stdout = strings.Repeat("y", 1000)
	out = ExecOutput{}
	call(t, cs, "sandbox_run", map[string]any{"command": "big"}, &out)
	if out.Truncated || out.Stdout != f.stdout {
		t.Errorf("output of exactly MaxOutputBytes was cut")
	}
	// Multi-byte runes are never split.
	s, _ := truncateMiddle(strings.Repeat("é", 1000), 200)
	if !strings.Contains(s, "truncated") || strings.ContainsRune(s, '\uFFFD') || !validUTF8(s) {
		t.Errorf("utf-8 cut: %q", s)
	}
}

func validUTF8(s string) bool { return strings.ToValidUTF8(s, "?") == s }

func TestSessionEndCleanup(t *testing.T) {
	f := newFake()
	cs, ss := connect(t, f, Policy{})
	call(t, cs, "sandbox_create", map[string]any{"name": "gone"}, nil)
	call(t, cs, "sandbox_create", map[string]any{"name": "kept", "keep": true}, nil)
	call(t, cs, "sandbox_create", map[string]any{"name": "removed"}, nil)
	call(t, cs, "sandbox_remove", map[string]any{"name": "removed"}, nil)
	var files FileOutput
	call(t, cs, "sandbox_file_write", map[string]any{"name": "gone", "path": "/a", "content": "hi"}, nil)
	call(t, cs, "sandbox_file_read", map[string]any{"name": "gone", "path": "/a"}, &files)
	if files.Content != "hi" || files.Size != 2 {
		t.Errorf("read back %+v", files)
	}
	var list ListOutput
	call(t, cs, "sandbox_list", map[string]any{}, &list)
	if len(list.Sandboxes) != 2 || !list.Sandboxes[0].Session {
		t.Errorf("list %+v", list)
	}
	id := f.sandboxes["gone"].Labels[SessionLabel]
	if id == "" || f.sandboxes["kept"].Labels[SessionLabel] != id {
		t.Errorf("session labels: %v", f.sandboxes)
	}
	cs.Close()
	ss.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for {
		f.mu.Lock()
		_, gone := f.sandboxes["gone"]
		_, kept := f.sandboxes["kept"]
		f.mu.Unlock()
		if !gone && kept {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the session ended: gone present %v, kept present %v (removed %v)", gone, kept, f.removed)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestServeCleansUpBeforeReturning(t *testing.T) {
	f := newFake()
	st, ct := mcp.NewInMemoryTransports()
	done := make(chan error, 1)
	go func() { done <- Serve(context.Background(), f, Policy{}, st) }()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "0"}, nil).Connect(context.Background(), ct, nil)
	if err != nil {
		t.Fatal(err)
	}
	call(t, cs, "sandbox_create", map[string]any{"name": "s1"}, nil)
	cs.Close()
	<-done
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.sandboxes["s1"]; ok {
		t.Errorf("Serve returned with the session's sandbox still there")
	}
}

func TestCancelledCallCancelsRun(t *testing.T) {
	f := newFake()
	f.cancelled = make(chan struct{})
	cs, _ := connect(t, f, Policy{})
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "sandbox_run", Arguments: map[string]any{"command": "sleep 1000"}})
		errc <- err
	}()
	for {
		f.mu.Lock()
		n := len(f.runs)
		f.mu.Unlock()
		if n > 0 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	select {
	case <-f.cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("the run's context was not cancelled with the tools/call")
	}
	<-errc
}

// TestResourcesAndPrompt: a sandbox's file reads as sandbox://NAME/PATH
// through the same access check as the tools, a bad URI is an error, and
// the prompt explains the tools.
func TestResourcesAndPrompt(t *testing.T) {
	f := newFake()
	cs, _ := connect(t, f, Policy{})
	ctx := context.Background()
	var created SandboxOutput
	call(t, cs, "sandbox_create", map[string]any{"name": "res"}, &created)
	call(t, cs, "sandbox_file_write", map[string]any{"name": "res", "path": "/work/notes.txt", "content": "hello resource"}, nil)
	tmpl, err := cs.ListResourceTemplates(ctx, nil)
	if err != nil || len(tmpl.ResourceTemplates) != 1 || tmpl.ResourceTemplates[0].URITemplate != resourceTemplate {
		t.Fatalf("templates: %+v %v", tmpl, err)
	}
	r, err := cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: "sandbox://res/work/notes.txt"})
	if err != nil || len(r.Contents) != 1 || r.Contents[0].Text != "hello resource" || r.Contents[0].MIMEType != "text/plain" {
		t.Fatalf("read: %+v %v", r, err)
	}
	for _, bad := range []string{"sandbox://res", "file:///etc/passwd", "sandbox:///x"} {
		if _, err := cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: bad}); err == nil {
			t.Errorf("%s: read", bad)
		}
	}
	p, err := cs.GetPrompt(ctx, &mcp.GetPromptParams{Name: "agentkernel"})
	if err != nil || len(p.Messages) != 1 || !strings.Contains(p.Messages[0].Content.(*mcp.TextContent).Text, "sandbox_run") {
		t.Fatalf("prompt: %+v %v", p, err)
	}
}
