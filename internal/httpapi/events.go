package httpapi

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/agentkernel/agentkernel/internal/events"
	"github.com/agentkernel/agentkernel/pkg/api"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// EventSource is implemented by a Service that records events (GET
// /events); without it the route answers 501.
type EventSource interface {
	events.Source
	// LastEventID is the newest recorded event's ID: where a new
	// follower starts.
	LastEventID(ctx context.Context) (int64, error)
}

// Bounds of a GET /events that is not a stream (upstream's form: collect,
// then answer once).
const (
	defaultEventsWait  = 30 * time.Second
	maxEventsWait      = 5 * time.Minute
	defaultEventsLimit = 100
	maxEventsLimit     = 1000
)

// eventFilter is GET /events' ?sandbox=NAME and ?label=KEY[=VALUE]. Labels
// are those a sandbox has when its event is sent (a removed sandbox has
// none, so only a name filter follows it past its removal).
type eventFilter struct {
	sandbox string
	labels  labelFilter
	// labelsOf caches the labels of each sandbox seen, by UUID.
	labelsOf map[string]map[string]string
}

func (s *server) matches(ctx context.Context, f *eventFilter, ev api.Event) bool {
	if f.sandbox != "" && ev.Sandbox != f.sandbox {
		return false
	}
	if len(f.labels) == 0 {
		return true
	}
	l, ok := f.labelsOf[ev.SandboxUUID]
	if !ok {
		if info, err := s.svc.GetSandboxByUUID(ctx, ev.SandboxUUID); err == nil {
			l = info.Labels
		}
		f.labelsOf[ev.SandboxUUID] = l
	}
	return f.labels.matches(l)
}

// events serves GET /events: Server-Sent Events when the client accepts
// them (each with its id; resumable with Last-Event-ID or ?after=ID),
// otherwise a JSON list of what arrives within ?wait= (default 30 s) up to
// ?limit= events (default 100), as upstream answers.
func (s *server) events(w http.ResponseWriter, r *http.Request) {
	src, ok := s.svc.(EventSource)
	if !ok {
		s.writeError(w, r, &classError{class: errdefs.ErrNotImplemented, msg: "this server records no events"})
		return
	}
	q := r.URL.Query()
	f := &eventFilter{sandbox: q.Get("sandbox"), labelsOf: map[string]map[string]string{}}
	if f.sandbox != "" {
		if err := checkName(f.sandbox); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	var err error
	if f.labels, err = parseLabelFilter(q["label"]); err != nil {
		s.writeError(w, r, err)
		return
	}
	after := int64(-1)
	for _, v := range []string{r.Header.Get("Last-Event-ID"), q.Get("after")} {
		if v == "" {
			continue
		}
		if after, err = strconv.ParseInt(v, 10, 64); err != nil || after < 0 {
			s.writeError(w, r, invalidf("event id %q: want a number, 0 or more", v))
			return
		}
		break
	}
	if after < 0 {
		if after, err = src.LastEventID(r.Context()); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	if strings.Contains(r.Header.Get("Accept"), "text/event-stream") {
		s.streamEvents(w, r, src, f, after)
		return
	}
	s.collectEvents(w, r, src, f, after)
}

func (s *server) streamEvents(w http.ResponseWriter, r *http.Request, src EventSource, f *eventFilter, after int64) {
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	st := newSSEStream(w, cancel)
	defer st.close()
	st.start()
	err := events.Follow(ctx, src, after, func(ev api.Event) error {
		if !s.matches(ctx, f, ev) {
			return nil
		}
		return st.sendID(ev.ID, ev.Event, ev)
	})
	if err != nil && ctx.Err() == nil {
		s.streamError(st, r, "error", err)
	}
}

var errCollected = errors.New("collected enough events")

func (s *server) collectEvents(w http.ResponseWriter, r *http.Request, src EventSource, f *eventFilter, after int64) {
	q := r.URL.Query()
	wait, limit := defaultEventsWait, defaultEventsLimit
	if v := q.Get("wait"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || d > maxEventsWait {
			s.writeError(w, r, invalidf("wait %q: a duration up to %v", v, maxEventsWait))
			return
		}
		wait = d
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxEventsLimit {
			s.writeError(w, r, invalidf("limit %q: a number from 1 to %d", v, maxEventsLimit))
			return
		}
		limit = n
	}
	// What is recorded already, then (if there is room and time) what
	// comes within wait.
	out := []api.Event{}
	keep := func(ev api.Event) error {
		if s.matches(r.Context(), f, ev) {
			out = append(out, ev)
		}
		if len(out) >= limit {
			return errCollected
		}
		return nil
	}
	for len(out) < limit {
		page, err := src.EventsAfter(r.Context(), after, maxEventsLimit)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		for _, ev := range page {
			after = ev.ID
			if keep(ev) != nil {
				break
			}
		}
		if len(page) < maxEventsLimit {
			break
		}
	}
	if len(out) < limit && wait > 0 {
		ctx, cancel := context.WithTimeout(r.Context(), wait)
		defer cancel()
		err := events.Follow(ctx, src, after, keep)
		if err != nil && !errors.Is(err, errCollected) && !errors.Is(err, context.DeadlineExceeded) {
			s.writeError(w, r, err)
			return
		}
	}
	writeData(w, http.StatusOK, out)
}
