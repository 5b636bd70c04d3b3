// Package agentproto is the protocol between the host (supervisor, daemon)
// and the guest agent that runs as PID 1 in every sandbox, and the host's
// client of it.
//
// # Transport
//
// One byte stream (a Unix socket, a socketpair, a virtio-serial port)
// carries a yamux session; the agent is the yamux server, the host the
// client. Nothing needs the sandbox's network. Every operation is its own
// yamux stream, so yamux's per-stream flow control makes a slow reader
// block only its own operation. The agent never opens streams; a client
// whose agent does ends the session.
//
// # Frames
//
// On each stream: [1 byte type][4 bytes big-endian length][payload], with
// payloads of at most MaxPayload (1 MiB). A longer length, an unknown type
// or a truncated frame is a protocol error (ErrProtocol): the stream is
// closed and the payload never allocated. The first frame of every stream is
// a FrameRequest whose JSON Request names the op; see the Op constants for
// each op's frames. An op fails with a FrameError carrying a WireError
// {code, message}, whose code is one of pkg/errdefs' classes, so that
// errors.Is(err, errdefs.ErrNotFound) works on the host.
//
// The first stream of a session is a hello: the client sends Version and
// refuses an agent that answers with another one, naming both.
//
// # Exec
//
// An exec stream carries the request, then Started (pid and the agent's id
// for the process), then Stdout/Stderr frames, then Exit, after which the
// agent closes the stream: all output is sent before Exit. The host sends
// Stdin and StdinEOF frames on the same stream. Closing its side before
// Exit abandons the process, which the agent then kills. Signals and PTY
// resizes travel on streams of their own (OpSignal, OpResize, by id) rather
// than as frames on the exec stream: stdin that the process does not read
// fills the exec stream's flow-control window, and a signal must still get
// through then.
//
// # Trust
//
// The client treats the agent as hostile: every frame is bounded, every
// call is bounded by its context or a named timeout, and unexpected frames
// are errors, never panics.
package agentproto

// OOM killer order. Memory pressure inside a sandbox must kill what caused
// it, never the guest agent that every exec goes through. So the agent
// starts each process with an oom_score_adj ChildOOMScoreBoost above its
// own (raising a value needs no privilege), which makes any of them the
// OOM killer's choice before the agent; a process may lower itself back to
// the agent's level but never below it (the kernel keeps the floor that
// was set from outside). Where the host may lower values (CAP_SYS_RESOURCE)
// the backend also sets the agent itself to AgentOOMScoreAdj; not -1000
// (never killed), since the floor is inherited and no sandbox process may
// make itself unkillable. In a microVM the agent, root of the guest, sets
// its own.
const (
	AgentOOMScoreAdj   = -999
	ChildOOMScoreBoost = 500
)
