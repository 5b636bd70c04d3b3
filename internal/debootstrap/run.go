package debootstrap

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// Timings of run.
const (
	// stopGrace is how long debootstrap has to exit after SIGTERM before
	// its process group is killed.
	stopGrace = 5 * time.Second
	// drainGrace is how long the output is read after debootstrap exits
	// (a leftover process may hold the pipe).
	drainGrace = 2 * time.Second
	maxLine    = 4096
	tailLines  = 12
)

// env is debootstrap's whole environment: nothing of the daemon's.
var env = []string{
	"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	"LC_ALL=C",
	"DEBIAN_FRONTEND=noninteractive",
	"HOME=/root",
}

// run runs debootstrap with args in its own process group and a private
// mount namespace, turning its output into progress for stage. When ctx
// ends the group gets SIGTERM, then SIGKILL; after debootstrap exits the
// group is killed so nothing it started outlives it.
func (b *Builder) run(ctx context.Context, stage string, progress func(Progress), args ...string) error {
	cmd := exec.Command(b.opts.Program, args...)
	cmd.Env = env
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid:      true,
		Unshareflags: syscall.CLONE_NEWNS, // Go also makes / private in it
		Pdeathsig:    syscall.SIGKILL,
	}
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	defer r.Close()
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		w.Close()
		return fmt.Errorf("starting %s: %w", b.opts.Program, err)
	}
	w.Close()
	pgid := cmd.Process.Pid

	out := &tail{}
	var readers sync.WaitGroup
	readers.Add(1)
	go func() {
		defer readers.Done()
		readLines(r, func(line string) {
			out.add(line)
			if msg, ok := progressLine(line); ok {
				progress(Progress{Stage: stage, Message: msg})
			}
		})
	}()

	stopped := make(chan struct{})
	go func() {
		select {
		case <-stopped:
			return
		case <-ctx.Done():
		}
		syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-stopped:
		case <-time.After(stopGrace):
			syscall.Kill(-pgid, syscall.SIGKILL)
		}
	}()
	werr := cmd.Wait()
	close(stopped)
	syscall.Kill(-pgid, syscall.SIGKILL) // whatever it left behind
	drained := make(chan struct{})
	go func() { readers.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(drainGrace):
		r.Close() // unblocks the reader
		<-drained
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if werr != nil {
		return classify(werr, out.lines())
	}
	return nil
}

// progressLine turns a line of debootstrap's output into a progress
// message, leaving out its noisiest lines.
func progressLine(line string) (string, bool) {
	switch {
	case strings.HasPrefix(line, "I: Validating "), strings.HasPrefix(line, "I: Checking component"):
		return "", false
	case strings.HasPrefix(line, "I: "):
		return strings.TrimPrefix(line, "I: "), true
	case strings.HasPrefix(line, "W: "):
		return "warning: " + strings.TrimPrefix(line, "W: "), true
	}
	return "", false
}

// classify turns debootstrap's failure into an error of the right class,
// with the end of its output.
func classify(err error, lines []string) error {
	var errLines []string
	for _, l := range lines {
		if strings.HasPrefix(l, "E: ") {
			errLines = append(errLines, strings.TrimPrefix(l, "E: "))
		}
	}
	detail := strings.Join(errLines, "; ")
	if detail == "" {
		detail = strings.Join(lines, "\n")
	}
	all := strings.Join(lines, "\n")
	var class error
	switch {
	case strings.Contains(all, "Couldn't find these debs"), strings.Contains(all, "No such script"):
		class = errdefs.ErrNotFound
	case strings.Contains(all, "Failed getting release file"), strings.Contains(all, "Couldn't download"),
		strings.Contains(all, "Couldn't get"), strings.Contains(all, "Failure trying to run"):
		class = errdefs.ErrUnavailable
	}
	if class == nil {
		return fmt.Errorf("debootstrap failed (%v): %s", err, detail)
	}
	return fmt.Errorf("%w: debootstrap failed (%v): %s", class, err, detail)
}

// readLines calls fn with each line of r, cut to maxLine bytes.
func readLines(r io.Reader, fn func(string)) {
	br := bufio.NewReaderSize(r, maxLine)
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			fn(strings.TrimRight(string(line), "\r\n"))
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			// Skip the rest of an overlong line.
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = br.ReadSlice('\n')
			}
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return
		}
	}
}

// tail keeps the last tailLines lines. It is safe for concurrent use.
type tail struct {
	mu sync.Mutex
	l  []string
}

func (t *tail) add(line string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.l) == tailLines {
		copy(t.l, t.l[1:])
		t.l = t.l[:tailLines-1]
	}
	t.l = append(t.l, line)
}

func (t *tail) lines() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]string(nil), t.l...)
}

// lockFile takes an exclusive lock on path, waiting until ctx ends.
func lockFile(ctx context.Context, path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("package cache lock: %w", err)
	}
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("package cache lock: %w", err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
