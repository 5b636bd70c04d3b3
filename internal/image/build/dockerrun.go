package build

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/agentkernel/agentkernel/internal/image"
	"github.com/agentkernel/agentkernel/internal/image/dockerfile"
	"github.com/agentkernel/agentkernel/internal/sandbox"
	"github.com/agentkernel/agentkernel/pkg/api"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// runStep runs one RUN, COPY or ADD in a fresh sandbox made from the
// current layers and returns its changes as a layer.
func (d *dockerBuild) runStep(ctx context.Context, in dockerfile.Instruction, plan *copyPlan) (image.NewLayer, func(), error) {
	id := randomHex(8)
	tmpName := "agentkernel-build/" + id + ":step"
	if _, err := d.b.images.Compose(tmpName, d.from, d.layers, &d.cfg, "build step", false); err != nil {
		return image.NewLayer{}, nil, err
	}
	defer d.b.images.Drop(tmpName)
	sbName := "build-" + id
	start := true
	d.steps++
	if _, err := d.b.sbx.CreateSandbox(ctx, api.CreateSandboxRequest{Name: sbName, Image: tmpName, Start: &start,
		Labels: map[string]string{"agentkernel.build": d.req.Name}, Network: d.net}); err != nil {
		return image.NewLayer{}, nil, fmt.Errorf("starting a build sandbox: %w", err)
	}
	defer d.b.sbx.RemoveSandbox(context.WithoutCancel(ctx), sbName)
	if wd := d.cfg.WorkingDir; wd != "" && wd != "/" {
		if err := d.b.sbx.Mkdir(ctx, sbName, wd); err != nil {
			return image.NewLayer{}, nil, fmt.Errorf("making WORKDIR %s: %w", wd, err)
		}
	}
	if plan != nil {
		f, err := os.Open(plan.Tar)
		if err != nil {
			return image.NewLayer{}, nil, err
		}
		err = d.b.sbx.TarIn(ctx, sbName, plan.Dir, f)
		f.Close()
		if err != nil {
			return image.NewLayer{}, nil, fmt.Errorf("copying into %s: %w", plan.Dir, err)
		}
	} else if err := d.run(ctx, sbName, in); err != nil {
		return image.NewLayer{}, nil, err
	}
	if _, err := d.b.sbx.StopSandbox(ctx, sbName); err != nil {
		return image.NewLayer{}, nil, fmt.Errorf("stopping the build sandbox: %w", err)
	}
	ch, _, err := d.b.sbx.SandboxChanges(ctx, sbName)
	upper := ch.UpperDir
	if err != nil {
		return image.NewLayer{}, nil, err
	}
	return d.b.images.DiffLayer(ctx, upper, []string{agentDir})
}

// run executes a RUN in the sandbox, streaming its output as progress.
func (d *dockerBuild) run(ctx context.Context, sb string, in dockerfile.Instruction) error {
	argv := in.Args
	if !in.JSON {
		argv = []string{"/bin/sh", "-c", in.Rest}
	}
	env := slices.Clone(d.cfg.Env)
	for k, v := range d.args {
		if _, ok := d.lookupEnv(k); !ok {
			env = append(env, k+"="+v)
		}
	}
	if _, ok := d.lookupEnv("PATH"); !ok {
		env = append(env, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	}
	p, err := d.b.sbx.Exec(ctx, sb, sandbox.ExecOptions{Argv: argv, Env: env, Workdir: d.cfg.WorkingDir, User: d.cfg.User})
	if err != nil {
		return fmt.Errorf("starting the command: %w", err)
	}
	defer p.Close()
	p.Stdin().Close()
	done := make(chan struct{}, 2)
	lines := make(chan string, 64)
	for _, r := range []io.Reader{p.Stdout(), p.Stderr()} {
		go func() {
			defer func() { done <- struct{}{} }()
			sc := bufio.NewScanner(r)
			sc.Buffer(make([]byte, 64<<10), 1<<20)
			for sc.Scan() {
				line := sc.Text()
				if len(line) > maxRunOutputLine {
					line = line[:maxRunOutputLine]
				}
				lines <- line
			}
			io.Copy(io.Discard, r)
		}()
	}
	go func() { <-done; <-done; close(lines) }()
	for line := range lines {
		d.progress(api.BuildProgress{Stage: api.BuildStageOutput, Message: line})
	}
	st, err := p.Wait()
	if err != nil {
		return err
	}
	if st.Code != 0 || st.Signal != 0 {
		msg := fmt.Sprintf("the command failed with exit code %d", st.Code)
		if st.Signal != 0 {
			msg = fmt.Sprintf("the command was killed by signal %d", st.Signal)
		}
		if st.Error != "" {
			msg += ": " + st.Error
		}
		return fmt.Errorf("%w: %s", errdefs.ErrFailedPrecondition, msg)
	}
	return nil
}

func (d *dockerBuild) lookupEnv(k string) (string, bool) {
	for _, e := range d.cfg.Env {
		if kk, v, ok := strings.Cut(e, "="); ok && kk == k {
			return v, true
		}
	}
	return "", false
}
