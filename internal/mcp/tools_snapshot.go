package mcp

import (
	"context"
	"errors"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentkernel/agentkernel/pkg/api"
)

type (
	SnapshotTakeInput struct {
		Sandbox string `json:"sandbox" jsonschema:"sandbox to snapshot"`
		Name    string `json:"name,omitempty" jsonschema:"snapshot name (default SANDBOX-snap-UNIXTIME)"`
		Memory  bool   `json:"memory,omitempty" jsonschema:"also checkpoint memory and processes (gvisor only; other backends refuse)"`
	}
	SnapshotNameInput struct {
		Name string `json:"name" jsonschema:"snapshot name"`
	}
	SnapshotRestoreInput struct {
		Name    string `json:"name" jsonschema:"snapshot name"`
		As      string `json:"as,omitempty" jsonschema:"name of the new sandbox (default the snapshot's)"`
		Backend string `json:"backend,omitempty" jsonschema:"backend of the new sandbox (default the source's)"`
	}
	SnapshotListOutput struct {
		Snapshots []api.SnapshotInfo `json:"snapshots"`
	}
	SnapshotDeleteOutput struct {
		Deleted string `json:"deleted"`
	}
)

// snapshotClient is what the snapshot tools need; pkg/client implements it.
type snapshotClient interface {
	ListSnapshots(ctx context.Context) ([]api.SnapshotInfo, error)
	TakeSnapshot(ctx context.Context, req api.TakeSnapshotRequest) (api.SnapshotInfo, error)
	GetSnapshot(ctx context.Context, name string) (api.SnapshotInfo, error)
	DeleteSnapshot(ctx context.Context, name string) error
	RestoreSnapshot(ctx context.Context, name string, req api.RestoreSnapshotRequest) (api.SandboxInfo, error)
}

// addSnapshotTools offers filesystem snapshots. Taking one needs access
// to the sandbox; restoring one is a create, bounded by the policy like
// sandbox_create (the default profile and the snapshot's image must be
// allowed) and owned by the session.
func (st *state) addSnapshotTools(s *mcp.Server) {
	sc, ok := st.c.(snapshotClient)
	if !ok {
		return
	}
	mcp.AddTool(s, &mcp.Tool{Name: "snapshot_list", Description: "List filesystem snapshots."},
		func(ctx context.Context, req *mcp.CallToolRequest, _ ListInput) (*mcp.CallToolResult, SnapshotListOutput, error) {
			l, err := sc.ListSnapshots(ctx)
			if l == nil {
				l = []api.SnapshotInfo{}
			}
			return nil, SnapshotListOutput{Snapshots: l}, err
		})
	mcp.AddTool(s, &mcp.Tool{Name: "snapshot_take", Description: "Take a snapshot of a sandbox: its files, and with memory its processes too (gvisor only)."},
		func(ctx context.Context, req *mcp.CallToolRequest, in SnapshotTakeInput) (*mcp.CallToolResult, api.SnapshotInfo, error) {
			if err := st.access(ctx, st.session(req.Session), in.Sandbox); err != nil {
				return nil, api.SnapshotInfo{}, err
			}
			info, err := sc.TakeSnapshot(ctx, api.TakeSnapshotRequest{Sandbox: in.Sandbox, Name: in.Name, Memory: in.Memory})
			return nil, info, err
		})
	mcp.AddTool(s, &mcp.Tool{Name: "snapshot_get", Description: "Describe a snapshot."},
		func(ctx context.Context, req *mcp.CallToolRequest, in SnapshotNameInput) (*mcp.CallToolResult, api.SnapshotInfo, error) {
			info, err := sc.GetSnapshot(ctx, in.Name)
			return nil, info, err
		})
	mcp.AddTool(s, &mcp.Tool{Name: "snapshot_delete", Description: "Delete a snapshot (refused while a running sandbox uses it)."},
		func(ctx context.Context, req *mcp.CallToolRequest, in SnapshotNameInput) (*mcp.CallToolResult, SnapshotDeleteOutput, error) {
			if in.Name == "" {
				return nil, SnapshotDeleteOutput{}, errors.New("name is empty")
			}
			return nil, SnapshotDeleteOutput{Deleted: in.Name}, sc.DeleteSnapshot(ctx, in.Name)
		})
	mcp.AddTool(s, &mcp.Tool{Name: "snapshot_restore", Description: "Create and start a sandbox from a snapshot, on any backend; it lives for this MCP session."},
		func(ctx context.Context, req *mcp.CallToolRequest, in SnapshotRestoreInput) (*mcp.CallToolResult, SandboxOutput, error) {
			snap, err := sc.GetSnapshot(ctx, in.Name)
			if err != nil {
				return nil, SandboxOutput{}, err
			}
			if _, err := st.policy.profile(""); err != nil {
				return nil, SandboxOutput{}, err
			}
			if _, err := st.policy.image(snap.Image); err != nil {
				return nil, SandboxOutput{}, err
			}
			s := st.session(req.Session)
			if err := st.reserve(s); err != nil {
				return nil, SandboxOutput{}, err
			}
			info, err := sc.RestoreSnapshot(ctx, in.Name, api.RestoreSnapshotRequest{As: in.As, Backend: in.Backend})
			if err != nil {
				st.release(s)
				return nil, SandboxOutput{}, err
			}
			st.own(s, info.Name, false)
			return nil, sandboxOutput(info, true), nil
		})
}
