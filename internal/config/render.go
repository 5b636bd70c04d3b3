package config

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Render writes c as agentkernel.toml text, in upstream's section order,
// with only the keys that are set. header, when not empty, becomes comment
// lines at the top. Parse(Render(c)) gives back c (without Dir).
func Render(c *Config, header string) []byte {
	var b strings.Builder
	if header = strings.TrimSpace(header); header != "" {
		for _, line := range strings.Split(header, "\n") {
			b.WriteString(strings.TrimRight("# "+line, " ") + "\n")
		}
		b.WriteString("\n")
	}
	sec := func(name string, kv ...string) {
		if len(kv) == 0 {
			return
		}
		fmt.Fprintf(&b, "[%s]\n", name)
		for i := 0; i < len(kv); i += 2 {
			fmt.Fprintf(&b, "%s = %s\n", kv[i], kv[i+1])
		}
		b.WriteString("\n")
	}
	var kv []string
	str := func(k, v string) {
		if v != "" {
			kv = append(kv, k, quote(v))
		}
	}
	flush := func(name string) { sec(name, kv...); kv = nil }

	str("name", c.Sandbox.Name)
	str("runtime", c.Sandbox.Runtime)
	str("base_image", c.Sandbox.BaseImage)
	if s := c.Sandbox.InitScript; s != "" {
		kv = append(kv, "init_script", multiline(s))
	}
	flush("sandbox")
	if bd := c.Build; bd != nil {
		str("dockerfile", bd.Dockerfile)
		str("context", bd.Context)
		str("target", bd.Target)
		if bd.NoCache {
			kv = append(kv, "no_cache", "true")
		}
		if len(bd.Args) > 0 {
			kv = append(kv, "args", inlineTable(bd.Args))
		}
		if len(kv) == 0 {
			b.WriteString("[build]\n\n")
		}
		flush("build")
	}
	str("preferred", c.Agent.Preferred)
	str("compatibility_mode", c.Agent.CompatibilityMode)
	flush("agent")
	if v := c.Resources.VCPUs; v != nil {
		kv = append(kv, "vcpus", strconv.FormatInt(*v, 10))
	}
	if v := c.Resources.MemoryMB; v != nil {
		kv = append(kv, "memory_mb", strconv.FormatInt(*v, 10))
	}
	if v := c.Resources.DiskMB; v != nil {
		kv = append(kv, "disk_mb", strconv.FormatInt(*v, 10))
	}
	flush("resources")
	if v := c.Network.VsockCID; v != nil {
		kv = append(kv, "vsock_cid", strconv.FormatInt(*v, 10))
	}
	flush("network")
	s := c.Security
	str("profile", s.Profile)
	for _, f := range []struct {
		k string
		v *bool
	}{{"network", s.Network}, {"mount_cwd", s.MountCwd}, {"mount_home", s.MountHome}, {"pass_env", s.PassEnv}, {"read_only", s.ReadOnly}} {
		if f.v != nil {
			kv = append(kv, f.k, strconv.FormatBool(*f.v))
		}
	}
	str("seccomp", s.Seccomp)
	flush("security")
	for _, r := range []struct {
		name string
		r    Rules
	}{{"security.domains", s.Domains}, {"security.commands", s.Commands}} {
		if r.r.empty() {
			continue
		}
		if len(r.r.Allow) > 0 {
			kv = append(kv, "allow", quoteList(r.r.Allow))
		}
		if len(r.r.Block) > 0 {
			kv = append(kv, "block", quoteList(r.r.Block))
		}
		if r.r.AllowlistOnly {
			kv = append(kv, "allowlist_only", "true")
		}
		flush(r.name)
	}
	for _, f := range c.Files {
		str("source", f.Source)
		str("dest", f.Dest)
		str("mode", f.Mode)
		b.WriteString("[[files]]\n")
		for i := 0; i < len(kv); i += 2 {
			fmt.Fprintf(&b, "%s = %s\n", kv[i], kv[i+1])
		}
		b.WriteString("\n")
		kv = nil
	}
	return []byte(strings.TrimRight(b.String(), "\n") + "\n")
}

// quote writes s as a TOML basic string.
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// multiline writes a script as a TOML multi-line literal string when it
// can be one (no "”'", no control characters but tab and newline), else
// as a basic string.
func multiline(s string) string {
	ok := !strings.Contains(s, "'''") && !strings.HasSuffix(s, "'")
	for _, r := range s {
		if (r < 0x20 && r != '\n' && r != '\t') || r == 0x7f || r == '\r' {
			ok = false
		}
	}
	if !ok {
		return quote(s)
	}
	// A newline right after the opening delimiter is trimmed by TOML.
	return "'''\n" + s + "'''"
}

func quoteList(l []string) string {
	q := make([]string, len(l))
	for i, s := range l {
		q[i] = quote(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

func inlineTable(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = quote(k) + " = " + quote(m[k])
	}
	return "{ " + strings.Join(parts, ", ") + " }"
}
