package api

// Streaming exec over WebSocket: GET /sandboxes/{name}/exec/ws (and
// /sandboxes/{name}/attach, which is the same with a login shell and a TTY).
//
// The client's first message is a text message holding an ExecRequest. After
// that:
//
//   - Binary messages carry data. The first byte is the channel
//     (StreamStdin, StreamStdout, StreamStderr), the rest is payload. The
//     client sends only StreamStdin; the server only StreamStdout and
//     StreamStderr (with a TTY, everything arrives on StreamStdout).
//   - Text messages carry a StreamControl as JSON: the client sends
//     "resize", "signal" and "stdin_eof"; the server sends "started" once and
//     "exit" last, then closes the connection normally. A failure before the
//     process starts is an "error" message followed by a close.
const (
	StreamStdin  byte = 0
	StreamStdout byte = 1
	StreamStderr byte = 2
)

// StreamControl is a control message of the streaming exec protocol.
type StreamControl struct {
	Type     string `json:"type"` // started, resize, signal, stdin_eof, exit, error
	Rows     uint16 `json:"rows,omitempty"`
	Cols     uint16 `json:"cols,omitempty"`
	Signal   int    `json:"signal,omitempty"`
	PID      int    `json:"pid,omitempty"`
	ExitCode int    `json:"exit_code,omitempty"`
	TimedOut bool   `json:"timed_out,omitempty"`
	Message  string `json:"message,omitempty"`
	Code     string `json:"code,omitempty"`
}
