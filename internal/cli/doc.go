// Package cli is agentkernel's command line: one cobra constructor per
// command (newRunCmd, newExecCmd, …), each a thin client of the daemon
// through pkg/client. It never imports the daemon, the store or a backend.
//
// cmd/agentkernel builds the tree with NewRootCmd, adds the daemon's own
// roles (serve, supervise) and runs it with Execute, which turns errors into
// the process exit code:
//
//	0      success
//	1      agentkernel failed (bad flags, the daemon said no, …)
//	125    run/exec/attach: agentkernel failed before or while running the
//	       command (docker's convention), so it is never confused with the
//	       command's own exit code
//	N      run/exec/attach: the command exited with N
//	128+S  run: interrupted by signal S (130 for Ctrl-C)
//
// Commands print their result on stdout and nothing else; diagnostics go to
// stderr as "agentkernel: <message>". No command prompts.
package cli
