// Package supervisor is agentkernel's per-sandbox shim. One supervisor
// process runs per running sandbox (the hidden `agentkernel supervise` role).
// It owns the sandbox's runtime (through a sandbox.Backend), outlives daemon
// restarts, and serves two Unix sockets in the sandbox's state directory:
//
//   - ctl.sock: a small HTTP control API (status, stop, wait for exit).
//   - agent.sock: every accepted connection is spliced to a fresh byte stream
//     to the guest agent, so the daemon speaks the agent protocol end to end.
//
// The daemon starts a supervisor with Spawn and later finds it again with
// Dial, after a restart too. When the sandbox's init exits, the supervisor
// records why in exit.json, releases the sandbox's resources and exits.
//
// Files in the state directory and their single writers:
//
//	spec.json       the daemon, once, before Spawn (see sandbox.WriteSpec)
//	supervisor.pid  the supervisor, at start
//	exit.json       the supervisor, when the sandbox ends
//	supervisor.log  the supervisor's own log (stderr)
package supervisor

// Names of the files and sockets in a sandbox's state directory.
const (
	PIDFile     = "supervisor.pid"
	ExitFile    = "exit.json"
	LogFile     = "supervisor.log"
	CtlSocket   = "ctl.sock"
	AgentSocket = "agent.sock"
)
