package api

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// MaxDuration bounds every duration on the wire: exec timeouts, TTLs and
// their extensions.
const MaxDuration = 366 * 24 * time.Hour

// ParseDuration parses a duration as time.ParseDuration does, plus a
// leading whole number of days ("2d", "1d12h"), which upstream's clients
// send. The result must be positive and at most a year.
func ParseDuration(s string) (time.Duration, error) {
	var days time.Duration
	rest := s
	if i := strings.IndexByte(s, 'd'); i >= 0 {
		n, err := strconv.ParseUint(s[:i], 10, 16)
		if err != nil {
			return 0, fmt.Errorf("%w: invalid duration %q", errdefs.ErrInvalidArgument, s)
		}
		days = time.Duration(n) * 24 * time.Hour
		rest = s[i+1:]
	}
	var d time.Duration
	if rest != "" || days == 0 {
		var err error
		if d, err = time.ParseDuration(rest); err != nil || d < 0 {
			return 0, fmt.Errorf("%w: invalid duration %q: use a number with a unit such as 30s, 15m, 2h or 1d", errdefs.ErrInvalidArgument, s)
		}
	}
	d += days
	if d <= 0 || d > MaxDuration || d < days {
		return 0, fmt.Errorf("%w: invalid duration %q: must be positive and at most %s", errdefs.ErrInvalidArgument, s, MaxDuration)
	}
	return d, nil
}
