package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"sync"
	"syscall"
	"time"

	"github.com/coder/websocket"

	"github.com/agentkernel/agentkernel/internal/sandbox"
	"github.com/agentkernel/agentkernel/pkg/api"
)

const (
	// wsReadLimit bounds one client message (a stdin chunk or a control
	// message, or the first ExecRequest).
	wsReadLimit = 1 << 20
	// wsFirstMessageTimeout is how long the client has to send its
	// ExecRequest after the upgrade.
	wsFirstMessageTimeout = 30 * time.Second
	// wsStdinQueue is how many stdin messages may wait for a process that
	// is not reading, before the connection's reader waits too.
	wsStdinQueue = 16
	maxSignal    = 64
)

func (s *server) execWS(w http.ResponseWriter, r *http.Request) { s.serveStream(w, r, false) }

func (s *server) attach(w http.ResponseWriter, r *http.Request) { s.serveStream(w, r, true) }

// serveStream runs one streaming exec over a WebSocket (protocol in
// pkg/api/stream.go). attach forces a TTY and defaults the command to a
// login shell. The process is killed when the client goes away.
func (s *server) serveStream(w http.ResponseWriter, r *http.Request, attach bool) {
	name, err := pathName(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	// Accept refuses a browser Origin that differs from Host (no
	// cross-origin use); that check is kept on purpose.
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		s.log.Debug("websocket upgrade refused", "path", r.URL.Path, "err", err)
		return
	}
	defer c.CloseNow()
	c.SetReadLimit(wsReadLimit)
	// The request's context must not be used after the hijack; this one is
	// the stream's lifetime, cancelled when either side ends.
	ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
	defer cancel()

	opts, err := readStreamRequest(ctx, c, attach)
	if err != nil {
		s.wsFail(ctx, c, err)
		return
	}
	p, err := s.svc.Exec(ctx, name, opts)
	if err != nil {
		s.wsFail(ctx, c, err)
		return
	}
	var wg sync.WaitGroup
	defer func() {
		cancel()
		_ = c.CloseNow()
		_ = p.Close()
		wg.Wait()
	}()
	if err := wsControl(ctx, c, api.StreamControl{Type: "started", PID: p.PID()}); err != nil {
		_ = p.Signal(syscall.SIGKILL)
		return
	}

	stdin := make(chan []byte, wsStdinQueue)
	wg.Add(2)
	go func() {
		defer wg.Done()
		pumpStdin(p.Stdin(), stdin)
	}()
	go func() {
		defer wg.Done()
		defer cancel() // the client is gone or broke the protocol: kill
		s.wsInput(ctx, c, p, stdin)
	}()

	st, err := drain(ctx, p, func(stream string, b []byte) error {
		ch := api.StreamStdout
		if stream == "stderr" {
			ch = api.StreamStderr
		}
		msg := make([]byte, 1+len(b))
		msg[0] = ch
		copy(msg[1:], b)
		return c.Write(ctx, websocket.MessageBinary, msg)
	})
	if ctx.Err() != nil {
		return
	}
	if err != nil {
		_, code, err := statusOf(err)
		_ = wsControl(ctx, c, api.StreamControl{Type: "error", Message: err.Error(), Code: code})
		_ = c.Close(websocket.StatusInternalError, "error")
		return
	}
	exit := api.StreamControl{Type: "exit", ExitCode: exitCode(st), Signal: st.Signal, TimedOut: st.TimedOut, Message: st.Error}
	if wsControl(ctx, c, exit) == nil {
		_ = c.Close(websocket.StatusNormalClosure, "")
	}
}

// readStreamRequest reads and validates the client's first message.
func readStreamRequest(ctx context.Context, c *websocket.Conn, attach bool) (sandbox.ExecOptions, error) {
	ctx, cancel := context.WithTimeout(ctx, wsFirstMessageTimeout)
	defer cancel()
	typ, data, err := c.Read(ctx)
	if err != nil {
		return sandbox.ExecOptions{}, invalidf("reading the exec request: %v", err)
	}
	if typ != websocket.MessageText {
		return sandbox.ExecOptions{}, invalidf("the first message must be a text message holding an ExecRequest")
	}
	var req api.ExecRequest
	if err := decodeStrict(bytes.NewReader(data), &req, true); err != nil {
		return sandbox.ExecOptions{}, err
	}
	if attach {
		req.TTY = true
		if len(req.Command) == 0 {
			req.Command = []string{"/bin/sh", "-l"}
		}
	}
	// No command means the image's Entrypoint and Cmd; the sandbox
	// manager fills them in, or refuses when the image has none.
	return execOptionsAnyArgv(req, true)
}

// wsInput reads the client's messages until the connection ends: stdin
// data goes to the stdin queue, control messages to p. Unknown control
// types are ignored (for newer clients); anything else malformed ends the
// stream.
func (s *server) wsInput(ctx context.Context, c *websocket.Conn, p sandbox.Process, stdin chan<- []byte) {
	stdinOpen := true
	closeStdin := func() {
		if stdinOpen {
			stdinOpen = false
			close(stdin)
		}
	}
	defer closeStdin()
	for {
		typ, data, err := c.Read(ctx)
		if err != nil {
			return
		}
		if typ == websocket.MessageBinary {
			if len(data) == 0 || data[0] != api.StreamStdin {
				_ = c.Close(websocket.StatusPolicyViolation, "clients send only stdin (channel 0)")
				return
			}
			if !stdinOpen || len(data) == 1 {
				continue
			}
			select {
			case stdin <- data[1:]:
			case <-ctx.Done():
				return
			}
			continue
		}
		var m api.StreamControl
		if err := json.Unmarshal(data, &m); err != nil {
			_ = c.Close(websocket.StatusPolicyViolation, "invalid control message")
			return
		}
		switch m.Type {
		case "stdin_eof":
			closeStdin()
		case "resize":
			if m.Rows > 0 && m.Cols > 0 {
				if err := p.Resize(m.Rows, m.Cols); err != nil {
					s.log.Debug("resize failed", "err", err)
				}
			}
		case "signal":
			if m.Signal > 0 && m.Signal <= maxSignal {
				if err := p.Signal(syscall.Signal(m.Signal)); err != nil {
					s.log.Debug("signal failed", "signal", m.Signal, "err", err)
				}
			}
		}
	}
}

// pumpStdin writes the queued stdin chunks to in and closes it when the
// queue is closed. After a write error it discards the rest.
func pumpStdin(in io.WriteCloser, queue <-chan []byte) {
	var err error
	for b := range queue {
		if in != nil && err == nil {
			_, err = in.Write(b)
		}
	}
	if in != nil {
		_ = in.Close()
	}
}

func wsControl(ctx context.Context, c *websocket.Conn, m api.StreamControl) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return c.Write(ctx, websocket.MessageText, b)
}

// wsFail reports an error that stopped the stream before the process ran,
// then closes the connection.
func (s *server) wsFail(ctx context.Context, c *websocket.Conn, err error) {
	status, code, err := statusOf(err)
	if status >= 500 {
		s.log.Error("streaming exec failed", "err", err)
	}
	_ = wsControl(ctx, c, api.StreamControl{Type: "error", Message: err.Error(), Code: code})
	closeCode := websocket.StatusPolicyViolation
	if status >= 500 {
		closeCode = websocket.StatusInternalError
	}
	_ = c.Close(closeCode, "error")
}
