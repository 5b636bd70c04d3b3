package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/agentkernel/agentkernel/pkg/api"
	"github.com/agentkernel/agentkernel/pkg/client"
)

// maxAuditLast is the most records one audit call asks for.
const maxAuditLast = 10000

func newAuditCmd(app *App) *cobra.Command {
	var (
		sandbox, since string
		last           int
		denied, path   bool
	)
	cmd := &cobra.Command{
		Use:   "audit [NAME]",
		Short: "Show the audit log: every exec, file write and connection",
		Long: `Audit prints the last records of a hash-chained audit log, oldest first.

Without a sandbox it reads the daemon's global log: every sandbox's
lifecycle, exec (argv, user, workdir, exit code, duration, bytes out;
environment variable names, never their values), file and policy events.
With a sandbox (NAME or --sandbox) it reads that sandbox's own log: its
exec and file records and its network gateway's DNS answers, connections
allowed or denied with the rule that decided, their bytes when they end,
requests whose secret the gateway injected, and connections to published
ports. A removed sandbox's log is kept and can still be read.

--json prints one record per line as written, with its seq, prev and hash.
"agentkernel audit verify" checks the hash chain.`,
		Example: `  agentkernel audit
  agentkernel audit dev --denied -l 50
  agentkernel audit --sandbox dev --since 10m --json
  agentkernel audit verify --sandbox dev`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				if sandbox != "" && sandbox != args[0] {
					return fmt.Errorf("sandbox %q and --sandbox %q: name one", args[0], sandbox)
				}
				sandbox = args[0]
			}
			if sandbox != "" && !cmd.Flags().Changed("last") && !cmd.Flags().Changed("lines") {
				// A sandbox's log is mostly its network events: show as
				// many as `audit NAME` always did.
				last = 200
			}
			if denied && sandbox == "" {
				return fmt.Errorf("--denied needs a sandbox: connections are in each sandbox's own log (audit NAME --denied)")
			}
			if last < 1 || last > maxAuditLast {
				return fmt.Errorf("--last %d: want 1 to %d", last, maxAuditLast)
			}
			q := client.AuditQuery{Sandbox: sandbox, Limit: last}
			if since != "" {
				t, err := parseSince(since, time.Now())
				if err != nil {
					return err
				}
				q.Since = t
			}
			if denied {
				// Denials are filtered here: ask for the most records.
				q.Limit = maxAuditLast
			}
			c, err := connect(cmd, app, exitFailure)
			if err != nil {
				return err
			}
			lg, err := c.AuditLog(cmd.Context(), q)
			if err != nil {
				return err
			}
			if path {
				_, err := fmt.Fprintln(cmd.OutOrStdout(), lg.Path)
				return err
			}
			recs := lg.Records
			if denied {
				kept := recs[:0]
				for _, r := range recs {
					if e, ok := networkRecord(r); ok && !e.Allowed {
						kept = append(kept, r)
					}
				}
				recs = kept
				if len(recs) > last {
					recs = recs[len(recs)-last:]
				}
			}
			if app.JSON {
				for _, r := range recs {
					if _, err := fmt.Fprintf(cmd.OutOrStdout(), "%s\n", r); err != nil {
						return err
					}
				}
				return nil
			}
			return printAudit(cmd.OutOrStdout(), recs)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&sandbox, "sandbox", "s", "", "a sandbox's log instead of the global one")
	f.IntVarP(&last, "last", "l", 20, "how many of the last records (200 for a sandbox's log)")
	f.IntVarP(&last, "lines", "n", 20, "the same as --last")
	f.MarkHidden("lines")
	f.StringVar(&since, "since", "", "only records since a time (RFC 3339) or for a duration back (10m, 2h)")
	f.BoolVar(&denied, "denied", false, "only connections that were denied")
	f.BoolVar(&path, "path", false, "print the log file's path on the daemon's host")
	cmd.AddCommand(newAuditVerifyCmd(app))
	return cmd
}

func newAuditVerifyCmd(app *App) *cobra.Command {
	var sandbox string
	cmd := &cobra.Command{
		Use:   "verify [NAME]",
		Short: "Check the audit log's hash chain",
		Long: `Verify checks that no record of the audit log was altered, removed or
reordered: every record's hash covers its bytes and the hash of the one
before. It exits non-zero and names the first broken record (file, line,
seq and why); a good log prints how many records verified.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				sandbox = args[0]
			}
			c, err := connect(cmd, app, exitFailure)
			if err != nil {
				return err
			}
			v, err := c.VerifyAudit(cmd.Context(), sandbox)
			if err != nil {
				return err
			}
			if app.JSON {
				if err := printJSON(cmd.OutOrStdout(), v); err != nil {
					return err
				}
			}
			if b := v.Broken; b != nil {
				return withCode(exitFailure, fmt.Errorf("audit log broken: %s line %d (seq %d): %s (%d records verified before it)",
					b.File, b.Line, b.Seq, b.Reason, v.Records))
			}
			if !app.JSON {
				live := ""
				if !v.Live {
					live = " (its writer was not asked for its last record: a cut tail would not show)"
				}
				fmt.Fprintf(cmd.OutOrStdout(), "ok: %d records verified, seq %d to %d, in %s%s\n",
					v.Records, v.FirstSeq, v.LastSeq, strings.Join(v.Files, ", "), live)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&sandbox, "sandbox", "s", "", "a sandbox's log instead of the global one")
	return cmd
}

// parseSince reads --since: an RFC 3339 time or a duration back from now.
func parseSince(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	d, err := api.ParseDuration(s)
	if err != nil || d <= 0 {
		return time.Time{}, fmt.Errorf("--since %q: want an RFC 3339 time (2026-01-02T15:04:05Z) or a duration (10m)", s)
	}
	return now.Add(-d), nil
}

// auditRecord is the fields of a record the table shows.
type auditRecord struct {
	api.AuditRecordHeader
	Command  []string `json:"command"`
	ExitCode *int     `json:"exit_code"`
	Duration int64    `json:"duration_ms"`
	BytesOut *int64   `json:"bytes_out"`
	User     string   `json:"user"`
	Path     string   `json:"path"`
	Error    string   `json:"error"`
	Count    int64    `json:"count"`
	Dropped  int64    `json:"dropped_bytes"`
	TimedOut bool     `json:"timed_out"`
	PrevLog  string   `json:"previous_log"`
	EnvNames []string `json:"env_names"`
	Workdir  string   `json:"workdir"`
	Signal   int      `json:"signal"`
}

// networkRecord decodes r as a gateway event, if it is one.
func networkRecord(r json.RawMessage) (api.NetworkEvent, bool) {
	var h api.AuditRecordHeader
	var e api.NetworkEvent
	if json.Unmarshal(r, &h) != nil || h.Type != "network" || json.Unmarshal(r, &e) != nil {
		return e, false
	}
	return e, true
}

func printAudit(w io.Writer, recs []json.RawMessage) error {
	t := newTable(w, "TIME", "KIND", "WHAT", "DECISION", "RULE", "DETAIL")
	for _, r := range recs {
		if e, ok := networkRecord(r); ok {
			t.row(networkRow(e)...)
			continue
		}
		var a auditRecord
		if json.Unmarshal(r, &a) != nil {
			continue
		}
		what, decision, detail := a.Sandbox, "-", []string{}
		switch {
		case len(a.Command) > 0:
			what = a.Sandbox + ": " + strings.Join(a.Command, " ")
			if a.ExitCode != nil {
				decision = "exit " + strconv.Itoa(*a.ExitCode)
				detail = append(detail, (time.Duration(a.Duration) * time.Millisecond).String())
			}
			if a.BytesOut != nil {
				detail = append(detail, fmt.Sprintf("%d B out", *a.BytesOut))
			}
			if a.User != "" {
				detail = append(detail, "user "+a.User)
			}
			if a.Workdir != "" {
				detail = append(detail, "in "+a.Workdir)
			}
			if len(a.EnvNames) > 0 {
				detail = append(detail, "env "+strings.Join(a.EnvNames, ","))
			}
			if a.Signal != 0 {
				detail = append(detail, "signal "+strconv.Itoa(a.Signal))
			}
			if a.TimedOut {
				detail = append(detail, "timed out")
			}
		case a.Path != "":
			what = a.Sandbox + ": " + a.Path
		}
		switch {
		case a.Count > 0:
			detail = append(detail, fmt.Sprintf("%d records", a.Count))
		case a.Dropped > 0:
			detail = append(detail, fmt.Sprintf("cut %d bytes of a torn last line", a.Dropped))
		case a.PrevLog != "":
			detail = append(detail, "previous log "+a.PrevLog+" could not be continued")
		}
		if a.Error != "" {
			detail = append(detail, "error: "+a.Error)
		}
		t.row(a.Time.Local().Format(time.DateTime), a.Type, orDash(what), decision, "-", orDash(strings.Join(detail, ", ")))
	}
	return t.flush()
}

// networkRow is a gateway event as a row of printAudit's table.
func networkRow(e api.NetworkEvent) []string {
	dest := e.Name
	if e.IP != "" {
		addr := e.IP
		if e.Port != 0 {
			addr = net.JoinHostPort(e.IP, strconv.Itoa(int(e.Port)))
		}
		if dest != "" {
			dest += " "
		}
		dest += addr
	}
	if e.Proto != "" {
		dest += "/" + e.Proto
	}
	decision := "denied"
	if e.Allowed {
		decision = "allowed"
	}
	var detail []string
	switch e.Kind {
	case "dns":
		detail = append(detail, e.QType, e.RCode)
		if len(e.IPs) > 0 {
			detail = append(detail, strings.Join(e.IPs, ","))
		}
	case "close", "inbound":
		if e.BytesUp+e.BytesDown > 0 || e.Kind == "close" {
			detail = append(detail, fmt.Sprintf("up %d B, down %d B", e.BytesUp, e.BytesDown))
		}
	case "request":
		detail = append(detail, e.Method, strconv.Itoa(e.Status))
		if e.SecretInjected {
			detail = append(detail, "secret injected")
		}
	case "suppressed":
		decision = "-"
		detail = append(detail, fmt.Sprintf("%d denials not logged (rate limit)", e.Count))
	}
	if e.Intercepted && e.Kind != "request" {
		detail = append(detail, "intercepted")
	}
	if e.Error != "" {
		detail = append(detail, "error: "+e.Error)
	}
	return []string{e.Time.Local().Format(time.DateTime), e.Kind, orDash(dest), decision, orDash(e.Rule), orDash(strings.TrimSpace(strings.Join(detail, " ")))}
}
