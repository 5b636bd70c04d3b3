package main

import (
	"context"
	"log/slog"
	"os"
	"strconv"

	"github.com/agentkernel/agentkernel/internal/agent"
	"github.com/agentkernel/agentkernel/internal/agentproto"
	"github.com/agentkernel/agentkernel/internal/guestinit"
)

// runVM is --init, the agent as a microVM's init (see internal/guestinit).
// Stage 1, the VM's PID 1, prepares the VM and starts stage 2, the agent in
// the sandbox's own PID namespace, serving on the virtio-serial port; when
// that agent exits (or the boot fails) stage 1 powers the VM off. It never
// returns.
func runVM(log *slog.Logger) {
	port, debug, stage2, err := guestinit.Stage2()
	if stage2 {
		if err != nil {
			log.Error("sandbox namespace", "err", err)
			os.Exit(1)
		}
		if debug {
			log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("component", "agent")
		}
		// As the host does for a container's agent (agentproto.AgentOOMScoreAdj):
		// here the agent is root of the VM and sets it itself.
		if err := os.WriteFile("/proc/self/oom_score_adj", []byte(strconv.Itoa(agentproto.AgentOOMScoreAdj)), 0); err != nil {
			log.Warn("cannot protect the agent from the OOM killer", "err", err)
		}
		l := guestinit.NewListener(port, log)
		os.Exit(run(log, func(ctx context.Context, srv *agent.Server) error { return srv.Serve(ctx, l) }))
	}
	cfg, port, err := guestinit.Boot(log)
	if err != nil {
		log.Error("microVM boot failed", "err", err)
		guestinit.PowerOff()
	}
	if err := guestinit.StartSandbox(log, cfg, port); err != nil {
		log.Error("the sandbox's agent ended", "err", err)
	}
	guestinit.PowerOff()
}
