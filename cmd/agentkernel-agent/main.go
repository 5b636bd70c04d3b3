// Command agentkernel-agent is the guest agent: a static binary that runs as
// PID 1 inside every sandbox and serves the agentproto protocol to the host
// (see internal/agentproto and internal/agent).
//
//	agentkernel-agent --listen unix:/run/agent.sock
//	agentkernel-agent --listen fd:3
//	agentkernel-agent --listen file:/dev/vport0p1
//	agentkernel-agent --init   (as a microVM's /init; see internal/guestinit)
//	agentkernel-agent --seccomp-errno 435:38 --listen ...   (gvisor; see seccomp.go)
//	agentkernel-agent --control suspend|listen   (run in a gVisor sandbox by
//	                  the host around a checkpoint; see agent.ControlSocket)
//	agentkernel-agent --listen tcp:127.0.0.1:7070   (a pod; see internal/backend/kubernetes)
//	agentkernel-agent [--remove-links] --install PATH   (a pod's init container)
//
// As PID 1 it reaps every zombie, forwards SIGTERM and SIGINT to all
// processes and then exits 0 (after a grace period and SIGKILL); it never
// exits on its own otherwise. When it is not PID 1 it makes itself a child
// subreaper, so orphans of the processes it started are still reaped.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/agentkernel/agentkernel/internal/agent"
	"github.com/agentkernel/agentkernel/internal/version"
)

func main() {
	listen := flag.String("listen", "", "where to serve: unix:PATH, tcp:ADDR, fd:N or file:PATH")
	install := flag.String("install", "", "copy this binary to PATH (mode 0755) and exit: a pod's init container delivers the agent this way, with no shell in its image")
	noNet := flag.Bool("remove-links", false, "with --install: first delete every network interface but lo (a pod's sandbox that has no network)")
	debug := flag.Bool("debug", false, "log debug messages")
	showVersion := flag.Bool("version", false, "print the version and exit")
	vmInit := flag.Bool("init", false, "boot a microVM first (internal/guestinit), then serve on its virtio-serial port")
	seccompErrno := flag.String("seccomp-errno", "", "NR:ERRNO,...: answer these syscalls with these errnos (see seccomp.go)")
	control := flag.String("control", "", "ask the agent serving in this sandbox to suspend or listen (around a checkpoint), and exit")
	flag.Parse()
	if *control != "" {
		if err := agent.Control(context.Background(), *control); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	if *showVersion {
		fmt.Println(version.Version)
		return
	}
	if *install != "" {
		if *noNet {
			if err := removeLinks(); err != nil {
				fmt.Fprintln(os.Stderr, "agentkernel-agent: remove-links:", err)
				os.Exit(1)
			}
		}
		if err := installSelf(*install); err != nil {
			fmt.Fprintln(os.Stderr, "agentkernel-agent: install:", err)
			os.Exit(1)
		}
		return
	}
	level := slog.LevelInfo
	if *debug {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})).With("component", "agent")
	if *seccompErrno != "" {
		// Fail closed: a sandbox whose filter is not what its profile
		// says does not start.
		if err := installSeccompErrno(*seccompErrno); err != nil {
			log.Error("cannot apply the sandbox's seccomp profile", "err", err)
			os.Exit(1)
		}
	}
	if *vmInit {
		runVM(log)
	}
	if *listen == "" {
		log.Error("--listen is required")
		os.Exit(2)
	}
	os.Exit(run(log, func(ctx context.Context, srv *agent.Server) error { return srv.ServeAddr(ctx, *listen) }))
}

// run serves the agent with serve until it shuts down.
func run(log *slog.Logger, serve func(context.Context, *agent.Server) error) int {
	unix.Umask(0o022)
	if os.Getpid() != 1 {
		if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
			log.Error("cannot become a child subreaper", "err", err)
			return 1
		}
	}
	agent.ReapOrphans()

	done := make(chan int, 1)
	srv := agent.New(agent.Config{
		AgentVersion: version.Version,
		Logger:       log,
		OnShutdown:   func() { done <- 0 },
	})
	// A handled SIGPIPE keeps a broken stderr from killing init; unlike an
	// ignored one, it is reset to the default in the processes it starts.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		sig := <-sigs
		log.Info("stopping on signal", "signal", sig)
		srv.Forward(sig.(syscall.Signal))
		srv.StopAll(context.Background())
		unix.Sync()
		done <- 0
	}()
	go func() {
		if err := serve(context.Background(), srv); err != nil {
			log.Error("serve failed", "err", err)
			if os.Getpid() != 1 {
				done <- 1
				return
			}
		}
		// As init the agent must not exit: the sandbox would die with it.
		log.Info("no more sessions will be served")
	}()
	return <-done
}
