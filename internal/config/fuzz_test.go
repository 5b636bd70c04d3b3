package config

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// FuzzParse: any input parses or fails with a classified error, never
// panics; what parses renders to text that parses back to the same config.
func FuzzParse(f *testing.F) {
	f.Add([]byte(full))
	f.Add([]byte("[sandbox]\nname = \"x\"\nbogus = 1\n"))
	f.Add([]byte("[ports]\n80 = 8080\n[security.domains]\nallow = [\"a\"]\n"))
	f.Add([]byte("[[files]]\nsource = \"a\"\ndest = \"/b\"\nmode = \"0o755\"\n"))
	f.Add([]byte("[sandbox]\ninit_script = '''\necho \"hi\"\n'''\n"))
	f.Add([]byte("[resources]\nvcpus = 1e3\n"))
	for _, tpl := range Builtins() {
		f.Add(Render(tpl.Config, tpl.Description))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			if !errors.Is(err, errdefs.ErrInvalidArgument) && !errors.Is(err, errdefs.ErrNotImplemented) && !errors.Is(err, errdefs.ErrTooLarge) {
				t.Fatalf("unclassified error: %v", err)
			}
			return
		}
		text := Render(c, "")
		back, err := Parse(text)
		if err != nil {
			t.Fatalf("rendered config does not parse:\n%s\n%v", text, err)
		}
		normalize(c)
		normalize(back)
		if !reflect.DeepEqual(back, c) {
			t.Fatalf("round trip changed the config:\n%s\n got %+v\nwant %+v", text, back, c)
		}
		_ = c.Request()
		_ = c.NeedsRunning()
	})
}

// normalize makes empty and nil the same where TOML cannot tell them
// apart once rendered.
func normalize(c *Config) {
	if len(c.Ports) == 0 {
		c.Ports = nil
	}
	for _, r := range []*Rules{&c.Security.Domains, &c.Security.Commands} {
		if len(r.Allow) == 0 {
			r.Allow = nil
		}
		if len(r.Block) == 0 {
			r.Block = nil
		}
	}
	if len(c.Files) == 0 {
		c.Files = nil
	}
	c.Sandbox.InitScript = strings.Clone(c.Sandbox.InitScript)
}
