package agent

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"github.com/agentkernel/agentkernel/internal/agentproto"
)

// DefaultPath is the PATH a process gets when the agent's environment has none.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// plan is everything needed to fork a process, resolved beforehand so that
// failures can be reported precisely.
type plan struct {
	path    string // the executable as execve will see it
	argv    []string
	env     []string
	dir     string
	cred    *syscall.Credential // nil: keep the agent's
	tty     bool
	rows    uint16
	cols    uint16
	stdin   bool
	timeout time.Duration
}

// prepare resolves req. A request the agent refuses is an error; a process
// that cannot run is reported as an exit status (127 or 126), as a shell
// would.
func (s *Server) prepare(req *agentproto.ExecRequest) (*plan, *agentproto.ExitStatus, error) {
	if err := req.Validate(); err != nil {
		return nil, nil, err
	}
	id, err := resolveUser(s.cfg.Root, req.User)
	if err != nil {
		return nil, nil, fmt.Errorf("exec: user: %w", err)
	}
	p := &plan{
		argv: req.Argv, dir: req.Workdir, tty: req.TTY, rows: req.Rows, cols: req.Cols,
		stdin: req.Stdin, timeout: req.Timeout,
	}
	if p.dir == "" {
		p.dir = "/"
	}
	if p.tty && (p.rows == 0 || p.cols == 0) {
		p.rows, p.cols = 24, 80
	}
	p.env = buildEnv(os.Environ(), id.Home, req.TTY, req.Env)
	if req.User != "" && (os.Geteuid() == 0 || id.UID != uint32(os.Getuid()) || id.GID != uint32(os.Getgid())) {
		p.cred = &syscall.Credential{Uid: id.UID, Gid: id.GID, Groups: id.Groups, NoSetGroups: os.Geteuid() != 0}
	}
	if fi, err := os.Stat(p.dir); err != nil || !fi.IsDir() {
		msg := fmt.Sprintf("workdir %q: not a directory", p.dir)
		if err != nil {
			msg = fmt.Sprintf("workdir %q: %v", p.dir, errors.Unwrap(err))
		}
		return nil, &agentproto.ExitStatus{Code: 126, Error: msg}, nil
	}
	path, st := lookPath(req.Argv[0], envValue(p.env, "PATH"), p.dir)
	if st != nil {
		return nil, st, nil
	}
	p.path = path
	return p, nil, nil
}

// buildEnv is the agent's environment without AGENTKERNEL_* variables, PATH
// defaulted, HOME from passwd, TERM with a TTY, then extra on top.
func buildEnv(base []string, home string, tty bool, extra []string) []string {
	var keys []string
	vals := map[string]string{}
	set := func(kv string) {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return
		}
		if _, seen := vals[k]; !seen {
			keys = append(keys, k)
		}
		vals[k] = v
	}
	for _, kv := range base {
		if !strings.HasPrefix(kv, "AGENTKERNEL_") {
			set(kv)
		}
	}
	if _, ok := vals["PATH"]; !ok {
		set("PATH=" + DefaultPath)
	}
	if home != "" {
		set("HOME=" + home)
	} else if _, ok := vals["HOME"]; !ok {
		set("HOME=/")
	}
	if tty {
		set("TERM=xterm-256color")
	}
	for _, kv := range extra {
		set(kv)
	}
	env := make([]string, len(keys))
	for i, k := range keys {
		env[i] = k + "=" + vals[k]
	}
	return env
}

func envValue(env []string, key string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(env[i], "="); ok && k == key {
			return v
		}
	}
	return ""
}

// lookPath finds file as a shell would, with the process's PATH; relative
// paths are taken from dir, where the process will start.
func lookPath(file, path, dir string) (string, *agentproto.ExitStatus) {
	if strings.Contains(file, "/") {
		if err := executable(inDir(dir, file), file); err != nil {
			return "", err
		}
		return file, nil
	}
	var denied *agentproto.ExitStatus
	for _, d := range filepath.SplitList(path) {
		if d == "" {
			d = "."
		}
		cand := filepath.Join(d, file)
		err := executable(inDir(dir, cand), file)
		if err == nil {
			return cand, nil
		}
		if err.Code == 126 && denied == nil {
			denied = err
		}
	}
	if denied != nil {
		return "", denied
	}
	return "", &agentproto.ExitStatus{Code: 127, Error: fmt.Sprintf("exec: %q: executable file not found in $PATH", file)}
}

// inDir is p as seen from dir.
func inDir(dir, p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(dir, p)
}

// executable checks that p is an executable regular file; name is what the
// user asked for, for messages.
func executable(p, name string) *agentproto.ExitStatus {
	fi, err := os.Stat(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return &agentproto.ExitStatus{Code: 127, Error: fmt.Sprintf("exec: %q: no such file or directory", name)}
	case err != nil:
		return &agentproto.ExitStatus{Code: 126, Error: fmt.Sprintf("exec: %q: %v", name, errors.Unwrap(err))}
	case fi.IsDir():
		return &agentproto.ExitStatus{Code: 126, Error: fmt.Sprintf("exec: %q: is a directory", name)}
	case fi.Mode()&0o111 == 0:
		return &agentproto.ExitStatus{Code: 126, Error: fmt.Sprintf("exec: %q: permission denied", name)}
	}
	return nil
}

// child is a running process and the agent's ends of its stdio. With a TTY,
// stdout is the PTY master (also used for input and resizing) and stderr is
// nil. stdin is nil when the process has no input from the host.
type child struct {
	pid    int
	status <-chan syscall.WaitStatus
	stdin  *os.File
	stdout *os.File
	stderr *os.File
	pty    *os.File
}

// start forks the process described by p. On error nothing is left open.
func start(p *plan) (c *child, retErr error) {
	var parentEnds, childEnds []*os.File
	defer func() {
		for _, f := range childEnds {
			f.Close()
		}
		if retErr != nil {
			for _, f := range parentEnds {
				f.Close()
			}
		}
	}()
	c = &child{}
	attr := &syscall.SysProcAttr{Setsid: true, Credential: p.cred, Pdeathsig: syscall.SIGKILL}
	var files [3]*os.File
	if p.tty {
		master, tty, err := openPTY(p.rows, p.cols)
		if err != nil {
			return nil, err
		}
		parentEnds, childEnds = append(parentEnds, master), append(childEnds, tty)
		if p.cred != nil && os.Geteuid() == 0 {
			tty.Chown(int(p.cred.Uid), -1)
		}
		files = [3]*os.File{tty, tty, tty}
		attr.Setctty, attr.Ctty = true, 0
		c.pty, c.stdout = master, master
		if p.stdin {
			c.stdin = master
		}
	} else {
		outR, outW, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		parentEnds, childEnds = append(parentEnds, outR), append(childEnds, outW)
		errR, errW, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		parentEnds, childEnds = append(parentEnds, errR), append(childEnds, errW)
		var in *os.File
		if p.stdin {
			inR, inW, err := os.Pipe()
			if err != nil {
				return nil, err
			}
			parentEnds, childEnds = append(parentEnds, inW), append(childEnds, inR)
			in, c.stdin = inR, inW
		} else if in, err = os.Open(os.DevNull); err != nil {
			return nil, err
		} else {
			childEnds = append(childEnds, in)
		}
		files = [3]*os.File{in, outW, errW}
		c.stdout, c.stderr = outR, errR
	}
	fds := make([]uintptr, 3)
	for i, f := range files {
		fds[i] = f.Fd()
	}
	pid, status, err := reaper.spawn(func() (int, error) {
		return syscall.ForkExec(p.path, p.argv, &syscall.ProcAttr{Dir: p.dir, Env: p.env, Files: fds, Sys: attr})
	})
	if err != nil {
		return nil, &forkErr{err}
	}
	boostOOMScore(pid)
	c.pid, c.status = pid, status
	return c, nil
}

// boostOOMScore raises the oom_score_adj of a process the agent started to
// agentproto.ChildOOMScoreBoost above the agent's own (at most 1000), so
// that the OOM killer takes it before the agent. Raising needs no
// privilege. It runs just after exec, so a child that forks at once may
// pass the agent's value on to a grandchild; neither can go below the
// agent's floor. A failure (the child already exited) changes nothing.
func boostOOMScore(pid int) {
	v := min(agentOOMScore()+agentproto.ChildOOMScoreBoost, 1000)
	_ = os.WriteFile("/proc/"+strconv.Itoa(pid)+"/oom_score_adj", []byte(strconv.Itoa(v)), 0)
}

// agentOOMScore is the agent's own oom_score_adj, read once the host has
// set it (the first exec comes after the host connected).
var agentOOMScore = sync.OnceValue(func() int {
	b, err := os.ReadFile("/proc/self/oom_score_adj")
	if err != nil {
		return 0
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0
	}
	return n
})

// forkErr is a failure of fork or exec itself (as opposed to preparing
// pipes), which the protocol reports as exit status 126 or 127.
type forkErr struct{ err error }

func (e *forkErr) Error() string { return e.err.Error() }
func (e *forkErr) Unwrap() error { return e.err }

// forkError is the exit status for a failed fork/exec.
func forkError(argv0 string, err error) *agentproto.ExitStatus {
	code := 126
	if errors.Is(err, syscall.ENOENT) {
		code = 127
	}
	return &agentproto.ExitStatus{Code: code, Error: fmt.Sprintf("exec: %q: %v", argv0, err)}
}

// openPTY opens a PTY pair of the given size. The master is non-blocking
// and registered with Go's poller, so reads honour deadlines and Close
// interrupts them (creack/pty's ioctls leave it blocking).
func openPTY(rows, cols uint16) (master, tty *os.File, err error) {
	m, t, err := pty.Open()
	if err != nil {
		return nil, nil, fmt.Errorf("open pty: %w", err)
	}
	fd, err := unix.FcntlInt(m.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	name := m.Name()
	m.Close()
	if err == nil {
		err = unix.SetNonblock(fd, true)
	}
	if err != nil {
		t.Close()
		return nil, nil, fmt.Errorf("pty: %w", err)
	}
	master = os.NewFile(uintptr(fd), name)
	if rows > 0 && cols > 0 { // 0: leave the size alone
		if err := setWinsize(master, rows, cols); err != nil {
			master.Close()
			t.Close()
			return nil, nil, err
		}
	}
	return master, t, nil
}

func setWinsize(master *os.File, rows, cols uint16) error {
	sc, err := master.SyscallConn()
	if err != nil {
		return err
	}
	var ioErr error
	err = sc.Control(func(fd uintptr) {
		ioErr = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, &unix.Winsize{Row: rows, Col: cols})
	})
	if err == nil {
		err = ioErr
	}
	if err != nil {
		return fmt.Errorf("resize pty: %w", err)
	}
	return nil
}

// exitStatus converts a wait status.
func exitStatus(ws syscall.WaitStatus) agentproto.ExitStatus {
	if ws.Signaled() {
		sig := int(ws.Signal())
		return agentproto.ExitStatus{Code: 128 + sig, Signal: sig}
	}
	return agentproto.ExitStatus{Code: ws.ExitStatus()}
}
