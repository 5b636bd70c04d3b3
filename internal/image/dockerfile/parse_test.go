package dockerfile

import (
	"errors"
	"strings"
	"testing"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

func TestParse(t *testing.T) {
	src := "# syntax=docker/dockerfile:1\nARG BASE=tiny\nFROM ${BASE} AS build\n" +
		"# a comment\nENV A=1 B=\"two words\"\nRUN echo hi \\\n  # inside\n  && echo there\n" +
		"COPY --chown=1000:1000 a b /dst/\nCMD [\"/bin/sh\", \"-c\", \"echo\"]\nENTRYPOINT echo x\n" +
		"workdir /app\nLABEL k=v\nEXPOSE 80/tcp 443\nUSER 1000\n"
	ins, err := Parse([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	var cmds []string
	for _, in := range ins {
		cmds = append(cmds, in.Cmd)
	}
	if got := strings.Join(cmds, " "); got != "ARG FROM ENV RUN COPY CMD ENTRYPOINT WORKDIR LABEL EXPOSE USER" {
		t.Fatalf("cmds %s", got)
	}
	if ins[1].Args[0] != "${BASE}" || ins[1].Line != 3 {
		t.Errorf("FROM %+v", ins[1])
	}
	if ins[3].Rest != "echo hi && echo there" || ins[3].Line != 6 {
		t.Errorf("RUN %q line %d", ins[3].Rest, ins[3].Line)
	}
	if c := ins[4]; c.Flags["chown"] != "1000:1000" || strings.Join(c.Args, ",") != "a,b,/dst/" {
		t.Errorf("COPY %+v", c)
	}
	if c := ins[5]; !c.JSON || len(c.Args) != 3 {
		t.Errorf("CMD %+v", c)
	}
	if c := ins[2]; strings.Join(c.Args, "|") != "A=1|B=two words" {
		t.Errorf("ENV %q", c.Args)
	}
}

func TestParseRefuses(t *testing.T) {
	for _, c := range []struct {
		src, want string
		class     error
	}{
		{"FROM a\nHEALTHCHECK CMD true\n", "HEALTHCHECK", errdefs.ErrNotImplemented},
		{"FROM a\nVOLUME /x\n", "VOLUME", errdefs.ErrNotImplemented},
		{"FROM a\nFROM b\n", "multi-stage", errdefs.ErrNotImplemented},
		{"FROM a\nRUN --mount=type=cache,target=/x true\n", "--mount", errdefs.ErrNotImplemented},
		{"FROM a\nCOPY --from=x /a /b\n", "--from", errdefs.ErrNotImplemented},
		{"FROM a\nRUN <<EOF\necho\nEOF\n", "heredoc", errdefs.ErrNotImplemented},
		{"RUN true\n", "before FROM", errdefs.ErrInvalidArgument},
		{"FROM a\nFOO bar\n", "unknown instruction", errdefs.ErrInvalidArgument},
		{"FROM a\nCOPY x\n", "source and a destination", errdefs.ErrInvalidArgument},
		{"ARG x\n", "no FROM", errdefs.ErrInvalidArgument},
		{"# escape=`\nFROM a\n", "escape", errdefs.ErrNotImplemented},
		{"FROM a\nENV A=\"x\n", "quote", errdefs.ErrInvalidArgument},
	} {
		_, err := Parse([]byte(c.src))
		if !errors.Is(err, c.class) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: err = %v, want %v naming %q", c.src, err, c.class, c.want)
		}
	}
}

func TestExpand(t *testing.T) {
	env := map[string]string{"A": "1", "EMPTY": "", "P": "/usr"}
	look := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	for in, want := range map[string]string{
		"$A":           "1",
		"${A}x":        "1x",
		"$P/bin:$NOPE": "/usr/bin:",
		"${EMPTY:-d}":  "d",
		"${A:+set}":    "set",
		"${NOPE:+set}": "",
		"'$A'":         "'$A'",
		`\$A`:          `\$A`,
		`"$A"`:         `"1"`,
		"cost $":       "cost $",
		"$1":           "$1",
	} {
		got, err := Expand(in, look)
		if err != nil || got != want {
			t.Errorf("Expand(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := Expand("${A", look); err == nil {
		t.Error("unterminated ${ accepted")
	}
	if _, err := Expand("${A/x/y}", look); err == nil {
		t.Error("unsupported substitution accepted")
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("FROM a\nRUN echo \\\n hi\nCOPY [\"a\", \"b\"]\nENV A=${B:-c}\n"))
	f.Add([]byte("# escape=\\\nARG X\nFROM $X AS y\nLABEL \"a b\"='c d'\n"))
	f.Add([]byte("FROM a\nRUN <<EOF\nEOF\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ins, err := Parse(b)
		if err != nil {
			return
		}
		for _, in := range ins {
			if in.Cmd == "" || in.Rest == "" || !supported[in.Cmd] {
				t.Fatalf("bad instruction %+v", in)
			}
			if _, err := Expand(in.Rest, func(string) (string, bool) { return "v", true }); err != nil {
				continue
			}
		}
	})
}
