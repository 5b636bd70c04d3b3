package sandbox

import (
	"log/slog"
	"time"
)

// phases times the steps of one operation for a debug log line
// (AGENTKERNEL_LOG=debug): where a create's or a claim's time goes, as
// docs/BENCHMARKS.md's phase tables report it.
type phases struct {
	start, last time.Time
	attrs       []any
}

func newPhases() *phases {
	now := time.Now()
	return &phases{start: now, last: now}
}

// mark ends the step called name.
func (p *phases) mark(name string) {
	now := time.Now()
	p.attrs = append(p.attrs, name, now.Sub(p.last))
	p.last = now
}

// log writes the steps and the total at debug level.
func (p *phases) log(l *slog.Logger, msg string, args ...any) {
	l.Debug(msg, append(append(args, p.attrs...), "total", time.Since(p.start))...)
}
