// Package agent is the guest agent: the server side of internal/agentproto,
// running as PID 1 inside a sandbox (a container, a gVisor sandbox or a
// microVM). It does not assume it runs in a container.
//
// It starts processes with fork/exec (never exec.Cmd.Wait), each in its own
// session and process group, with pipes or a PTY as its controlling
// terminal; one reaper collects every exit status (see ReapOrphans). It
// keeps background processes with the tail of their output, serves file
// operations and tar streams (through internal/safetar), and on shutdown
// stops every process before exiting.
//
// Environment of a process: the agent's own environment without variables
// named AGENTKERNEL_*, PATH defaulting to DefaultPath, HOME from the user's
// passwd entry, TERM=xterm-256color with a TTY, then the request's Env.
// Users are resolved with the sandbox's own /etc/passwd and /etc/group,
// parsed here (no cgo); supplementary groups are set.
//
// cmd/agentkernel-agent is the binary; agenttest is the conformance suite
// that runs against both the in-process Server and the binary.
package agent
