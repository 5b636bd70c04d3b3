package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/agentkernel/agentkernel/internal/agents"
	"github.com/agentkernel/agentkernel/internal/workback"
	"github.com/agentkernel/agentkernel/pkg/api"
	"github.com/agentkernel/agentkernel/pkg/client"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// removeTimeout bounds the removal of run's sandbox once the command is
// over (or abandoned).
const removeTimeout = 60 * time.Second

// execFlags are the process flags run and exec share.
type execFlags struct {
	env         []string
	workdir     string
	user        string
	timeout     string
	interactive bool
	tty         bool
	receipt     string
	sudo        bool // exec only
}

// register adds the flags to cmd; interactiveShort is the shorthand of
// --interactive ("i" for exec, as docker exec; "" for run, whose -i is
// upstream's --image).
func (f *execFlags) register(cmd *cobra.Command, interactiveShort string) {
	fl := cmd.Flags()
	fl.StringArrayVarP(&f.env, "env", "e", nil, "set an environment variable `KEY=VALUE` (repeatable)")
	fl.StringVarP(&f.workdir, "workdir", "w", "", "working `DIR` inside the sandbox")
	fl.StringVar(&f.timeout, "timeout", "", "kill the command after this `DURATION` (e.g. 30s, 5m); it then exits 124")
	fl.BoolVarP(&f.interactive, "interactive", interactiveShort, false,
		"forward stdin (default: only when stdin is a pipe or a file; --interactive=false never)")
	fl.BoolVarP(&f.tty, "tty", "t", false, "give the command a terminal (raw mode locally with --interactive)")
	fl.StringVar(&f.receipt, "receipt", "", "write the daemon's signed receipt of the run (command, image, policy, exit code, output hashes) to `FILE`; the output is then collected, not streamed (check it with agentkernel receipt verify)")
}

// request checks the flags and builds the exec request.
func (f *execFlags) request(command []string) (api.ExecRequest, error) {
	env, err := parseEnv(f.env)
	if err != nil {
		return api.ExecRequest{}, err
	}
	timeout, err := parseDuration("--timeout", f.timeout)
	if err != nil {
		return api.ExecRequest{}, err
	}
	user := f.user
	if f.sudo {
		if user != "" && user != "0" && user != "root" {
			return api.ExecRequest{}, fmt.Errorf("--sudo conflicts with --user %q", user)
		}
		user = "0"
	}
	return api.ExecRequest{Command: command, Env: env, Workdir: f.workdir, User: user, Timeout: timeout, TTY: f.tty}, nil
}

type runOptions struct {
	execFlags
	name      string
	image     string
	profile   string
	backend   string
	memoryMB  int
	diskMB    int
	vcpus     int
	keep      bool
	noPool    bool
	fast      bool
	ttl       string
	noNetwork bool
	cfg       configFlags
	net       netFlags
	agent     string
	dir       string
	source    sourceFlags
	volumes   []string
}

func newRunCmd(app *App) *cobra.Command {
	var o runOptions
	cmd := &cobra.Command{
		Use:   "run [flags] [--] CMD [ARG...]",
		Short: "Run a command in a new sandbox that is removed afterwards",
		Long: `Run creates a sandbox, runs CMD in it with stdout and stderr streamed live,
removes the sandbox and exits with CMD's exit code.

Flags go before CMD: everything from CMD on is the command's own.
Stdin is forwarded when it is a pipe or a file, or always with -i.
With --keep the sandbox stays (its name is printed on stderr) and is an
ordinary sandbox from then on.

Ctrl-C (SIGINT, SIGTERM) is forwarded to the command; run then removes the
sandbox and exits 128+signal (130). A second Ctrl-C stops waiting for the
command and removes the sandbox at once.

The sandbox's image, profile and resources come from the flags, then from
--config FILE or ./agentkernel.toml (unless --no-config), whose [[files]]
are copied in and init_script run before CMD. Without --image or a config
image, run uses the image detected from CMD or the project's files (python3
→ python:3.12-alpine, …) if it is already in the store, else the daemon's
default; --image auto uses the detected image and pulls it if needed.

Exit status: CMD's own, or 125 when agentkernel itself failed.`,
		Example: `  agentkernel run -- python3 -c 'print(1 + 1)'
  agentkernel run --image python --memory-mb 1024 -e DEBUG=1 -- pytest -q
  tar c . | agentkernel run -- tar tv`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			// Without a command, the image's Entrypoint and Cmd run (the
			// daemon refuses clearly when the image has neither); that
			// needs a named image.
			if len(args) == 0 && o.image == "" {
				return &ExitError{Code: exitCLI, Err: fmt.Errorf("missing the command (agentkernel run -- CMD…, or --image IMAGE to run its Entrypoint/Cmd)")}
			}
			return runRun(cmd, app, &o, args)
		},
	}
	cmd.Flags().SetInterspersed(false)
	cmd.SetFlagErrorFunc(flagError(exitCLI))
	o.execFlags.register(cmd, "")
	fl := cmd.Flags()
	fl.StringVar(&o.name, "name", "", "name the sandbox (default: run-<random>)")
	// -i is --image, as upstream's run has it (not docker's --interactive).
	fl.StringVarP(&o.image, "image", "i", "", "image to run, or \"auto\" to detect and pull it (default: see above)")
	fl.StringVarP(&o.profile, "profile", "p", "", "security profile: permissive, moderate or restrictive")
	fl.StringVarP(&o.backend, "backend", "B", "", "sandbox backend: container, gvisor, microvm (upstream's docker, podman, firecracker are taken as container, microvm; default: the daemon's)")
	fl.IntVar(&o.memoryMB, "memory-mb", 0, "memory limit in MiB")
	fl.IntVar(&o.diskMB, "disk-mb", 0, "size of the sandbox's disk in MiB, which holds all it writes, /tmp included (default 10240)")
	fl.IntVar(&o.vcpus, "vcpus", 0, "number of CPUs")
	fl.BoolVarP(&o.keep, "keep", "k", false, "keep the sandbox after the command")
	fl.BoolVar(&o.noPool, "no-pool", false, "start a sandbox of its own even when a warm pool matches")
	fl.BoolVar(&o.noNetwork, "no-network", false, "no network at all: no gateway, loopback only")
	fl.StringVar(&o.ttl, "ttl", "", "with --keep, remove the kept sandbox after this `DURATION` (e.g. 30m, 2h, 1d)")
	// Upstream's -F/--fast (default true) is our pool use; --fast=false is --no-pool.
	fl.BoolVarP(&o.fast, "fast", "F", true, "take a fresh sandbox from a warm pool when one matches (--fast=false: like --no-pool)")
	fl.StringVar(&o.dir, "dir", "", "copy host directory `DIR` into the sandbox at /workspace; with --agent its changes come back as git branch agentkernel/NAME (a patch outside git)")
	fl.StringArrayVarP(&o.volumes, "volume", "v", nil, volumeFlagUsage)
	fl.StringVar(&o.agent, "agent", "", "run AI coding agent `NAME` (claude, codex, gemini, opencode; see agentkernel agents): the arguments are its prompt")
	o.net.register(cmd, "P")
	o.cfg.register(cmd, true)
	o.source.register(cmd)
	return cmd
}

func runRun(cmd *cobra.Command, app *App, o *runOptions, command []string) (retErr error) {
	req, err := o.request(command)
	if err != nil {
		return withCode(exitCLI, err)
	}
	noteUpstreamBackend(cmd, o.backend)
	ttl, err := parseDuration("--ttl", o.ttl)
	if err != nil {
		return withCode(exitCLI, err)
	}
	if ttl != "" && !o.keep {
		return withCode(exitCLI, errors.New("--ttl needs --keep: without it the sandbox is removed when the command ends"))
	}
	if o.memoryMB < 0 || o.vcpus < 0 || o.diskMB < 0 {
		return withCode(exitCLI, fmt.Errorf("--memory-mb, --disk-mb and --vcpus must not be negative"))
	}
	cfg, err := o.cfg.load(true)
	if err != nil {
		return withCode(exitCLI, err)
	}
	setup, err := prepareSetup(cfg)
	if err != nil {
		return withCode(exitCLI, err)
	}
	name := o.name
	if name == "" {
		name = "run-" + randomHex(4)
	}
	lio := newLocalIO(cmd, forwardStdin(cmd, o.interactive), o.tty)
	req.Rows, req.Cols = lio.size()

	// Catch signals from the start, so that a Ctrl-C while the sandbox is
	// created still removes it. abandon cancels whatever is in flight.
	ctx, abandon := context.WithCancel(cmd.Context())
	defer abandon()
	r := newRelay(abandon)
	defer r.stop()
	ignoreSIGPIPE()

	c, err := connect(cmd, app, exitCLI)
	if err != nil {
		return err
	}
	if sig := r.interrupted(); sig != 0 {
		return &ExitError{Code: 128 + int(sig)}
	}
	var agent *agents.Agent
	image := o.image
	if o.agent != "" {
		if agent, err = agents.Get(o.agent); err != nil {
			return withCode(exitCLI, err)
		}
		req.Command = agentCommand(agent, command)
	} else if image, err = runImage(cmd, c, o.image, cfg, command); err != nil {
		return withCode(exitCLI, err)
	}
	create := api.CreateSandboxRequest{
		Name: name, Image: image, Profile: o.profile, Backend: o.backend, Volumes: o.volumes,
		MemoryMB: o.memoryMB, DiskMB: o.diskMB, VCPUs: o.vcpus, Ephemeral: !o.keep, NoPool: o.noPool || !o.fast, TTL: ttl,
	}
	mergeConfig(&create, cfg)
	if err := o.net.apply(&create); err != nil {
		return withCode(exitCLI, err)
	}
	if o.source.url != "" && o.dir != "" {
		return withCode(exitCLI, errors.New("--source and --dir both fill /workspace: give one"))
	}
	o.source.apply(&create)
	if o.noNetwork {
		if o.net.any() {
			return withCode(exitCLI, errors.New("--no-network conflicts with --allow, --block, --allow-cidr, --preset, --secret and --publish"))
		}
		// No gateway at all, loopback only (as [security] network = false).
		create.Network = &api.NetworkPolicy{Profile: "none"}
	}
	if agent != nil {
		if err := applyAgent(ctx, c, agent, &create); err != nil {
			return withCode(exitCLI, err)
		}
	}
	_, err = c.CreateSandbox(ctx, create)
	if errors.Is(err, errdefs.ErrNotFound) && create.Image != "" && image == o.image && o.image != autoImage {
		// The first use of an image pulls it, as docker run does.
		if perr := pullForRun(cmd, c, create.Image); perr != nil {
			return withCode(exitCLI, fmt.Errorf("creating the sandbox: %w; pulling %s: %w", err, create.Image, perr))
		}
		_, err = c.CreateSandbox(ctx, create)
	}
	if errors.Is(err, errdefs.ErrAlreadyExists) {
		// Someone else's sandbox: not ours to remove.
		return withCode(exitCLI, err)
	}
	// From here on the sandbox may exist: clean up on every path.
	defer func() {
		if err := cleanupRun(cmd, c, name, o.keep); err != nil && retErr == nil {
			retErr = withCode(exitCLI, err)
		}
	}()
	if err != nil {
		return withCode(exitCLI, fmt.Errorf("creating the sandbox: %w", err))
	}
	if sig := r.interrupted(); sig != 0 {
		return &ExitError{Code: 128 + int(sig)}
	}
	if err := setup.apply(ctx, c, name, cmd.ErrOrStderr()); err != nil {
		if sig := r.interrupted(); sig != 0 {
			return &ExitError{Code: 128 + int(sig)}
		}
		return withCode(exitCLI, err)
	}
	var work *workback.Source
	if o.dir != "" {
		src, err := giveProject(ctx, c, name, o.dir)
		if !o.keep {
			defer forgetWork(name)
		}
		if err != nil {
			return withCode(exitCLI, err)
		}
		work = &src
		if req.Workdir == "" {
			req.Workdir = agents.Workdir
		}
	}

	if o.receipt != "" {
		return execWithReceipt(cmd, c, name, req, o.receipt)
	}
	s, err := c.ExecStream(ctx, name, req)
	if err != nil {
		if sig := r.interrupted(); sig != 0 {
			return &ExitError{Code: 128 + int(sig)}
		}
		return withCode(exitCLI, err)
	}
	defer s.Close()
	r.attach(s)
	exit, err := pump(s, lio)
	if sig := r.interrupted(); sig != 0 {
		return &ExitError{Code: 128 + int(sig)}
	}
	if err != nil {
		return withCode(exitCLI, err)
	}
	exitMessage(cmd.ErrOrStderr(), exit)
	if work != nil && agent != nil {
		d, _ := workDir()
		res, err := collectWork(ctx, c, name, *work, d)
		if err != nil {
			return withCode(exitCLI, fmt.Errorf("bringing back the agent's work: %w", err))
		}
		reportWork(cmd.ErrOrStderr(), res)
	}
	if exit.ExitCode != 0 {
		return &ExitError{Code: exit.ExitCode}
	}
	return nil
}

// cleanupRun removes run's sandbox, or with --keep says its name. It runs
// after the command's context may be gone, so it has its own deadline.
func cleanupRun(cmd *cobra.Command, c *client.Client, name string, keep bool) error {
	if keep {
		fmt.Fprintf(cmd.ErrOrStderr(), "agentkernel: kept sandbox %s\n", name)
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(cmd.Context()), removeTimeout)
	defer cancel()
	err := c.RemoveSandbox(ctx, name)
	if err != nil && !errors.Is(err, errdefs.ErrNotFound) {
		return fmt.Errorf("removing sandbox %s: %w (remove it with: agentkernel remove %s)", name, err, name)
	}
	return nil
}

// ignoreSIGPIPE makes a write to a closed stdout return EPIPE instead of
// killing the CLI, so run still removes its sandbox when its reader goes
// away (`agentkernel run -- yes | head -1`).
func ignoreSIGPIPE() {
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := io.ReadFull(rand.Reader, b); err != nil {
		return fmt.Sprintf("%x", time.Now().UnixNano())[:2*n]
	}
	return hex.EncodeToString(b)
}
