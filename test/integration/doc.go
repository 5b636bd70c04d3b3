// Package integration drives the real agentkernel binaries the way a user
// does: TestMain builds bin/agentkernel and the static guest agent into a
// temporary directory, points AGENTKERNEL_HOME at a fresh directory under
// /tmp, and the tests run the CLI with os/exec (and the HTTP API over the
// daemon's Unix socket). The first CLI call starts the daemon; sandboxes
// are real runc containers.
//
// Requirements: root and runc in PATH. Without them, and under -short,
// every test is skipped with the reason. At the end TestMain removes every
// sandbox, stops the daemons, and fails the run if a runc container, a
// mount, a cgroup or a process of the test's homes is left behind. On a
// failure it prints the daemon log and each sandbox's supervisor.log and
// console.log.
//
// One daemon (the shared env) serves most tests; the tests that kill a
// daemon or listen on TCP start their own, in their own home.
package integration
