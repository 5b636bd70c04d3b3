// Package mountinfo parses /proc/PID/mountinfo: the one parser that every
// part of agentkernel uses to ask what is mounted (teardown, image garbage
// collection, cgroup discovery, the microVM's disks, the guest's init), so
// that each sees paths the same way, octal escapes (\040 for a space)
// decoded.
package mountinfo

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
)

// Mount is one line of mountinfo (see proc(5)).
type Mount struct {
	ID, Parent int
	// Root is the path within the filesystem that is mounted; Target is
	// the mount point. Both are unescaped.
	Root, Target string
	// Options are the per-mount options ("rw,relatime").
	Options string
	// FSType is the filesystem type ("overlay", "cgroup2"), Source its
	// source ("/dev/vda", "none"), SuperOptions its per-superblock options
	// ("lowerdir=…,upperdir=…"); Source and SuperOptions are unescaped.
	FSType, Source, SuperOptions string
}

// Read parses the mountinfo file at path ("/proc/self/mountinfo").
func Read(path string) ([]Mount, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(string(b))
}

// Self parses this process's mount table.
func Self() ([]Mount, error) { return Read("/proc/self/mountinfo") }

// Parse parses mountinfo text; a malformed line is an error naming it.
func Parse(text string) ([]Mount, error) {
	var out []Mount
	for n, line := range strings.Split(text, "\n") {
		if line == "" {
			continue
		}
		pre, post, ok := strings.Cut(line, " - ")
		f, g := strings.Fields(pre), strings.Fields(post)
		if !ok || len(f) < 6 || len(g) < 2 {
			return nil, fmt.Errorf("mountinfo line %d: malformed: %.120q", n+1, line)
		}
		id, err1 := strconv.Atoi(f[0])
		parent, err2 := strconv.Atoi(f[1])
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("mountinfo line %d: bad mount ids: %.120q", n+1, line)
		}
		m := Mount{ID: id, Parent: parent, Root: Unescape(f[3]), Target: Unescape(f[4]), Options: f[5],
			FSType: g[0], Source: Unescape(g[1])}
		if len(g) > 2 {
			m.SuperOptions = Unescape(g[2])
		}
		out = append(out, m)
	}
	return out, nil
}

// Under returns the mount points at or below dir (clean, absolute), in
// mount order (parents before children); DeepestFirst reorders them for
// unmounting.
func Under(ms []Mount, dir string) []string {
	var out []string
	for _, m := range ms {
		if m.Target == dir || strings.HasPrefix(m.Target, dir+"/") || dir == "/" {
			out = append(out, m.Target)
		}
	}
	return out
}

// DeepestFirst returns targets sorted so that a mount comes before the
// mounts that contain it (children before parents), for unmounting.
func DeepestFirst(targets []string) []string {
	out := slices.Clone(targets)
	slices.SortStableFunc(out, func(a, b string) int { return strings.Count(b, "/") - strings.Count(a, "/") })
	return out
}

// Unescape decodes mountinfo's octal escapes (\040 space, \011 tab, \012
// newline, \134 backslash); other bytes are kept as they are.
func Unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) && s[i+1] <= '3' {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }
