package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"

	"github.com/agentkernel/agentkernel/pkg/api"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// Bounds on a Server-Sent Events stream.
const (
	maxSSELine  = 1 << 20
	maxSSEEvent = 4 << 20
)

// RunStream runs a command in a new ephemeral sandbox and calls fn with
// each Server-Sent Event as it arrives: "started", "progress", "output"
// (api.OutputEvent), then "done" (api.DoneEvent) or "error"
// (api.ErrorEvent). data is the event's JSON. RunStream returns nil after
// "done", an *errdefs.Remote after "error", fn's error if fn fails (the
// connection is then dropped, which stops the command), and an error
// wrapping io.ErrUnexpectedEOF if the stream ends early.
func (c *Client) RunStream(ctx context.Context, req api.RunRequest, fn func(event string, data json.RawMessage) error) error {
	b, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("client: encoding the request: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	resp, err := c.send(ctx, request{method: "POST", path: "/run/stream", body: bytes.NewReader(b),
		contentType: "application/json", accept: "text/event-stream"})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "text/event-stream" {
		return fmt.Errorf("agentkernel: /run/stream answered %q, not an event stream", resp.Header.Get("Content-Type"))
	}
	end := errors.New("end")
	var result error
	err = readSSE(resp.Body, func(event string, data []byte) error {
		if err := fn(event, json.RawMessage(data)); err != nil {
			return err
		}
		switch event {
		case api.EventDone:
			return end
		case api.EventError:
			var e api.ErrorEvent
			if json.Unmarshal(data, &e) != nil || e.Message == "" {
				e.Message = "run failed: " + string(data)
			}
			result = &errdefs.Remote{Class: errdefs.FromCode(e.Code), Message: e.Message}
			return end
		}
		return nil
	})
	switch {
	case errors.Is(err, end):
		return result
	case err != nil:
		return err
	}
	return fmt.Errorf("agentkernel: the run stream ended before its done event: %w", io.ErrUnexpectedEOF)
}

// readSSE parses a Server-Sent Events stream from r, calling fn for each
// event with its type ("message" when none is given) and its data lines
// joined by "\n". Comments and unknown fields are skipped; lines end in
// "\n", "\r\n" or "\r". It returns nil at the end of r, fn's error, or an error
// for a line or event over the bounds.
func readSSE(r io.Reader, fn func(event string, data []byte) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxSSELine)
	sc.Split(scanSSELines)
	var (
		event   string
		data    []byte
		hasData bool
	)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 {
			if hasData {
				name := event
				if name == "" {
					name = "message"
				}
				if err := fn(name, data); err != nil {
					return err
				}
			}
			event, data, hasData = "", nil, false
			continue
		}
		if line[0] == ':' {
			continue
		}
		field, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		switch string(field) {
		case "event":
			event = string(value)
		case "data":
			if hasData {
				data = append(data, '\n')
			}
			data, hasData = append(data, value...), true
			if len(data) > maxSSEEvent {
				return fmt.Errorf("agentkernel: an event of the stream exceeds %d bytes", maxSSEEvent)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("agentkernel: reading the event stream: %w", err)
	}
	return nil
}

// scanSSELines splits lines ending in "\r\n", "\n" or "\r", as the SSE
// format allows.
func scanSSELines(data []byte, atEOF bool) (advance int, token []byte, err error) {
	i := bytes.IndexAny(data, "\r\n")
	switch {
	case i < 0:
		if atEOF && len(data) > 0 {
			return len(data), data, nil
		}
		return 0, nil, nil
	case data[i] == '\n':
		return i + 1, data[:i], nil
	case i+1 < len(data):
		if data[i+1] == '\n' {
			return i + 2, data[:i], nil
		}
		return i + 1, data[:i], nil
	case atEOF:
		return i + 1, data[:i], nil
	default:
		return 0, nil, nil // a "\r" at the end: wait to see whether "\n" follows
	}
}
