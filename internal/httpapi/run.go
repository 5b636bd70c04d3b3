package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"unicode/utf8"

	"github.com/agentkernel/agentkernel/internal/sandbox"
	"github.com/agentkernel/agentkernel/pkg/api"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// runName returns a fresh "run-<8 hex>" sandbox name.
func runName() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return "run-" + hex.EncodeToString(b[:])
}

// checkRun validates a run request and returns its exec options.
func checkRun(req api.RunRequest) (sandbox.ExecOptions, error) {
	if req.Image != "" {
		if err := checkImageName(req.Image); err != nil {
			return sandbox.ExecOptions{}, err
		}
	}
	if req.VCPUs < 0 || req.MemoryMB < 0 || req.DiskMB < 0 {
		return sandbox.ExecOptions{}, invalidf("vcpus, memory_mb and disk_mb must not be negative")
	}
	if len(req.Command) == 0 {
		// The image's Entrypoint and Cmd, filled in by the Service.
		return execOptionsAnyArgv(runExecRequest(req), false)
	}
	return execOptions(runExecRequest(req), false)
}

// withRunSandbox creates the ephemeral sandbox name for req, calls fn in it
// and removes it afterwards, always: removal runs detached from ctx (the
// client may be gone) under s.opts.CleanupTimeout.
func (s *server) withRunSandbox(ctx context.Context, name string, req api.RunRequest, fn func() error) error {
	start := true
	_, err := s.svc.CreateSandbox(ctx, api.CreateSandboxRequest{
		Name: name, Image: req.Image, Profile: req.Profile, Backend: req.Backend,
		MemoryMB: req.MemoryMB, VCPUs: req.VCPUs, DiskMB: req.DiskMB, Ephemeral: true, Start: &start, Network: req.Network,
		NoPool: req.Fast != nil && !*req.Fast,
	})
	if err != nil {
		if ctx.Err() != nil {
			// Cancelled part-way: the sandbox may exist.
			s.cleanupRun(ctx, name)
		}
		return err
	}
	defer s.cleanupRun(ctx, name)
	return fn()
}

func (s *server) cleanupRun(ctx context.Context, name string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opts.CleanupTimeout)
	defer cancel()
	if err := s.svc.RemoveSandbox(ctx, name); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
		s.log.Error("removing a run sandbox", "sandbox", name, "err", err)
	}
}

// runOne runs req in a new ephemeral sandbox and collects the output.
func (s *server) runOne(ctx context.Context, req api.RunRequest, opts sandbox.ExecOptions) (api.RunResponse, error) {
	name := runName()
	var resp api.RunResponse
	err := s.withRunSandbox(ctx, name, req, func() error {
		var err error
		resp.ExecResponse, err = s.execCollect(ctx, name, opts, req.Stdin)
		return err
	})
	resp.Sandbox = name
	return resp, err
}

func (s *server) run(w http.ResponseWriter, r *http.Request) {
	var req api.RunRequest
	if err := s.decodeJSON(w, r, &req, true); err != nil {
		s.writeError(w, r, err)
		return
	}
	opts, err := checkRun(req)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	resp, err := s.runOne(r.Context(), req, opts)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeExec(w, resp.ExecResponse, resp)
}

func (s *server) batchRun(w http.ResponseWriter, r *http.Request) {
	var req api.BatchRunRequest
	if err := s.decodeJSON(w, r, &req, true); err != nil {
		s.writeError(w, r, err)
		return
	}
	if len(req.Commands) == 0 {
		s.writeError(w, r, invalidf("commands array is required and must not be empty"))
		return
	}
	if len(req.Commands) > s.opts.MaxBatchCommands {
		s.writeError(w, r, invalidf("at most %d commands per batch, got %d", s.opts.MaxBatchCommands, len(req.Commands)))
		return
	}
	opts := make([]sandbox.ExecOptions, len(req.Commands))
	for i, c := range req.Commands {
		var err error
		if opts[i], err = checkRun(c); err != nil {
			s.writeError(w, r, invalidf("commands[%d]: %v", i, err))
			return
		}
	}
	results := make([]api.BatchResult, len(req.Commands))
	sem := make(chan struct{}, s.opts.BatchConcurrency)
	var wg sync.WaitGroup
	for i := range req.Commands {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			results[i] = batchResult(s.runOne(r.Context(), req.Commands[i], opts[i]))
		}()
	}
	wg.Wait()
	if err := r.Context().Err(); err != nil {
		return // the client is gone
	}
	writeData(w, http.StatusOK, api.BatchRunResponse{Results: results})
}

// batchResult is upstream's {output, error} for one run: error is set when
// the command could not run or exited non-zero.
func batchResult(resp api.RunResponse, err error) api.BatchResult {
	if err != nil {
		msg := err.Error()
		return api.BatchResult{Error: &msg}
	}
	out, code := resp.Output, resp.ExitCode
	res := api.BatchResult{Output: &out, ExitCode: &code}
	if code != 0 {
		msg := fmt.Sprintf("exit code %d", code)
		if resp.Error != "" {
			msg += ": " + resp.Error
		}
		res.Error = &msg
	}
	return res
}

// runStream serves POST /run/stream. Request errors are answered as JSON
// with their status; once the stream has started, failures are an "error"
// event.
func (s *server) runStream(w http.ResponseWriter, r *http.Request) {
	var req api.RunRequest
	if err := s.decodeJSON(w, r, &req, true); err != nil {
		s.writeError(w, r, err)
		return
	}
	opts, err := checkRun(req)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	st := newSSEStream(w, cancel)
	defer st.close()
	st.start()
	name := runName()
	send := st.send
	if send(api.EventStarted, api.StartedEvent{Sandbox: name}) != nil {
		return
	}
	_ = send(api.EventProgress, map[string]string{"stage": "creating", "sandbox": name})
	var exit sandbox.ExitStatus
	err = s.withRunSandbox(ctx, name, req, func() error {
		if err := send(api.EventProgress, map[string]string{"stage": "executing", "sandbox": name}); err != nil {
			return err
		}
		p, err := s.svc.Exec(ctx, name, opts)
		if err != nil {
			return err
		}
		defer p.Close()
		if opts.Stdin {
			feedStdin(p, req.Stdin)
		}
		carry := map[string][]byte{}
		exit, err = drain(ctx, p, func(stream string, b []byte) error {
			var data []byte
			data, carry[stream] = completeUTF8(append(carry[stream], b...))
			if len(data) == 0 {
				return nil
			}
			return send(api.EventOutput, api.OutputEvent{Stream: stream, Data: string(data)})
		})
		for stream, rest := range carry {
			if err == nil && len(rest) > 0 {
				err = send(api.EventOutput, api.OutputEvent{Stream: stream, Data: string(rest)})
			}
		}
		return err
	})
	if ctx.Err() != nil {
		return // the client is gone; the sandbox has been removed
	}
	if err != nil {
		s.streamError(st, r, api.EventError, err)
		return
	}
	code := exitCode(exit)
	_ = send(api.EventDone, api.DoneEvent{ExitCode: code, Success: code == 0})
}

// completeUTF8 splits b into the prefix that ends on a whole UTF-8
// character and an incomplete trailing character (at most 3 bytes) to
// carry to the next chunk, so no character is split across two "output"
// events.
func completeUTF8(b []byte) (whole, rest []byte) {
	cut := len(b)
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			if !utf8.FullRune(b[i:]) {
				cut = i
			}
			break
		}
	}
	return b[:cut], append([]byte(nil), b[cut:]...)
}
