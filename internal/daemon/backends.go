package daemon

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/agentkernel/agentkernel/internal/backend"
	"github.com/agentkernel/agentkernel/internal/backend/container"
	"github.com/agentkernel/agentkernel/internal/backend/kubernetes"
	"github.com/agentkernel/agentkernel/internal/backend/microvm"
	"github.com/agentkernel/agentkernel/internal/daemonconf"
	"github.com/agentkernel/agentkernel/internal/image"
	"github.com/agentkernel/agentkernel/internal/paths"
	"github.com/agentkernel/agentkernel/internal/supervisor"
	"github.com/agentkernel/agentkernel/internal/telemetry"
	"github.com/agentkernel/agentkernel/pkg/api"
)

// hostRuntime is what the daemon and the supervisors of one home share:
// the image store and the backends built over it.
type hostRuntime struct {
	images    *image.Store
	container *container.Backend
	gvisor    *container.Backend
	microvm   *microvm.Backend
	// kubernetes is nil unless daemon.toml has [backends.kubernetes].
	kubernetes *kubernetes.Backend
}

func newHostRuntime(l paths.Layout, log *slog.Logger) (*hostRuntime, error) {
	imgs, err := image.Open(l.ImagesDir(), image.Options{})
	if err != nil {
		return nil, err
	}
	conf, err := daemonconf.Load(l.Home)
	if err != nil {
		return nil, err
	}
	var kube *kubernetes.Backend
	if k := conf.Backends.Kubernetes; k != nil {
		kube, err = kubernetes.New(kubernetes.Options{
			Kubeconfig: k.Kubeconfig, Context: k.Context, Namespace: k.Namespace,
			RuntimeClass: k.RuntimeClass, RuntimeClasses: k.RuntimeClasses,
			Image: k.Image, AgentImage: k.AgentImage, ImagePullSecret: k.ImagePullSecret,
			StrictSeccompProfile: k.StrictSeccompProfile, KeepPodNetwork: k.KeepPodNetwork,
			StorageClass: k.StorageClass, VolumeSizeMB: k.VolumeSizeMB,
		})
		if err != nil {
			return nil, fmt.Errorf("%s: [backends.kubernetes]: %w", daemonconf.Path(l.Home), err)
		}
	}
	return &hostRuntime{
		images:     imgs,
		kubernetes: kube,
		container: container.New(container.Options{
			RuntimeRoot:   l.RuncRoot(),
			Images:        imgs,
			DiskTemplates: l.DiskTemplatesDir(),
			Logger:        log,
		}),
		// The container backend's gVisor flavor: runsc from the cache
		// scripts/runsc.sh fills, else PATH.
		gvisor: container.New(container.Options{
			Flavor:        container.GVisor,
			RuntimeRoot:   l.RunscRoot(),
			Images:        imgs,
			DiskTemplates: l.DiskTemplatesDir(),
			Platform:      os.Getenv("AGENTKERNEL_GVISOR_PLATFORM"), // "systrap", "ptrace" or "" (probe)
			Logger:        log,
		}),
		microvm: microvm.New(microvm.Options{
			KernelDir: KernelDir(l),
			Images:    imgs,
			Accel:     os.Getenv("AGENTKERNEL_MICROVM_ACCEL"), // "kvm", "tcg" or "" (probe)
			Debug:     os.Getenv("AGENTKERNEL_MICROVM_DEBUG") != "",
			Logger:    log,
		}),
	}, nil
}

// backends returns the backends by name.
func (h *hostRuntime) backends() map[string]backend.Backend {
	m := map[string]backend.Backend{h.container.Name(): h.container, h.gvisor.Name(): h.gvisor, h.microvm.Name(): h.microvm}
	if h.kubernetes != nil {
		m[h.kubernetes.Name()] = h.kubernetes
	}
	return m
}

// doctor reports on every backend.
func (h *hostRuntime) doctor(ctx context.Context) []api.DoctorCheck {
	checks := append(h.container.Probe(ctx), h.gvisor.Probe(ctx)...)
	checks = append(checks, h.microvm.Probe(ctx)...)
	if h.kubernetes != nil {
		checks = append(checks, h.kubernetes.Probe(ctx)...)
	}
	return checks
}

// KernelDir is where `agentkernel setup` installs the microVM guest kernel.
func KernelDir(l paths.Layout) string { return filepath.Join(l.Home, "kernel") }

// Supervise is the hidden `agentkernel supervise DIR` role: it runs one
// sandbox's supervisor until the sandbox ends. ready is the pipe the daemon
// reads the start result from (fd 3).
func Supervise(ctx context.Context, dir string, ready io.WriteCloser, log *slog.Logger) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	spec, err := backend.ReadSpec(dir)
	if err != nil {
		return err
	}
	l, err := paths.Default()
	if err != nil {
		return err
	}
	log = log.With("sandbox", spec.Name, "id", spec.ID)
	h, err := newHostRuntime(l, log)
	if err != nil {
		return err
	}
	b, ok := h.backends()[spec.Backend]
	if !ok {
		return fmt.Errorf("sandbox %s: unknown backend %q", spec.Name, spec.Backend)
	}
	// The daemon hands its OTLP endpoint over in the environment; a
	// supervisor started before tracing was on has none.
	shutdown, err := telemetry.Setup(ctx, os.Getenv(telemetry.SupervisorEndpointEnv), "agentkernel-supervisor")
	if err != nil {
		log.Warn("tracing off", "err", err)
	} else {
		defer shutdown(context.WithoutCancel(ctx))
	}
	return supervisor.RunRole(ctx, l.Home, dir, spec, b, ready, log)
}
