// Package supervisor is agentkernel's per-sandbox shim. One supervisor
// process runs per running sandbox (the hidden `agentkernel supervise` role).
// It owns the sandbox's runtime (through a sandbox.Backend), outlives daemon
// restarts, and serves two Unix sockets in the sandbox's state directory:
//
//   - ctl.sock: a small HTTP control API (status, stop, wait for exit, and
//     for a sandbox with a network gateway: GET /network, PUT
//     /network/policy; POST /audit and GET /audit/head for its audit
//     log).
//   - agent.sock: every accepted connection is spliced to a fresh byte stream
//     to the guest agent, so the daemon speaks the agent protocol end to end.
//
// The daemon starts a supervisor with Spawn and later finds it again with
// Dial, after a restart too. When the sandbox's init exits, the supervisor
// records why in exit.json, releases the sandbox's resources and exits.
//
// A sandbox with a network gateway (Config.Network) gets it from its
// supervisor: Run builds the gateway (package netgw) before the backend
// starts, hands the backend a Network to attach the sandbox to (a network
// namespace with a tap, or a VM's stream socket), writes the gateway's
// audit events to audit.jsonl, and closes it all after the sandbox is
// released. The secret values the gateway injects arrive from the daemon
// over a pipe (fd SecretsFD), never through a file, argv or environment.
//
// Files in the state directory and their single writers:
//
//	spec.json       the daemon, once, before Spawn (see sandbox.WriteSpec)
//	supervisor.pid  the supervisor, at start
//	exit.json       the supervisor, when the sandbox ends
//	supervisor.log  the supervisor's own log (stderr)
//	audit.jsonl     the supervisor: the sandbox's hash-chained audit log
//	                (internal/audit): the gateway's events, and the exec
//	                and file records the daemon sends to POST /audit
//	                (rotated to audit.jsonl.1 at MaxAuditLog)
//	policy.json     the daemon: a policy changed on the sandbox, which
//	                replaces the spec's at the next start
package supervisor

// Names of the files and sockets in a sandbox's state directory.
const (
	PIDFile     = "supervisor.pid"
	ExitFile    = "exit.json"
	LogFile     = "supervisor.log"
	CtlSocket   = "ctl.sock"
	AgentSocket = "agent.sock"
	// AuditLogFile is the sandbox's audit log (the gateway's events
	// among its records); PolicyFile a changed network policy.
	AuditLogFile = "audit.jsonl"
	PolicyFile   = "policy.json"
)

// SecretsFD is the supervisor's file descriptor from which it reads its
// sandbox's secret values (see ReadSecrets); the ready pipe is fd 3.
const SecretsFD = 4
