package httpapi

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// Host paths in requests.
//
// Some requests name a path on the daemon's host: a directory mounted into a
// sandbox (dirs), a directory or tarball imported as an image, a Dockerfile
// build context. The daemon reads them as root, so whoever may name them can
// read the host. On the Unix socket (mode 0600, the daemon's own user) that
// is the caller's own right. Over TCP it is not: a leaked or shared API
// token must not become "read /etc/shadow". So on a handler with a token,
// a host path is refused with 403 unless it lies, after resolving symlinks,
// under one of HandlerOptions.HostPaths (daemon.toml's [api] host_paths).
//
// The path handed on to the Service is the resolved one, so a symlink
// swapped in after the check cannot lead elsewhere through the name the
// caller gave; a component swapped between the check and the use still
// could, which needs write access to an allowed directory on the host.

// remoteCaller reports whether requests to s come over TCP (a token is
// required), where host paths are restricted.
func (s *server) remoteCaller() bool { return s.opts.Token != "" }

// hostPathDenied is the error for a host path a remote caller may not name.
func hostPathDenied(what, p string) error {
	return &classError{class: errdefs.ErrPermissionDenied, msg: fmt.Sprintf(
		"%s %s: host paths are accepted only over the daemon's Unix socket, or over TCP under a directory listed in daemon.toml's [api] host_paths",
		what, quoteBounded(p))}
}

// checkHostPath returns the path to use for host path p named by a request,
// or an error: p must be absolute, and a remote caller may only name paths
// under the allowed roots (symlinks resolved). what names the field in
// errors ("import path", "--dir").
func (s *server) checkHostPath(what, p string) (string, error) {
	if !filepath.IsAbs(p) || len(p) > maxPathLen || hasNUL(p) {
		return "", invalidf("%s %s: must be an absolute host path", what, quoteBounded(p))
	}
	if !s.remoteCaller() {
		return p, nil
	}
	clean := filepath.Clean(p)
	// Lexically outside every root: refused without touching the disk, so
	// a remote caller learns nothing about which host paths exist.
	if !underAny(clean, s.opts.HostPaths) {
		return "", hostPathDenied(what, p)
	}
	resolved, err := filepath.EvalSymlinks(clean)
	if errors.Is(err, fs.ErrNotExist) {
		return "", invalidf("%s %s: no such file or directory", what, quoteBounded(p))
	}
	if err != nil {
		return "", hostPathDenied(what, p)
	}
	if !underAny(resolved, s.opts.HostPaths) {
		return "", hostPathDenied(what, p)
	}
	return resolved, nil
}

// underAny reports whether clean path p is one of roots or below one. The
// roots are clean, absolute and have their symlinks resolved (the daemon
// resolves them when it reads its config).
func underAny(p string, roots []string) bool {
	for _, r := range roots {
		if p == r || r == "/" || strings.HasPrefix(p, r+"/") {
			return true
		}
	}
	return false
}

// checkDirMounts applies checkHostPath to the host part of each
// "HOST[:SANDBOX[:ro|rw]]" entry and returns the entries with resolved host
// paths. The rest of each entry is validated by the Service.
func (s *server) checkDirMounts(dirs []string) ([]string, error) {
	if len(dirs) == 0 {
		return dirs, nil
	}
	out := make([]string, len(dirs))
	for i, d := range dirs {
		host, rest, hasRest := strings.Cut(d, ":")
		p, err := s.checkHostPath("--dir", host)
		if err != nil {
			return nil, err
		}
		out[i] = p
		if hasRest {
			out[i] += ":" + rest
		}
	}
	return out, nil
}

// quoteBounded quotes s for an error message, cut as invalidf cuts its
// arguments.
func quoteBounded(s string) string { return fmt.Sprintf("%q", boundArgs([]any{s})...) }
