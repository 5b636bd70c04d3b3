package cli

import (
	"fmt"
	"path"
	"path/filepath"
	"regexp"
	"strings"
)

// sandboxNameRE is what the daemon accepts as a sandbox name; cp uses it to
// tell NAME:/path from a host path with a colon.
var sandboxNameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$`)

// cpPath is one side of `cp`: a host path, "-" (a tar stream on stdio), or
// a path in a sandbox.
type cpPath struct {
	// Sandbox is the sandbox's name; empty for the host.
	Sandbox string
	// Path as written, without the "NAME:" prefix.
	Path string
}

func (p cpPath) remote() bool { return p.Sandbox != "" }

// stdio says the side is "-".
func (p cpPath) stdio() bool { return p.Sandbox == "" && p.Path == "-" }

// clean is the sandbox path cleaned ("/a/b/" → "/a/b").
func (p cpPath) clean() string { return path.Clean(p.Path) }

// dirOnly says the path ends with "/": it must be (or become) a directory.
func (p cpPath) dirOnly() bool { return strings.HasSuffix(p.Path, "/") }

// contents says the path ends with "/.": copy a directory's contents, not
// the directory.
func (p cpPath) contents() bool {
	if p.remote() {
		return p.Path != "/." && strings.HasSuffix(p.Path, "/.")
	}
	return p.Path != "/." && strings.HasSuffix(p.Path, string(filepath.Separator)+".")
}

// parseCpPath splits a cp argument. NAME:/path is a sandbox path when NAME
// looks like a sandbox name and no '/' comes before the ':'; anything else
// is a host path (write ./a:b for a host file called "a:b").
func parseCpPath(s string) (cpPath, error) {
	if s == "" {
		return cpPath{}, fmt.Errorf("empty path")
	}
	if strings.ContainsRune(s, 0) {
		return cpPath{}, fmt.Errorf("path %q has a NUL byte", s)
	}
	i := strings.IndexByte(s, ':')
	if i < 0 || strings.HasPrefix(s, "/") || strings.HasPrefix(s, ".") || strings.Contains(s[:i], "/") {
		return cpPath{Path: s}, nil
	}
	name, p := s[:i], s[i+1:]
	if !sandboxNameRE.MatchString(name) {
		return cpPath{}, fmt.Errorf("%q: %q is not a sandbox name (write ./%s for a host path)", s, name, s)
	}
	if !strings.HasPrefix(p, "/") {
		return cpPath{}, fmt.Errorf("%q: the sandbox path must be absolute (%s:/path)", s, name)
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == ".." {
			return cpPath{}, fmt.Errorf("%q: the sandbox path must not contain ..", s)
		}
	}
	return cpPath{Sandbox: name, Path: p}, nil
}

// parseCpArgs parses cp's SRC and DST: exactly one must be in a sandbox.
func parseCpArgs(src, dst string) (cpPath, cpPath, error) {
	s, err := parseCpPath(src)
	if err != nil {
		return cpPath{}, cpPath{}, err
	}
	d, err := parseCpPath(dst)
	if err != nil {
		return cpPath{}, cpPath{}, err
	}
	switch {
	case s.remote() && d.remote():
		return cpPath{}, cpPath{}, fmt.Errorf("copying between two sandboxes is not supported; copy through the host")
	case !s.remote() && !d.remote():
		return cpPath{}, cpPath{}, fmt.Errorf("one of SRC and DST must be a sandbox path, NAME:/path")
	case s.remote() && s.contents():
		return cpPath{}, cpPath{}, fmt.Errorf("%s: copying a sandbox directory's contents (/.) is not supported; copy the directory", src)
	case d.remote() && d.contents():
		return cpPath{}, cpPath{}, fmt.Errorf("%s: a destination cannot end in /.", dst)
	}
	return s, d, nil
}
