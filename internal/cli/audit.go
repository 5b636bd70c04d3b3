package cli

import (
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/agentkernel/agentkernel/pkg/api"
)

func newAuditCmd(app *App) *cobra.Command {
	var limit int
	var denied bool
	cmd := &cobra.Command{
		Use:   "audit NAME",
		Short: "Show a sandbox's network audit log",
		Long: `Audit prints the last events of a sandbox's network gateway, oldest first:
DNS answers, connections allowed or denied with the rule that decided,
their bytes when they end, requests whose secret the gateway injected, and
connections to published ports. --json prints the events as the API
returns them.`,
		Example: `  agentkernel audit dev
  agentkernel audit dev --denied -n 50`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if limit < 1 || limit > 10000 {
				return fmt.Errorf("-n %d: want 1 to 10000", limit)
			}
			c, err := connect(cmd, app, exitFailure)
			if err != nil {
				return err
			}
			events, err := c.NetworkLog(cmd.Context(), args[0], limit)
			if err != nil {
				return err
			}
			if denied {
				kept := events[:0]
				for _, e := range events {
					if !e.Allowed {
						kept = append(kept, e)
					}
				}
				events = kept
			}
			if app.JSON {
				if events == nil {
					events = []api.NetworkEvent{}
				}
				return printJSON(cmd.OutOrStdout(), events)
			}
			return printAudit(cmd.OutOrStdout(), events)
		},
	}
	cmd.Flags().IntVarP(&limit, "lines", "n", 200, "how many of the last events")
	cmd.Flags().BoolVar(&denied, "denied", false, "only what was denied")
	return cmd
}

func printAudit(w io.Writer, events []api.NetworkEvent) error {
	t := newTable(w, "TIME", "KIND", "DESTINATION", "DECISION", "RULE", "DETAIL")
	for _, e := range events {
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
		t.row(e.Time.Local().Format(time.TimeOnly), e.Kind, orDash(dest), decision, orDash(e.Rule), orDash(strings.TrimSpace(strings.Join(detail, " "))))
	}
	return t.flush()
}
