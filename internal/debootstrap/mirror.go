package debootstrap

import (
	"bufio"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// maxSourcesBytes bounds each apt sources file read.
const maxSourcesBytes = 1 << 20

// HostMirror returns the Debian mirror the host's apt uses: the first
// "deb" source, in apt's reading order (sources.list, then
// sources.list.d/*.list and *.sources by name), whose URL is http(s) and
// ends in /debian. Without one it returns DefaultMirror.
func HostMirror(aptDir string) string {
	files := []string{filepath.Join(aptDir, "sources.list")}
	d := filepath.Join(aptDir, "sources.list.d")
	var more []string
	for _, pat := range []string{"*.list", "*.sources"} {
		m, _ := filepath.Glob(filepath.Join(d, pat))
		more = append(more, m...)
	}
	sort.Strings(more)
	for _, f := range append(files, more...) {
		var uris []string
		if strings.HasSuffix(f, ".sources") {
			uris = deb822URIs(f)
		} else {
			uris = oneLineURIs(f)
		}
		for _, u := range uris {
			if debianMirror(u) {
				return strings.TrimRight(u, "/")
			}
		}
	}
	return DefaultMirror
}

func debianMirror(u string) bool {
	return (strings.HasPrefix(u, "http://") || strings.HasPrefix(u, "https://")) &&
		strings.HasSuffix(strings.TrimRight(u, "/"), "/debian") && checkMirror(u) == nil
}

func readLimited(p string) []string {
	f, err := os.Open(p)
	if err != nil {
		return nil
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(io.LimitReader(f, maxSourcesBytes))
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return lines
}

// oneLineURIs reads "deb [options] URI suite component..." lines.
func oneLineURIs(p string) []string {
	var out []string
	for _, line := range readLimited(p) {
		line, _, _ = strings.Cut(line, "#")
		f := strings.Fields(line)
		if len(f) < 3 || f[0] != "deb" {
			continue
		}
		f = f[1:]
		if strings.HasPrefix(f[0], "[") {
			for len(f) > 0 && !strings.HasSuffix(f[0], "]") {
				f = f[1:]
			}
			if len(f) < 2 {
				continue
			}
			f = f[1:]
		}
		out = append(out, f[0])
	}
	return out
}

// deb822URIs reads the URIs of the enabled "deb" stanzas of a .sources
// file.
func deb822URIs(p string) []string {
	var out []string
	fields := map[string]string{}
	flush := func() {
		if strings.Contains(" "+fields["types"]+" ", " deb ") && !strings.EqualFold(fields["enabled"], "no") {
			out = append(out, strings.Fields(fields["uris"])...)
		}
		fields = map[string]string{}
	}
	for _, line := range append(readLimited(p), "") {
		switch {
		case strings.TrimSpace(line) == "":
			flush()
		case strings.HasPrefix(line, "#"), strings.HasPrefix(line, " "), strings.HasPrefix(line, "\t"):
			// comments and continuation lines (Signed-By blocks)
		default:
			k, v, ok := strings.Cut(line, ":")
			if ok {
				fields[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
			}
		}
	}
	return out
}
