package mcp

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentkernel/agentkernel/pkg/api"
	"github.com/agentkernel/agentkernel/pkg/client"
)

// Progress: when a tools/call carries a progress token, sandbox_exec and
// sandbox_run send notifications/progress while the command runs, so a
// host agent (and its user) sees a long build moving. sandbox_exec streams
// the command's output and reports how much has come; sandbox_run, whose
// sandbox lives only inside the daemon's call, reports the time elapsed.

// progressInterval is how often a running command's progress is sent.
const progressInterval = time.Second

// execStreamer is the streaming exec of pkg/client, which the Client
// passed to New may implement; without it sandbox_exec reports no
// progress.
type execStreamer interface {
	ExecStream(ctx context.Context, name string, req api.ExecRequest) (*client.Stream, error)
}

// reportProgress sends what status returns every progressInterval until
// the returned stop is called; with no progress token it does nothing.
func reportProgress(ctx context.Context, req *mcp.CallToolRequest, status func(elapsed time.Duration) (float64, string)) (stop func()) {
	token := req.Params.GetProgressToken()
	if token == nil || req.Session == nil {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		start := time.Now()
		tick := time.NewTicker(progressInterval)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				n, msg := status(time.Since(start))
				// A client gone away is the request's business, not ours.
				_ = req.Session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{ProgressToken: token, Progress: n, Message: msg})
			}
		}
	}()
	return func() { cancel(); wg.Wait() }
}

// elapsedStatus reports seconds elapsed.
func elapsedStatus(elapsed time.Duration) (float64, string) {
	s := elapsed.Round(time.Second)
	return s.Seconds(), fmt.Sprintf("running for %s", s)
}

// execStreaming runs req in sandbox name over a stream, keeping stdout and
// stderr as truncateMiddle would and reporting the bytes of output so far.
func (st *state) execStreaming(ctx context.Context, es execStreamer, req *mcp.CallToolRequest, name string, er api.ExecRequest) (ExecOutput, error) {
	s, err := es.ExecStream(ctx, name, er)
	if err != nil {
		return ExecOutput{}, err
	}
	defer s.Close() // kills the command if ctx (the call) ends first
	s.Stdin().Close()
	var seen atomic.Int64
	stop := reportProgress(ctx, req, func(elapsed time.Duration) (float64, string) {
		n := seen.Load()
		return float64(n), fmt.Sprintf("running for %s, %d bytes of output", elapsed.Round(time.Second), n)
	})
	defer stop()
	stdout := &middleBuffer{max: st.policy.MaxOutputBytes}
	stderr := &middleBuffer{max: st.policy.MaxOutputBytes}
	var wg sync.WaitGroup
	drain := func(dst io.Writer, src io.Reader) {
		defer wg.Done()
		io.Copy(io.MultiWriter(dst, writerFunc(func(p []byte) { seen.Add(int64(len(p))) })), src)
	}
	wg.Add(2)
	go drain(stdout, s.Stdout())
	go drain(stderr, s.Stderr())
	wg.Wait()
	exit, err := s.Wait()
	if err != nil {
		return ExecOutput{}, err
	}
	out, cut1 := stdout.String()
	errs, cut2 := stderr.String()
	return ExecOutput{Stdout: out, Stderr: errs, ExitCode: exit.ExitCode, TimedOut: exit.TimedOut, Truncated: cut1 || cut2, Error: exit.Message}, nil
}

// writerFunc is a Writer that hands each write to f and never fails.
type writerFunc func(p []byte)

func (f writerFunc) Write(p []byte) (int, error) { f(p); return len(p), nil }
