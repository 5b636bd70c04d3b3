package cli

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Limits on what flags may hold; the daemon checks again.
const (
	maxDays = 365
)

// parseEnv checks -e entries: KEY=VALUE with a non-empty KEY free of '='
// and NUL. "KEY" alone is refused (the local environment is never copied
// into a sandbox implicitly).
func parseEnv(entries []string) ([]string, error) {
	for _, e := range entries {
		k, _, ok := strings.Cut(e, "=")
		if !ok {
			return nil, fmt.Errorf("invalid -e %q: want KEY=VALUE", e)
		}
		if k == "" || strings.ContainsAny(k, "\x00 \t\n") {
			return nil, fmt.Errorf("invalid -e %q: the name must be non-empty, without spaces", e)
		}
		if strings.ContainsRune(e, 0) {
			return nil, fmt.Errorf("invalid -e %q: NUL byte", e)
		}
	}
	return entries, nil
}

// parseLabels turns --label k=v entries into a map; a repeated key is an
// error.
func parseLabels(entries []string) (map[string]string, error) {
	if len(entries) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(entries))
	for _, e := range entries {
		k, v, ok := strings.Cut(e, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("invalid --label %q: want KEY=VALUE", e)
		}
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("invalid --label %q: %q given twice", e, k)
		}
		out[k] = v
	}
	return out, nil
}

// parseDirs checks --dir HOSTDIR[:SANDBOXPATH[:ro|rw]] entries and makes
// HOSTDIR absolute against the CLI's working directory (the daemon, which
// reads it, has another). The daemon checks that it exists.
func parseDirs(entries []string) ([]string, error) {
	out := make([]string, 0, len(entries))
	for _, e := range entries {
		parts := strings.Split(e, ":")
		if len(parts) > 3 || parts[0] == "" {
			return nil, fmt.Errorf("invalid --dir %q: want HOSTDIR[:SANDBOXPATH[:ro]]", e)
		}
		if len(parts) > 1 && parts[1] != "" && !strings.HasPrefix(parts[1], "/") {
			return nil, fmt.Errorf("invalid --dir %q: the sandbox path must be absolute", e)
		}
		if len(parts) == 3 && parts[2] != "ro" && parts[2] != "rw" {
			return nil, fmt.Errorf("invalid --dir %q: the third field must be ro or rw", e)
		}
		abs, err := filepath.Abs(parts[0])
		if err != nil {
			return nil, fmt.Errorf("invalid --dir %q: %w", e, err)
		}
		parts[0] = abs
		out = append(out, strings.Join(parts, ":"))
	}
	return out, nil
}

// parseDuration checks a duration flag ("30s", "10m", "2h", or upstream's
// days, "2d") and returns it unchanged for the daemon; "" is allowed.
func parseDuration(flag, s string) (string, error) {
	if s == "" {
		return "", nil
	}
	bad := fmt.Errorf("invalid %s %q: use a duration such as 30s, 10m, 2h or 1d", flag, s)
	if n, ok := strings.CutSuffix(s, "d"); ok {
		d, err := strconv.Atoi(n)
		if err != nil || d <= 0 || d > maxDays {
			return "", bad
		}
		return s, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return "", bad
	}
	return s, nil
}

// splitCommand splits the positional arguments of `exec NAME [--] CMD…`:
// with "--" exactly one argument must precede it; without, the first
// argument is the name and the rest the command.
func splitCommand(args []string, dash int) (name string, command []string, err error) {
	switch {
	case dash > 1:
		return "", nil, fmt.Errorf("want one sandbox name before --, got %q", args[:dash])
	case dash == 0:
		return "", nil, fmt.Errorf("a sandbox name must come before --")
	case len(args) == 0:
		return "", nil, fmt.Errorf("missing the sandbox name and the command")
	}
	name, command = args[0], args[1:]
	// Flag parsing stops at NAME (as docker exec's does), so a "--"
	// after it is still in command.
	if len(command) > 0 && command[0] == "--" && dash < 0 {
		command = command[1:]
	}
	if len(command) == 0 {
		return "", nil, fmt.Errorf("missing the command (agentkernel exec NAME -- CMD…)")
	}
	return name, command, nil
}
