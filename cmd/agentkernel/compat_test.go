package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/agentkernel/agentkernel/internal/cli"
	"github.com/agentkernel/agentkernel/internal/compatdoc"
)

func compatRows(t *testing.T, kinds ...string) []compatdoc.Row {
	t.Helper()
	rows, err := compatdoc.Accepted(kinds...)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// rootCmd builds the command tree as main does.
func rootCmd() *cobra.Command {
	root := cli.NewRootCmd(cli.NewApp())
	root.AddCommand(daemonCommands()...)
	return root
}

// findCmd resolves a command path (aliases count); "" is the root.
func findCmd(root *cobra.Command, path string) (*cobra.Command, bool) {
	args := strings.Fields(path)
	c, rest, err := root.Find(args)
	if err != nil || len(rest) > 0 || (len(args) > 0 && c == root) {
		return nil, false
	}
	return c, true
}

// lookupFlag finds a flag as the command sees it once parsed: its own,
// then those inherited from its parents, then the help flag cobra adds.
func lookupFlag(c *cobra.Command, name string) *pflag.Flag {
	c.InitDefaultHelpFlag()
	c.InitDefaultVersionFlag()
	if f := c.Flags().Lookup(name); f != nil {
		return f
	}
	return c.InheritedFlags().Lookup(name)
}

// TestCompatCLI walks the real command tree for every command and flag that
// docs/COMPAT.md says upstream's users may type.
func TestCompatCLI(t *testing.T) {
	if clientOnly {
		t.Skip("docs/COMPAT.md describes the Linux binary; this one is a client only")
	}
	root := rootCmd()
	for _, r := range compatRows(t, compatdoc.KindCommand, compatdoc.KindBool, compatdoc.KindValue) {
		if r.Kind == compatdoc.KindCommand {
			if _, ok := findCmd(root, r.Key); !ok {
				t.Errorf("%s: no such command", r)
			}
			continue
		}
		spec, err := r.Flag()
		if err != nil {
			t.Error(err)
			continue
		}
		c, ok := findCmd(root, spec.Command)
		if !ok {
			t.Errorf("%s: no command %q", r, spec.Command)
			continue
		}
		f := lookupFlag(c, spec.Long)
		if f == nil {
			t.Errorf("%s: %q has no --%s", r, c.CommandPath(), spec.Long)
			continue
		}
		if f.Shorthand != spec.Short {
			t.Errorf("%s: --%s's short letter is %q, upstream's %q", r, spec.Long, f.Shorthand, spec.Short)
		}
		isBool := f.Value.Type() == "bool"
		if want := r.Kind == compatdoc.KindBool; isBool != want {
			t.Errorf("%s: --%s is a %s flag, upstream's a %s one", r, spec.Long, f.Value.Type(), r.Kind)
		}
	}
}

// TestCompatEnv checks that each environment variable docs/COMPAT.md says
// we read is read by some non-test Go file of the module.
func TestCompatEnv(t *testing.T) {
	var src strings.Builder
	err := filepath.WalkDir("../..", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && strings.HasPrefix(d.Name(), ".") && p != "../.." {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(p)
		src.Write(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range compatRows(t, compatdoc.KindEnv) {
		if !strings.Contains(src.String(), `"`+r.Key+`"`) {
			t.Errorf("%s: no Go file reads it", r)
		}
	}
}
