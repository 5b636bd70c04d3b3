package agent

import (
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// The reaper collects the exit status of every child the agent starts.
// There is one per process, because exit statuses are process-wide:
//
//   - By default it waits only for the pids it started (wait4(pid)), so an
//     agent embedded in a bigger program (tests) leaves other children alone.
//   - After ReapOrphans (the agent binary calls it; it is init, or a child
//     subreaper), it waits for any child (wait4(-1)): orphans reparented to
//     the agent are reaped too, and statuses of pids it did not start are
//     dropped. Nothing else in the process may then wait for children.
//
// Starting a child and registering its pid happen under mu, and reaping takes
// mu, so a child that exits at once is never reaped before it is registered.
var reaper = &reaperState{waiters: map[int]chan syscall.WaitStatus{}}

type reaperState struct {
	startOnce sync.Once

	mu      sync.Mutex
	all     bool                            // wait for any child
	waiters map[int]chan syscall.WaitStatus // pid → its status, buffered 1
}

// ReapOrphans makes the agent reap every child, including orphans it
// inherits. Call it once, early, from a main that is init or a subreaper.
func ReapOrphans() {
	reaper.mu.Lock()
	reaper.all = true
	reaper.mu.Unlock()
	reaper.start()
	reaper.reap() // orphans that exited before we started listening
}

func (r *reaperState) start() {
	r.startOnce.Do(func() {
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGCHLD)
		go func() {
			for range ch {
				r.reap()
			}
		}()
	})
}

// spawn runs fork (which starts a child and returns its pid) with the lock
// held, and registers the pid. The returned channel receives its status.
func (r *reaperState) spawn(fork func() (int, error)) (int, <-chan syscall.WaitStatus, error) {
	r.start()
	r.mu.Lock()
	defer r.mu.Unlock()
	pid, err := fork()
	if err != nil {
		return 0, nil, err
	}
	ch := make(chan syscall.WaitStatus, 1)
	r.waiters[pid] = ch
	if !r.all {
		// A SIGCHLD may have come and gone between fork and now; check.
		defer func() { go r.reap() }()
	}
	return pid, ch, nil
}

// reap collects every status that is ready.
func (r *reaperState) reap() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.all {
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if err == syscall.EINTR {
				continue
			}
			if err != nil || pid <= 0 {
				return
			}
			r.deliverLocked(pid, ws)
		}
	}
	for pid := range r.waiters {
		var ws syscall.WaitStatus
		got, err := syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
		for err == syscall.EINTR {
			got, err = syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
		}
		switch {
		case got == pid:
			r.deliverLocked(pid, ws)
		case err == syscall.ECHILD:
			// Someone else reaped it; report it as killed rather than hang.
			r.deliverLocked(pid, syscall.WaitStatus(syscall.SIGKILL))
		}
	}
}

func (r *reaperState) deliverLocked(pid int, ws syscall.WaitStatus) {
	if ws.Stopped() || ws.Continued() {
		return
	}
	if ch, ok := r.waiters[pid]; ok {
		delete(r.waiters, pid)
		ch <- ws
	}
}
