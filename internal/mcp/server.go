package mcp

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"os"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentkernel/agentkernel/internal/version"
	"github.com/agentkernel/agentkernel/pkg/api"
)

// SessionLabel is the label every sandbox an MCP session creates carries;
// its value is the session's id.
const SessionLabel = "agentkernel.mcp.session"

// Client is the part of the daemon's API (pkg/client) the tools use.
type Client interface {
	Run(ctx context.Context, req api.RunRequest) (api.RunResponse, error)
	CreateSandbox(ctx context.Context, req api.CreateSandboxRequest) (api.SandboxInfo, error)
	GetSandbox(ctx context.Context, name string) (api.SandboxInfo, error)
	ListSandboxes(ctx context.Context) ([]api.SandboxInfo, error)
	RemoveSandbox(ctx context.Context, name string) error
	Exec(ctx context.Context, name string, req api.ExecRequest) (api.ExecResponse, error)
	ReadFile(ctx context.Context, name, path string) ([]byte, error)
	WriteFile(ctx context.Context, name, path string, data io.Reader, mode os.FileMode) error
}

// New returns an MCP server whose tools drive the daemon through c within
// policy. A policy that fails Check is treated as the restrictive profile
// with no domains and no host directories; callers should Check first.
// Sandboxes a session creates are removed when that session ends.
func New(c Client, policy Policy) *mcp.Server {
	s, _ := newServer(c, policy)
	return s
}

// Serve runs one session of a server on t (mcp.StdioTransport for the
// CLI) until the client goes away or ctx is done, then removes the
// session's sandboxes before it returns.
func Serve(ctx context.Context, c Client, policy Policy, t mcp.Transport) error {
	s, st := newServer(c, policy)
	ss, err := s.Connect(ctx, t, nil)
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { ss.Close() })
	defer stop()
	err = ss.Wait()
	st.endSession(ss)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

func newServer(c Client, policy Policy) (*mcp.Server, *state) {
	p, err := policy.withDefaults()
	if err != nil {
		// Fail closed: a policy that does not check (Check says why)
		// allows the least: the restrictive profile, no domains beyond
		// it, no host directories.
		p = Policy{Profile: "restrictive", AllowedImages: policy.AllowedImages, MaxSandboxes: policy.MaxSandboxes, MaxOutputBytes: DefaultMaxOutputBytes}
	}
	st := &state{c: c, policy: p, sessions: map[*mcp.ServerSession]*session{}}
	s := mcp.NewServer(&mcp.Implementation{Name: "agentkernel", Version: version.Version}, &mcp.ServerOptions{
		Instructions: "Run commands and keep files in isolated agentkernel sandboxes.",
	})
	s.AddReceivingMiddleware(traceToolCalls)
	st.addTools(s)
	return s, st
}

// state is what the tools of one server share.
type state struct {
	c      Client
	policy Policy

	mu       sync.Mutex
	sessions map[*mcp.ServerSession]*session
}

// session is the sandboxes one MCP session holds.
type session struct {
	id    string
	held  int             // sandboxes held, ephemeral runs included
	owned map[string]bool // name -> keep
	ended bool
	done  chan struct{} // closed when the session's cleanup is over
}

// session returns ss's record, creating it (and the watcher that cleans
// up when ss ends) on first use.
func (st *state) session(ss *mcp.ServerSession) *session {
	st.mu.Lock()
	defer st.mu.Unlock()
	if s, ok := st.sessions[ss]; ok {
		return s
	}
	id := ""
	if ss != nil {
		id = ss.ID()
	}
	if id == "" {
		var b [8]byte
		rand.Read(b[:])
		id = hex.EncodeToString(b[:])
	}
	s := &session{id: id, owned: map[string]bool{}, done: make(chan struct{})}
	st.sessions[ss] = s
	if ss != nil {
		go func() {
			ss.Wait()
			st.endSession(ss)
		}()
	}
	return s
}

// reserve takes a sandbox slot of s, or fails naming the limit.
func (st *state) reserve(s *session) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	if s.ended {
		return errSessionEnded
	}
	if st.policy.MaxSandboxes > 0 && s.held >= st.policy.MaxSandboxes {
		return errTooMany(st.policy.MaxSandboxes)
	}
	s.held++
	return nil
}

func (st *state) release(s *session) {
	st.mu.Lock()
	s.held--
	st.mu.Unlock()
}

func (st *state) own(s *session, name string, keep bool) {
	st.mu.Lock()
	s.owned[name] = keep
	st.mu.Unlock()
}

// disown forgets name, returning whether s owned it.
func (st *state) disown(s *session, name string) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	_, ok := s.owned[name]
	if ok {
		delete(s.owned, name)
		s.held--
	}
	return ok
}

func (st *state) owns(s *session, name string) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	_, ok := s.owned[name]
	return ok
}

// endSession removes the sandboxes ss created without keep. The cleanup
// runs once per session, in whichever of Serve and the watcher gets there
// first; the other waits for it to finish.
func (st *state) endSession(ss *mcp.ServerSession) {
	st.mu.Lock()
	s, ok := st.sessions[ss]
	if !ok {
		st.mu.Unlock()
		return
	}
	if s.ended {
		st.mu.Unlock()
		<-s.done
		return
	}
	s.ended = true
	var names []string
	for name, keep := range s.owned {
		if !keep {
			names = append(names, name)
		}
	}
	st.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, name := range names {
		st.c.RemoveSandbox(ctx, name)
	}
	st.mu.Lock()
	delete(st.sessions, ss)
	st.mu.Unlock()
	close(s.done)
}
