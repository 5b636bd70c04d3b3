package build

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/agentkernel/agentkernel/internal/backend"
	"github.com/agentkernel/agentkernel/pkg/api"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// A memory snapshot is a filesystem snapshot (the image, as for any
// snapshot) plus the backend's checkpoint of the sandbox's memory and
// processes, taken while the sandbox was paused so that both show the
// same moment. The checkpoint is a directory of files under
// <home>/snapshots/memory named by its digest: the sha256 of a manifest
// listing each file's name, size and sha256. The image's labels record
// that digest and the resources the sandbox ran with (a restore must
// match them); a restore recomputes the digest first, so a checkpoint
// that was changed or cut short is refused before anything is created.
//
// No secret is in a checkpoint: secret values live in the daemon's vault
// and the sandbox's gateway (a supervisor process), never in the sandbox,
// whose memory is all a checkpoint holds.
const (
	labelSnapshotMemory  = "dev.agentkernel.snapshot.memory"
	labelSnapshotMemMB   = "dev.agentkernel.snapshot.memory_mb"
	labelSnapshotVCPUs   = "dev.agentkernel.snapshot.vcpus"
	labelSnapshotDiskMB  = "dev.agentkernel.snapshot.disk_mb"
	labelSnapshotProfile = "dev.agentkernel.snapshot.profile"
	// labelSnapshotSecrets lists the sandbox's secret bindings as
	// KEY:HOST:HEADER, comma-separated: names of vault entries, which a
	// restored sandbox binds again (the values stay in the vault).
	labelSnapshotSecrets = "dev.agentkernel.snapshot.secrets"
	memoryDirName        = "snapshots/memory"
)

// MemorySandboxes is what memory snapshots need of the sandbox manager
// beyond Sandboxes; internal/sandbox.Manager implements it. Without it
// memory snapshots are refused.
type MemorySandboxes interface {
	SupportsMemorySnapshots(backend string) error
	CheckpointSandbox(ctx context.Context, name, dir string) (api.SandboxInfo, error)
	ResumeSandbox(ctx context.Context, name string) (api.SandboxInfo, error)
	RestoreSandbox(ctx context.Context, req api.CreateSandboxRequest, dir string) (api.SandboxInfo, error)
}

func (b *Builder) memSandboxes(backendName string) (MemorySandboxes, error) {
	m, ok := b.sbx.(MemorySandboxes)
	if !ok {
		return nil, fmt.Errorf("%w: memory snapshots are not supported by backend %s here", errdefs.ErrNotImplemented, backendName)
	}
	if err := m.SupportsMemorySnapshots(backendName); err != nil {
		return nil, err
	}
	return m, nil
}

func (b *Builder) memoryRoot() string { return filepath.Join(b.home, memoryDirName) }

// memoryDir is where the checkpoint of digest lives.
func (b *Builder) memoryDir(digest string) (string, error) {
	hexd, ok := strings.CutPrefix(digest, "sha256:")
	if _, err := hex.DecodeString(hexd); !ok || err != nil || len(hexd) != 64 {
		return "", fmt.Errorf("%w: bad checkpoint digest %q", errdefs.ErrFailedPrecondition, digest)
	}
	return filepath.Join(b.memoryRoot(), hexd), nil
}

// checkpoint pauses sandbox name and writes its checkpoint into a fresh
// directory; the caller captures the files and then calls resume, which
// lets the sandbox go on. On error the sandbox has been resumed.
func (b *Builder) checkpoint(ctx context.Context, m MemorySandboxes, name string) (tmp string, resume func() error, err error) {
	if err := os.MkdirAll(b.memoryRoot(), 0o700); err != nil {
		return "", nil, err
	}
	var rnd [8]byte
	rand.Read(rnd[:])
	tmp = filepath.Join(b.memoryRoot(), "tmp-"+hex.EncodeToString(rnd[:]))
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return "", nil, err
	}
	if _, err := m.CheckpointSandbox(ctx, name, tmp); err != nil {
		os.RemoveAll(tmp)
		return "", nil, err
	}
	resume = func() error {
		_, err := m.ResumeSandbox(context.WithoutCancel(ctx), name)
		return err
	}
	return tmp, resume, nil
}

// sealCheckpoint moves the checkpoint in tmp to its digest's directory
// and returns the digest.
func (b *Builder) sealCheckpoint(tmp string) (string, int64, error) {
	digest, size, err := checkpointDigest(tmp)
	if err != nil {
		return "", 0, err
	}
	dir, err := b.memoryDir(digest)
	if err != nil {
		return "", 0, err
	}
	if _, err := os.Stat(dir); err == nil {
		// The same bytes again (unlikely): keep one copy.
		return digest, size, os.RemoveAll(tmp)
	}
	return digest, size, os.Rename(tmp, dir)
}

// checkpointDigest is the digest of the files in dir (see above) and
// their total size. Only regular files are allowed.
func checkpointDigest(dir string) (string, int64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return "", 0, err
	}
	sort.Slice(ents, func(i, j int) bool { return ents[i].Name() < ents[j].Name() })
	manifest := sha256.New()
	var total int64
	for _, e := range ents {
		if !e.Type().IsRegular() {
			return "", 0, fmt.Errorf("%w: checkpoint %s: %s is not a regular file", errdefs.ErrFailedPrecondition, dir, e.Name())
		}
		f, err := os.Open(filepath.Join(dir, e.Name()))
		if err != nil {
			return "", 0, err
		}
		h := sha256.New()
		n, err := io.Copy(h, f)
		f.Close()
		if err != nil {
			return "", 0, err
		}
		total += n
		fmt.Fprintf(manifest, "%s %d %x\n", e.Name(), n, h.Sum(nil))
	}
	if len(ents) == 0 {
		return "", 0, fmt.Errorf("%w: checkpoint %s is empty", errdefs.ErrFailedPrecondition, dir)
	}
	return fmt.Sprintf("sha256:%x", manifest.Sum(nil)), total, nil
}

// memoryLabels records a memory snapshot in the snapshot image's labels.
func memoryLabels(labels map[string]string, digest string, spec *backend.Spec) {
	labels[labelSnapshotMemory] = digest
	labels[labelSnapshotMemMB] = strconv.Itoa(spec.Resources.MemoryMB)
	labels[labelSnapshotVCPUs] = strconv.Itoa(spec.Resources.VCPUs)
	labels[labelSnapshotDiskMB] = strconv.Itoa(spec.Resources.DiskMB)
	labels[labelSnapshotProfile] = spec.Security.Profile
	if spec.Gateway != nil && len(spec.Gateway.Secrets) > 0 {
		var refs []string
		for _, r := range spec.Gateway.Secrets {
			refs = append(refs, r.Name+":"+r.Host+":"+r.Header)
		}
		labels[labelSnapshotSecrets] = strings.Join(refs, ",")
	}
}

// memorySnapshotable refuses a sandbox whose restore could not be given
// the same secret bindings: one with a secret value given inline (kept
// for that sandbox only, not in the vault).
func memorySnapshotable(spec *backend.Spec) error {
	if spec.Gateway == nil {
		return nil
	}
	for _, r := range spec.Gateway.Secrets {
		if r.VaultName != r.Name {
			return fmt.Errorf("%w: sandbox %s has secret %s given inline, which a restored sandbox cannot be bound to again; "+
				"store it in the vault (agentkernel secret set) to take memory snapshots", errdefs.ErrFailedPrecondition, spec.Name, r.Name)
		}
	}
	return nil
}

// restoreMemory creates sandbox req.As continuing memory snapshot snap.
func (b *Builder) restoreMemory(ctx context.Context, snap api.SnapshotInfo, labels map[string]string, req api.RestoreSnapshotRequest) (api.SandboxInfo, error) {
	if req.Backend != snap.SourceBackend {
		return api.SandboxInfo{}, fmt.Errorf("%w: snapshot %q is a memory snapshot of backend %s; it restores on %s only "+
			"(without its processes, take a filesystem snapshot)", errdefs.ErrInvalidArgument, snap.Name, snap.SourceBackend, snap.SourceBackend)
	}
	m, err := b.memSandboxes(req.Backend)
	if err != nil {
		return api.SandboxInfo{}, err
	}
	dir, err := b.memoryDir(labels[labelSnapshotMemory])
	if err != nil {
		return api.SandboxInfo{}, err
	}
	got, _, err := checkpointDigest(dir)
	if err != nil {
		return api.SandboxInfo{}, fmt.Errorf("%w: snapshot %q: its memory checkpoint cannot be read: %v; nothing was created",
			errdefs.ErrFailedPrecondition, snap.Name, err)
	}
	if got != labels[labelSnapshotMemory] {
		return api.SandboxInfo{}, fmt.Errorf("%w: snapshot %q is corrupt: its memory checkpoint has digest %s, not the recorded %s; nothing was created",
			errdefs.ErrFailedPrecondition, snap.Name, got, labels[labelSnapshotMemory])
	}
	num := func(k string) int { n, _ := strconv.Atoi(labels[k]); return n }
	create := api.CreateSandboxRequest{Name: req.As, Image: snap.Image, Backend: req.Backend,
		MemoryMB: num(labelSnapshotMemMB), VCPUs: num(labelSnapshotVCPUs), DiskMB: num(labelSnapshotDiskMB),
		Profile: labels[labelSnapshotProfile], TTL: req.TTL, Labels: map[string]string{"agentkernel.snapshot": snap.Name}}
	if sec := labels[labelSnapshotSecrets]; sec != "" {
		create.Secrets = strings.Split(sec, ",")
	}
	if _, err := b.sbx.GetSandbox(ctx, req.As); err == nil {
		return api.SandboxInfo{}, fmt.Errorf("%w: sandbox %q already exists", errdefs.ErrAlreadyExists, req.As)
	}
	sb, err := m.RestoreSandbox(ctx, create, dir)
	if err != nil {
		// A restore that failed leaves no sandbox behind.
		if rerr := b.sbx.RemoveSandbox(context.WithoutCancel(ctx), req.As); rerr != nil && !errors.Is(rerr, errdefs.ErrNotFound) {
			b.log.Warn("removing the sandbox of a failed restore", "sandbox", req.As, "err", rerr)
		}
		return api.SandboxInfo{}, fmt.Errorf("restoring memory snapshot %q: %w", snap.Name, err)
	}
	return sb, nil
}
