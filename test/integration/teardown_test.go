package integration

// The leak check lives in internal/testutil/akhome, shared with test/soak;
// these are its names in this package.

import (
	"time"

	"github.com/agentkernel/agentkernel/internal/testutil/akhome"
)

// teardown removes every sandbox of the home through the API, stops the
// daemon, and returns each leftover it then found (processes, runc
// containers, mounts, cgroups, network namespaces, sandbox files, store
// rows), removed by force.
func (e *env) teardown() []string { return e.h.Teardown() }

// removeHome deletes the home unless something is still mounted under it.
func (e *env) removeHome() { e.h.RemoveHome() }

// processes lists live processes of this home (daemon, supervisors and the
// sandboxes' own).
func (e *env) processes() []int { return e.h.Processes() }

// runcContainers lists the containers in this home's runc state root.
func (e *env) runcContainers() []string { return e.h.RuncContainers() }

func (e *env) remember(uuid string) { e.h.Remember(uuid) }

func cmdline(pid int) string                      { return akhome.Cmdline(pid) }
func dashedUUID(s string) string                  { return akhome.DashedUUID(s) }
func alive(pid int) bool                          { return akhome.Alive(pid) }
func socketAnswers(path string) bool              { return akhome.SocketAnswers(path) }
func readPID(p string) (int, error)               { return akhome.ReadPID(p) }
func waitFor(d time.Duration, f func() bool) bool { return akhome.WaitFor(d, f) }
