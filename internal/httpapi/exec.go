package httpapi

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/agentkernel/agentkernel/internal/receipt"
	"github.com/agentkernel/agentkernel/internal/sandbox"
	"github.com/agentkernel/agentkernel/pkg/api"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// outputGrace is how long output may keep arriving after the process has
// exited (from children that inherited its stdout) before the process
// handle is closed to end it.
const outputGrace = 5 * time.Second

// chunkSize is the read size for process output.
const chunkSize = 32 << 10

// drain copies p's stdout and stderr to onChunk, in arrival order, with
// onChunk called from one goroutine at a time, and returns how p exited.
// If onChunk fails, p is killed, the rest of its output is discarded and
// drain returns that error. If ctx ends first, p is killed.
func drain(ctx context.Context, p sandbox.Process, onChunk func(stream string, b []byte) error) (sandbox.ExitStatus, error) {
	stop := context.AfterFunc(ctx, func() {
		_ = p.Signal(syscall.SIGKILL)
		_ = p.Close()
	})
	defer stop()

	var (
		mu       sync.Mutex // serializes onChunk and guards chunkErr
		chunkErr error
		wg       sync.WaitGroup
	)
	pump := func(stream string, r io.Reader) {
		defer wg.Done()
		buf := make([]byte, chunkSize)
		for {
			n, err := r.Read(buf)
			if n > 0 {
				mu.Lock()
				if chunkErr == nil {
					if chunkErr = onChunk(stream, buf[:n]); chunkErr != nil {
						_ = p.Signal(syscall.SIGKILL)
					}
				}
				mu.Unlock()
			}
			if err != nil {
				return
			}
		}
	}
	for _, o := range []struct {
		name string
		r    io.Reader
	}{{"stdout", p.Stdout()}, {"stderr", p.Stderr()}} {
		if o.r != nil {
			wg.Add(1)
			go pump(o.name, o.r)
		}
	}
	pumped := make(chan struct{})
	go func() { wg.Wait(); close(pumped) }()

	st, werr := p.Wait()
	select {
	case <-pumped:
	case <-time.After(outputGrace):
		_ = p.Close()
		<-pumped
	}
	mu.Lock()
	defer mu.Unlock()
	if chunkErr != nil {
		return st, chunkErr
	}
	if werr != nil && ctx.Err() != nil {
		return st, ctx.Err()
	}
	return st, werr
}

// exitCode is the shell-style code for st: the code, or 128+signal for a
// signal death, or 124 for a timeout.
func exitCode(st sandbox.ExitStatus) int {
	switch {
	case st.Code != 0:
		return st.Code
	case st.Signal > 0:
		return 128 + st.Signal
	case st.TimedOut:
		return 124
	}
	return 0
}

// feedStdin writes data to p's standard input and closes it, in the
// background (the process may never read it).
func feedStdin(p sandbox.Process, data string) {
	in := p.Stdin()
	if in == nil {
		return
	}
	go func() {
		if data != "" {
			_, _ = io.WriteString(in, data)
		}
		_ = in.Close()
	}()
}

// execCollect runs opts in sandbox name and collects its output, at most
// s.opts.MaxExecOutput bytes.
func (s *server) execCollect(ctx context.Context, name string, opts sandbox.ExecOptions, stdin string) (api.ExecResponse, error) {
	p, err := s.svc.Exec(ctx, name, opts)
	if err != nil {
		return api.ExecResponse{}, err
	}
	defer p.Close()
	if opts.Stdin {
		feedStdin(p, stdin)
	}
	var all, out, errb strings.Builder
	limit := s.opts.MaxExecOutput
	st, err := drain(ctx, p, func(stream string, b []byte) error {
		if int64(all.Len()+len(b)) > limit {
			return tooLargef("exec output exceeded %d bytes; the process was killed. Use the streaming exec (GET /sandboxes/{name}/exec/ws) or redirect the output to a file", limit)
		}
		all.Write(b)
		if stream == "stdout" {
			out.Write(b)
		} else {
			errb.Write(b)
		}
		return nil
	})
	if err != nil {
		return api.ExecResponse{}, err
	}
	return api.ExecResponse{
		Output: all.String(), Stdout: out.String(), Stderr: errb.String(),
		ExitCode: exitCode(st), TimedOut: st.TimedOut, Error: st.Error,
	}, nil
}

func (s *server) exec(w http.ResponseWriter, r *http.Request) {
	name, err := pathName(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var req api.ExecRequest
	if err := s.decodeJSON(w, r, &req, true); err != nil {
		s.writeError(w, r, err)
		return
	}
	opts, err := execOptions(req, false)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var issuer ReceiptIssuer
	if req.Receipt {
		var ok bool
		if issuer, ok = s.svc.(ReceiptIssuer); !ok {
			s.writeError(w, r, &classError{class: errdefs.ErrNotImplemented, msg: "this server issues no receipts"})
			return
		}
	}
	started := time.Now()
	resp, err := s.execCollect(r.Context(), name, opts, req.Stdin)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if issuer != nil {
		rc, err := issuer.IssueReceipt(r.Context(), receipt.Run{Sandbox: name, Command: opts.Argv, Workdir: opts.Workdir,
			User: opts.User, Result: resp, Started: started, Finished: time.Now()})
		if err != nil {
			s.writeError(w, r, fmt.Errorf("the command ran but its receipt could not be issued: %w", err))
			return
		}
		resp.Receipt = rc
	}
	writeExec(w, resp, resp)
}

// ReceiptIssuer is implemented by a Service that signs receipts of the
// commands it runs (POST …/exec with "receipt": true); without it such a
// request answers 501 before anything runs.
type ReceiptIssuer interface {
	IssueReceipt(ctx context.Context, run receipt.Run) (*api.SignedReceipt, error)
}

func (s *server) execDetached(w http.ResponseWriter, r *http.Request) {
	name, err := pathName(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var req api.ExecRequest
	if err := s.decodeJSON(w, r, &req, true); err != nil {
		s.writeError(w, r, err)
		return
	}
	if req.Stdin != "" {
		s.writeError(w, r, invalidf("a detached command takes no stdin"))
		return
	}
	opts, err := execOptions(req, false)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	cmd, err := s.svc.StartDetached(r.Context(), name, opts)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeData(w, http.StatusOK, cmd)
}

func (s *server) listDetached(w http.ResponseWriter, r *http.Request) {
	name, err := pathName(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	list, err := s.svc.ListDetached(r.Context(), name)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if list == nil {
		list = []api.DetachedCommand{}
	}
	writeData(w, http.StatusOK, list)
}

// detachedTarget returns the validated {name} and {id} of r.
func detachedTarget(r *http.Request) (name, id string, err error) {
	if name, err = pathName(r); err != nil {
		return "", "", err
	}
	id = r.PathValue("id")
	return name, id, checkDetachedID(id)
}

func (s *server) getDetached(w http.ResponseWriter, r *http.Request) {
	name, id, err := detachedTarget(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	cmd, err := s.svc.GetDetached(r.Context(), name, id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeData(w, http.StatusOK, cmd)
}

func (s *server) detachedLogs(w http.ResponseWriter, r *http.Request) {
	name, id, err := detachedTarget(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	stream := r.URL.Query().Get("stream")
	if stream != "" && stream != "stdout" && stream != "stderr" {
		s.writeError(w, r, invalidf("query parameter stream must be stdout or stderr, not %q", stream))
		return
	}
	logs, err := s.svc.DetachedLogs(r.Context(), name, id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	switch stream {
	case "stdout":
		logs.Stderr = ""
	case "stderr":
		logs.Stdout = ""
	}
	writeData(w, http.StatusOK, logs)
}

func (s *server) killDetached(w http.ResponseWriter, r *http.Request) {
	name, id, err := detachedTarget(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.svc.KillDetached(r.Context(), name, id); err != nil {
		s.writeError(w, r, err)
		return
	}
	writeData(w, http.StatusOK, "Command killed")
}
