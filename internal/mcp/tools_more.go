package mcp

import (
	"context"
	"errors"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentkernel/agentkernel/pkg/api"
)

// The tools beyond the first seven: upstream's start, stop, extend_ttl and
// the background-command tools, and what an agent needs beyond upstream
// (file_list, network_log). Each goes through access: a sandbox this
// session created, or one the policy would allow it to create.

type (
	StatusOutput struct {
		Name   string `json:"name"`
		Status string `json:"status"`
	}
	ExtendInput struct {
		Name string `json:"name" jsonschema:"sandbox name"`
		By   string `json:"by" jsonschema:"how much longer the sandbox may live, e.g. 30m, 2h or 1d"`
	}
	ExtendOutput struct {
		Name      string `json:"name"`
		ExpiresAt string `json:"expires_at,omitempty" jsonschema:"the new expiry, RFC 3339"`
	}
	DetachInput struct {
		Name    string  `json:"name" jsonschema:"sandbox name"`
		Command Command `json:"command" jsonschema:"the command: argv array, or one shell string"`
	}
	DetachedInput struct {
		Name string `json:"name" jsonschema:"sandbox name"`
		ID   string `json:"id" jsonschema:"the background command's id, from sandbox_exec_detach"`
	}
	DetachedOutput struct {
		ID       string `json:"id"`
		Status   string `json:"status" jsonschema:"running, completed or failed"`
		PID      int    `json:"pid,omitempty"`
		ExitCode *int   `json:"exit_code,omitempty"`
	}
	LogsOutput struct {
		Stdout    string `json:"stdout"`
		Stderr    string `json:"stderr"`
		Truncated bool   `json:"truncated,omitempty" jsonschema:"true when stdout or stderr was cut in the middle"`
	}
	KillOutput struct {
		Killed string `json:"killed"`
	}
	DirInput struct {
		Name string `json:"name" jsonschema:"sandbox name"`
		Path string `json:"path" jsonschema:"absolute directory path inside the sandbox"`
	}
	DirEntry struct {
		Name  string `json:"name"`
		Size  int64  `json:"size"`
		IsDir bool   `json:"is_dir"`
		Mode  string `json:"mode"`
	}
	DirOutput struct {
		Path    string     `json:"path"`
		Entries []DirEntry `json:"entries"`
	}
	NetworkLogInput struct {
		Name  string `json:"name" jsonschema:"sandbox name"`
		Limit int    `json:"limit,omitempty" jsonschema:"how many of the last events (default 200)"`
	}
	NetworkLogOutput struct {
		Events []api.NetworkEvent `json:"events"`
	}
)

// moreClient is what the further tools need of the daemon's API; the
// Client passed to New may implement it (pkg/client does), and without it
// these tools are not offered.
type moreClient interface {
	StartSandbox(ctx context.Context, name string) (api.SandboxInfo, error)
	StopSandbox(ctx context.Context, name string) (api.SandboxInfo, error)
	PauseSandbox(ctx context.Context, name string) (api.SandboxInfo, error)
	ResumeSandbox(ctx context.Context, name string) (api.SandboxInfo, error)
	ExtendSandbox(ctx context.Context, name, by string) (api.ExtendResponse, error)
	ExecDetached(ctx context.Context, name string, req api.ExecRequest) (api.DetachedCommand, error)
	GetDetached(ctx context.Context, name, id string) (api.DetachedCommand, error)
	DetachedLogs(ctx context.Context, name, id string) (api.DetachedLogs, error)
	KillDetached(ctx context.Context, name, id string) error
	ListDir(ctx context.Context, name, path string) ([]api.FileInfo, error)
	NetworkLog(ctx context.Context, name string, limit int) ([]api.NetworkEvent, error)
}

func (st *state) addMoreTools(s *mcp.Server) {
	mc, ok := st.c.(moreClient)
	if !ok {
		return
	}
	for _, t := range []struct {
		name, desc string
		op         func(context.Context, string) (api.SandboxInfo, error)
	}{
		{"sandbox_start", "Start a stopped sandbox.", mc.StartSandbox},
		{"sandbox_stop", "Stop a sandbox; its files are kept.", mc.StopSandbox},
		{"sandbox_pause", "Freeze a running sandbox's processes: they keep their memory and use no CPU until sandbox_resume.", mc.PauseSandbox},
		{"sandbox_resume", "Let a paused sandbox's processes go on where they were.", mc.ResumeSandbox},
	} {
		op := t.op
		mcp.AddTool(s, &mcp.Tool{Name: t.name, Description: t.desc},
			func(ctx context.Context, req *mcp.CallToolRequest, in NameInput) (*mcp.CallToolResult, StatusOutput, error) {
				if err := st.access(ctx, st.session(req.Session), in.Name); err != nil {
					return nil, StatusOutput{}, err
				}
				info, err := op(ctx, in.Name)
				return nil, StatusOutput{Name: info.Name, Status: info.Status}, err
			})
	}
	mcp.AddTool(s, &mcp.Tool{Name: "sandbox_extend_ttl", Description: "Let a sandbox live longer before it is removed."},
		func(ctx context.Context, req *mcp.CallToolRequest, in ExtendInput) (*mcp.CallToolResult, ExtendOutput, error) {
			if err := st.access(ctx, st.session(req.Session), in.Name); err != nil {
				return nil, ExtendOutput{}, err
			}
			r, err := mc.ExtendSandbox(ctx, in.Name, in.By)
			out := ExtendOutput{Name: in.Name}
			if r.ExpiresAt != nil {
				out.ExpiresAt = r.ExpiresAt.UTC().Format("2006-01-02T15:04:05Z07:00")
			}
			return nil, out, err
		})
	mcp.AddTool(s, &mcp.Tool{Name: "sandbox_exec_detach", InputSchema: inputSchema[DetachInput](), Description: "Start a command in the background of a sandbox; returns its id."},
		func(ctx context.Context, req *mcp.CallToolRequest, in DetachInput) (*mcp.CallToolResult, DetachedOutput, error) {
			if err := st.access(ctx, st.session(req.Session), in.Name); err != nil {
				return nil, DetachedOutput{}, err
			}
			if len(in.Command) == 0 {
				return nil, DetachedOutput{}, errors.New("command is empty")
			}
			d, err := mc.ExecDetached(ctx, in.Name, api.ExecRequest{Command: in.Command})
			return nil, detachedOutput(d), err
		})
	mcp.AddTool(s, &mcp.Tool{Name: "sandbox_exec_status", Description: "Whether a background command runs, and how it ended."},
		func(ctx context.Context, req *mcp.CallToolRequest, in DetachedInput) (*mcp.CallToolResult, DetachedOutput, error) {
			if err := st.access(ctx, st.session(req.Session), in.Name); err != nil {
				return nil, DetachedOutput{}, err
			}
			d, err := mc.GetDetached(ctx, in.Name, in.ID)
			return nil, detachedOutput(d), err
		})
	mcp.AddTool(s, &mcp.Tool{Name: "sandbox_exec_logs", Description: "What a background command has written so far."},
		func(ctx context.Context, req *mcp.CallToolRequest, in DetachedInput) (*mcp.CallToolResult, LogsOutput, error) {
			if err := st.access(ctx, st.session(req.Session), in.Name); err != nil {
				return nil, LogsOutput{}, err
			}
			l, err := mc.DetachedLogs(ctx, in.Name, in.ID)
			out, cut1 := truncateMiddle(l.Stdout, st.policy.MaxOutputBytes)
			errs, cut2 := truncateMiddle(l.Stderr, st.policy.MaxOutputBytes)
			return nil, LogsOutput{Stdout: out, Stderr: errs, Truncated: cut1 || cut2}, err
		})
	mcp.AddTool(s, &mcp.Tool{Name: "sandbox_exec_kill", Description: "Kill a background command."},
		func(ctx context.Context, req *mcp.CallToolRequest, in DetachedInput) (*mcp.CallToolResult, KillOutput, error) {
			if err := st.access(ctx, st.session(req.Session), in.Name); err != nil {
				return nil, KillOutput{}, err
			}
			return nil, KillOutput{Killed: in.ID}, mc.KillDetached(ctx, in.Name, in.ID)
		})
	mcp.AddTool(s, &mcp.Tool{Name: "sandbox_file_list", Description: "List a directory of a sandbox."},
		func(ctx context.Context, req *mcp.CallToolRequest, in DirInput) (*mcp.CallToolResult, DirOutput, error) {
			if err := st.access(ctx, st.session(req.Session), in.Name); err != nil {
				return nil, DirOutput{}, err
			}
			list, err := mc.ListDir(ctx, in.Name, in.Path)
			out := DirOutput{Path: in.Path, Entries: []DirEntry{}}
			for _, f := range list {
				out.Entries = append(out.Entries, DirEntry{Name: f.Name, Size: f.Size, IsDir: f.IsDir, Mode: f.Mode})
			}
			return nil, out, err
		})
	mcp.AddTool(s, &mcp.Tool{Name: "sandbox_network_log", Description: "The last network events of a sandbox: names resolved, connections allowed and refused, with the rule."},
		func(ctx context.Context, req *mcp.CallToolRequest, in NetworkLogInput) (*mcp.CallToolResult, NetworkLogOutput, error) {
			if err := st.access(ctx, st.session(req.Session), in.Name); err != nil {
				return nil, NetworkLogOutput{}, err
			}
			ev, err := mc.NetworkLog(ctx, in.Name, in.Limit)
			if ev == nil {
				ev = []api.NetworkEvent{}
			}
			return nil, NetworkLogOutput{Events: ev}, err
		})
}

func detachedOutput(d api.DetachedCommand) DetachedOutput {
	return DetachedOutput{ID: d.ID, Status: d.Status, PID: d.PID, ExitCode: d.ExitCode}
}
