package client

import (
	"context"
	"encoding/json"
	"fmt"
	"mime"
	"net/url"
	"strconv"

	"github.com/agentkernel/agentkernel/pkg/api"
)

// EventsOptions choose the events of GET /events.
type EventsOptions struct {
	// Sandbox keeps the events of the sandbox of that name.
	Sandbox string
	// Labels keep the events of sandboxes with each KEY or KEY=VALUE.
	Labels []string
	// After resumes after the event with that ID; nil starts with the
	// events recorded from now on.
	After *int64
}

func (o EventsOptions) query() url.Values {
	q := url.Values{}
	if o.Sandbox != "" {
		q.Set("sandbox", o.Sandbox)
	}
	for _, l := range o.Labels {
		q.Add("label", l)
	}
	if o.After != nil {
		q.Set("after", strconv.FormatInt(*o.After, 10))
	}
	return q
}

// Events returns the recorded events after opts.After (0 if nil: the
// oldest kept) without waiting for new ones, at most limit (1 to 1000).
func (c *Client) Events(ctx context.Context, opts EventsOptions, limit int) ([]api.Event, error) {
	if opts.After == nil {
		zero := int64(0)
		opts.After = &zero
	}
	q := opts.query()
	q.Set("wait", "0s")
	q.Set("limit", strconv.Itoa(limit))
	var out []api.Event
	err := c.call(ctx, "GET", "/events", q, nil, &out)
	return out, err
}

// FollowEvents streams events (Server-Sent Events) and calls fn with each
// as it is recorded, until ctx ends, fn fails (its error is returned) or
// the stream ends (nil: the daemon went away; resume with After set to the
// last event's ID).
func (c *Client) FollowEvents(ctx context.Context, opts EventsOptions, fn func(api.Event) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	resp, err := c.send(ctx, request{method: "GET", path: "/events", query: opts.query(), accept: "text/event-stream"})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "text/event-stream" {
		return fmt.Errorf("agentkernel: /events answered %q, not an event stream", resp.Header.Get("Content-Type"))
	}
	err = readSSE(resp.Body, func(event string, data []byte) error {
		if event == api.EventError {
			return fmt.Errorf("agentkernel: the event stream failed: %s", data)
		}
		var ev api.Event
		if err := json.Unmarshal(data, &ev); err != nil {
			return fmt.Errorf("agentkernel: a malformed event: %w", err)
		}
		return fn(ev)
	})
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}
