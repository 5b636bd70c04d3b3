package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/agentkernel/agentkernel/internal/paths"
	"github.com/agentkernel/agentkernel/internal/version"
	"github.com/agentkernel/agentkernel/pkg/client"
)

// Exit codes other than the command's own (see the package doc).
const (
	exitFailure = 1
	// exitCLI is run/exec/attach's code for a failure of agentkernel itself.
	exitCLI = 125
)

// App is what the commands share. main creates one with NewApp, may replace
// Connect, and hands it to NewRootCmd; the root command fills the global
// flag fields before any command runs. Commands run one at a time, so App
// needs no lock.
type App struct {
	// Connect returns a client of the daemon. The default (DialDefault)
	// uses --url, --socket, $AGENTKERNEL_BASE_URL or the socket of
	// internal/paths, in that order, and never starts a daemon; main
	// replaces it with one that does.
	Connect func(ctx context.Context) (*client.Client, error)

	// Global flags.
	Socket string // --socket: the daemon's Unix socket
	URL    string // --url: the daemon's base URL (http://… or unix://…)
	JSON   bool   // --json: print listings and inspections as JSON
}

// NewApp returns an App whose Connect is DialDefault.
func NewApp() *App {
	a := &App{}
	a.Connect = a.DialDefault
	return a
}

// BaseURL is the daemon address the global flags and environment select:
// --url, then --socket, then $AGENTKERNEL_BASE_URL, then the default
// socket. Connect implementations use it so the flags mean the same thing.
func (a *App) BaseURL() (string, error) {
	switch {
	case a.URL != "":
		return a.URL, nil
	case a.Socket != "":
		return "unix://" + a.Socket, nil
	case os.Getenv("AGENTKERNEL_BASE_URL") != "":
		return os.Getenv("AGENTKERNEL_BASE_URL"), nil
	}
	l, err := paths.Default()
	if err != nil {
		return "", err
	}
	return "unix://" + l.Socket(), nil
}

// DialDefault connects to the daemon at BaseURL with the token from
// $AGENTKERNEL_API_KEY, without checking that it answers.
func (a *App) DialDefault(ctx context.Context) (*client.Client, error) {
	u, err := a.BaseURL()
	if err != nil {
		return nil, err
	}
	opts := []client.Option{client.WithBaseURL(u), client.WithUserAgent("agentkernel-cli/" + version.Version)}
	if tok := os.Getenv("AGENTKERNEL_API_KEY"); tok != "" {
		opts = append(opts, client.WithToken(tok))
	}
	return client.New(opts...)
}

// NewRootCmd builds the command tree. main adds its own commands to it.
func NewRootCmd(app *App) *cobra.Command {
	root := &cobra.Command{
		Use:   "agentkernel",
		Short: "Run AI coding agents and their code in isolated sandboxes",
		Long: `agentkernel runs commands and whole AI coding agents inside isolated sandboxes
(hardened containers today), behind one CLI, one HTTP API and a Go SDK.

The CLI talks to the agentkernel daemon over its Unix socket (or --url).`,
		Version:       version.Version,
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	root.SetVersionTemplate("agentkernel {{.Version}}\n")
	root.Flags().BoolP("version", "V", false, "print the version")
	pf := root.PersistentFlags()
	pf.StringVar(&app.Socket, "socket", "", "the daemon's Unix socket (default: $AGENTKERNEL_HOME/run/agentkernel.sock)")
	pf.StringVar(&app.URL, "url", "", "the daemon's base URL, http://HOST:PORT or unix:///PATH (default: $AGENTKERNEL_BASE_URL)")
	pf.BoolVar(&app.JSON, "json", false, "print listings and inspections as JSON")
	root.SetFlagErrorFunc(flagError(exitFailure))

	root.AddGroup(
		&cobra.Group{ID: "run", Title: "Running commands:"},
		&cobra.Group{ID: "sandbox", Title: "Managing sandboxes:"},
		&cobra.Group{ID: "other", Title: "Other commands:"},
	)
	add := func(group string, cmds ...*cobra.Command) {
		for _, c := range cmds {
			c.GroupID = group
			root.AddCommand(c)
		}
	}
	add("run", newRunCmd(app), newExecCmd(app), newAttachCmd(app), newDetachedCmd(app), newCpCmd(app))
	add("sandbox", newSandboxCmd(app),
		// Upstream's top-level names for the sandbox subcommands.
		newCreateCmd(app), newStartCmd(app), newStopCmd(app), newPauseCmd(app), newResumeCmd(app), newRemoveCmd(app), newListCmd(app),
		newPoolCmd(app), newSnapshotCmd(app), newVolumeCmd(app),
		newInitCmd(app), newTemplateCmd(app), newAuditCmd(app), newEventsCmd(app), newReceiptCmd(app))
	img := newImageCmd(app)
	img.AddCommand(newImageBuildCmd(app))
	add("other", img, newBuildCmd(app), newSecretCmd(app), newDoctorCmd(app), newSetupCmd(app), newAgentsCmd(app), newVersionCmd(app))
	add("other", newMCPServerCmd(app), newPluginCmd(app), newCompletionsCmd())
	root.SetHelpCommandGroupID("other")
	root.SetCompletionCommandGroupID("other")
	return root
}

// ExitError carries a process exit code out of a command. With a nil Err
// the code is reported silently (the command already said what happened,
// or the code is the sandboxed process's own).
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}

func (e *ExitError) Unwrap() error { return e.Err }

// withCode wraps err so that Execute exits with code; nil stays nil.
func withCode(code int, err error) error {
	if err == nil {
		return nil
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		return err
	}
	return &ExitError{Code: code, Err: err}
}

// Execute runs root with ctx and the process arguments root was given (or
// os.Args[1:]), prints a failure as "agentkernel: <message>" on root's
// stderr and returns the process exit code. main calls os.Exit with it
// after every deferred cleanup (terminal restore) has run.
func Execute(ctx context.Context, root *cobra.Command) int {
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return 0
	}
	if errors.Is(err, client.ErrDaemonLost) && cmd != nil {
		err = daemonLost(cmd, err)
	}
	code := exitFailure
	var ee *ExitError
	if errors.As(err, &ee) {
		code = ee.Code
		if ee.Err == nil {
			return code
		}
	}
	msg := strings.TrimPrefix(strings.TrimSpace(err.Error()), "agentkernel: ")
	fmt.Fprintf(root.ErrOrStderr(), "agentkernel: %s\n", msg)
	return code
}

// daemonLost says which command the daemon's loss cut off (its arguments
// name the sandbox), that it may or may not have taken effect, and where
// to look, keeping err's exit code.
func daemonLost(cmd *cobra.Command, err error) error {
	line := strings.Join(append([]string{cmd.CommandPath()}, cmd.Flags().Args()...), " ")
	if len(line) > 160 {
		line = line[:160] + "…"
	}
	msg := fmt.Errorf("the connection to the daemon was lost before `%s` finished (the daemon stopped or restarted); "+
		"what it asked for may or may not have been done, and a command may still be running: see agentkernel sandbox list", line)
	var ee *ExitError
	if errors.As(err, &ee) {
		return &ExitError{Code: ee.Code, Err: msg}
	}
	return msg
}

// flagError makes flag errors exit with code and point at --help.
func flagError(code int) func(*cobra.Command, error) error {
	return func(cmd *cobra.Command, err error) error {
		return &ExitError{Code: code, Err: fmt.Errorf("%w\nRun '%s --help' for usage.", err, cmd.CommandPath())}
	}
}

// connect is what every command calls first; a failure is reported with
// code.
func connect(cmd *cobra.Command, app *App, code int) (*client.Client, error) {
	c, err := app.Connect(cmd.Context())
	if err != nil {
		return nil, withCode(code, fmt.Errorf("connecting to the daemon: %w", err))
	}
	return c, nil
}
