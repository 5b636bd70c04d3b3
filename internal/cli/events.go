package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/agentkernel/agentkernel/pkg/api"
	"github.com/agentkernel/agentkernel/pkg/client"
)

func newEventsCmd(app *App) *cobra.Command {
	var (
		o      client.EventsOptions
		follow bool
		after  int64
		limit  int
	)
	cmd := &cobra.Command{
		Use:   "events",
		Short: "Show sandbox events: created, started, commands run and how they ended, stopped, removed",
		Long: `Events prints the daemon's sandbox events, oldest first: the recorded ones
after --after (from the oldest kept), or with --follow those recorded from
now on (or after --after) as they happen, until interrupted. --sandbox and
--label choose the sandboxes; --json prints one JSON event per line.

The same stream is GET /events (Server-Sent Events, resumable with
Last-Event-ID).`,
		Example: `  agentkernel events --follow
  agentkernel events --sandbox dev --json
  agentkernel events --follow --label team=a --after 1200`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if limit < 1 || limit > 1000 {
				return fmt.Errorf("-n %d: want 1 to 1000", limit)
			}
			if cmd.Flags().Changed("after") {
				o.After = &after
			}
			c, err := connect(cmd, app, exitFailure)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			print := func(ev api.Event) error {
				if app.JSON {
					b, err := json.Marshal(ev)
					if err != nil {
						return err
					}
					_, err = fmt.Fprintf(w, "%s\n", b)
					return err
				}
				return printEvent(w, ev)
			}
			if !follow {
				evs, err := c.Events(cmd.Context(), o, limit)
				if err != nil {
					return err
				}
				for _, ev := range evs {
					if err := print(ev); err != nil {
						return err
					}
				}
				return nil
			}
			err = c.FollowEvents(cmd.Context(), o, print)
			if cmd.Context().Err() != nil {
				return nil // interrupted: the normal end of --follow
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Sandbox, "sandbox", "", "only the events of sandbox `NAME`")
	f.StringArrayVar(&o.Labels, "label", nil, "only sandboxes with label `KEY[=VALUE]` (repeatable)")
	f.BoolVarP(&follow, "follow", "f", false, "wait for new events and print them as they happen")
	f.Int64Var(&after, "after", 0, "start after the event with this `ID`")
	f.IntVarP(&limit, "lines", "n", 1000, "at most this many recorded events (without --follow)")
	return cmd
}

// printEvent writes one event on one line: id, time, event, sandbox and
// its details as KEY=VALUE.
func printEvent(w io.Writer, ev api.Event) error {
	keys := make([]string, 0, len(ev.Details))
	for k := range ev.Details {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		v, _ := json.Marshal(ev.Details[k])
		fmt.Fprintf(&b, " %s=%s", k, v)
	}
	_, err := fmt.Fprintln(w, oneLine(fmt.Sprintf("%d  %s  %-18s %s%s", ev.ID, ev.Time.Local().Format(time.RFC3339), ev.Event, ev.Sandbox, b.String())))
	return err
}
