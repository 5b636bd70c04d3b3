package sandbox

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/agentkernel/agentkernel/internal/backend"
	"github.com/agentkernel/agentkernel/internal/volume"
	"github.com/agentkernel/agentkernel/pkg/api"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// Named volumes (internal/volume) are kept by the daemon and mounted by
// the backends (a loop-mounted ext4 for container and gvisor, a drive for
// microvm). The Manager decides who may mount one at a time:
//
//   - a read-write use (rw, the default) needs the volume alone;
//   - read-only uses go side by side, on any backend;
//   - shared uses (read-write, asked for with :shared) go side by side
//     with each other and with read-only uses, but only on backends that
//     mount the image on the host (container, gvisor), where every use is
//     the same filesystem instance (loopfs.MountShared). Two microVMs
//     writing one ext4 would corrupt it, so a microVM cannot share.
//
// Uses are claimed in volumeClaims when a sandbox starts (before its
// supervisor runs) and released once its backend has cleaned up after it
// (Manager.cleanup), so a stopping sandbox holds its volumes until they
// are unmounted. A restarted daemon claims again for the sandboxes it
// re-adopts.

// hostMounted reports whether a backend mounts a volume's image on the
// host and binds it in (so uses of one image share one filesystem).
func hostMounted(backendName string) bool {
	return backendName == "container" || backendName == "gvisor"
}

// volumeUse is one sandbox's use of one volume.
type volumeUse struct {
	sandbox string
	backend string
	path    string
	ino     uint64 // the image's inode: a volume deleted and made again is another volume
	ro      bool
	shared  bool
}

func (u volumeUse) mode() string {
	switch {
	case u.ro:
		return "ro"
	case u.shared:
		return "shared"
	}
	return "rw"
}

// volumeClaims records which running (or starting, or stopping) sandbox
// uses which volume. Its methods are safe for concurrent use.
type volumeClaims struct {
	mu sync.Mutex
	// by holds the uses of each sandbox, by UUID.
	by map[string]map[string]volumeUse // uuid -> volume name -> use
	// going are the sandboxes being stopped, removed or cleaned up after a
	// crash, whose cleanup will release their uses soon.
	going map[string]bool
	// changed is closed (and replaced) at every release.
	changed chan struct{}
}

// releaseWait bounds how long a start waits for a removed sandbox's
// teardown to release a volume it needs (run after run on one volume).
const releaseWait = 30 * time.Second

// check says whether spec's volumes could be claimed now, claiming
// nothing; uses of sandboxes being removed do not count.
func (c *volumeClaims) check(spec *backend.Spec) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, err := c.uses(spec, spec.ID, false, false)
	return err
}

// acquire claims spec's volumes for sandbox uuid, or refuses with the use
// in the way. When only uses of sandboxes being removed are in the way,
// it waits (up to releaseWait, or ctx) for their release. force skips
// the checks (a re-adopted sandbox already has them mounted).
func (c *volumeClaims) acquire(ctx context.Context, uuid string, spec *backend.Spec, force bool) error {
	ctx, cancel := context.WithTimeout(ctx, releaseWait)
	defer cancel()
	for {
		c.mu.Lock()
		want, err := c.uses(spec, uuid, force, true)
		if err == nil {
			if len(want) > 0 {
				if c.by == nil {
					c.by = map[string]map[string]volumeUse{}
				}
				c.by[uuid] = want
			}
			c.mu.Unlock()
			return nil
		}
		if _, lerr := c.uses(spec, uuid, force, false); lerr != nil {
			c.mu.Unlock()
			return lerr // a use that is not going away
		}
		if c.changed == nil {
			c.changed = make(chan struct{})
		}
		ch := c.changed
		c.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return err
		}
	}
}

// releasing marks sandbox uuid as being removed (see going).
func (c *volumeClaims) releasing(uuid string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.by[uuid]; !ok {
		return
	}
	if c.going == nil {
		c.going = map[string]bool{}
	}
	c.going[uuid] = true
}

// uses returns spec's volume uses, checked against the others' (with or
// without those of sandboxes being removed) unless force. The caller
// holds c.mu.
func (c *volumeClaims) uses(spec *backend.Spec, uuid string, force, withGoing bool) (map[string]volumeUse, error) {
	if len(spec.Volumes) == 0 {
		return nil, nil
	}
	want := map[string]volumeUse{}
	for _, v := range spec.Volumes {
		var st syscall.Stat_t
		if err := syscall.Stat(v.Disk, &st); err != nil {
			return nil, fmt.Errorf("%w: volume %q is gone (it was deleted): create it again, or remove the sandbox", errdefs.ErrFailedPrecondition, v.Name)
		}
		want[v.Name] = volumeUse{sandbox: spec.Name, backend: spec.Backend, path: v.Path, ino: st.Ino, ro: v.ReadOnly, shared: v.Shared}
	}
	if force {
		return want, nil
	}
	for name, w := range want {
		var others []volumeUse
		for id, uses := range c.by {
			if u, ok := uses[name]; ok && id != uuid && u.ino == w.ino && (withGoing || !c.going[id]) {
				others = append(others, u)
			}
		}
		if err := volumeConflict(name, w, others); err != nil {
			return nil, err
		}
	}
	return want, nil
}

// release drops sandbox uuid's claims; idempotent.
func (c *volumeClaims) release(uuid string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.by[uuid]; !ok {
		return
	}
	delete(c.by, uuid)
	delete(c.going, uuid)
	if c.changed != nil {
		close(c.changed)
		c.changed = nil
	}
}

// mounted returns the uses of volume name (of the image with inode ino)
// by sandbox UUID.
func (c *volumeClaims) mounted(name string, ino uint64) map[string]volumeUse {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]volumeUse{}
	for id, uses := range c.by {
		if u, ok := uses[name]; ok && u.ino == ino {
			out[id] = u
		}
	}
	return out
}

// volumeConflict says why want cannot join others, the current uses of
// volume name; nil when it can.
func volumeConflict(name string, want volumeUse, others []volumeUse) error {
	sort.Slice(others, func(i, j int) bool { return others[i].sandbox < others[j].sandbox })
	for _, o := range others {
		if !o.ro && !o.shared {
			return fmt.Errorf("%w: volume %q is mounted read-write by sandbox %q; stop that sandbox first (or mount both with :shared on container or gvisor, or both :ro)",
				errdefs.ErrFailedPrecondition, name, o.sandbox)
		}
	}
	if len(others) == 0 {
		return nil
	}
	o := others[0]
	switch {
	case !want.ro && !want.shared:
		return fmt.Errorf("%w: volume %q is in use by sandbox %q (%s); a read-write use needs it alone: stop that sandbox, mount it :ro, or ask for :shared",
			errdefs.ErrFailedPrecondition, name, o.sandbox, o.mode())
	case want.shared:
		for _, o := range others {
			if !hostMounted(o.backend) {
				return fmt.Errorf("%w: volume %q is mounted by microVM sandbox %q, which cannot see another sandbox's writes; stop it first",
					errdefs.ErrFailedPrecondition, name, o.sandbox)
			}
			if o.ro {
				return fmt.Errorf("%w: volume %q is mounted read-only by sandbox %q; a shared read-write use cannot join a read-only one: stop it, or mount this one :ro",
					errdefs.ErrFailedPrecondition, name, o.sandbox)
			}
		}
	default: // read-only
		for _, o := range others {
			if o.shared && !hostMounted(want.backend) {
				return fmt.Errorf("%w: volume %q is written by sandbox %q (shared); a microVM cannot mount a volume that others write: stop it first",
					errdefs.ErrFailedPrecondition, name, o.sandbox)
			}
		}
	}
	return nil
}

// resolveVolumes turns the create request's volumes ("NAME:/path[:ro|
// :shared]") into the spec's, checking that each exists and that no two
// mounts (volumes or dirs) share a path.
func (m *Manager) resolveVolumes(specs []string, backendName string, dirs []backend.Mount) ([]backend.VolumeMount, error) {
	if len(specs) == 0 {
		return nil, nil
	}
	if m.cfg.Volumes == nil {
		return nil, fmt.Errorf("%w: this server keeps no named volumes", errdefs.ErrNotImplemented)
	}
	if len(specs) > backend.MaxMounts {
		return nil, fmt.Errorf("%w: %d volumes (at most %d)", errdefs.ErrInvalidArgument, len(specs), backend.MaxMounts)
	}
	paths := map[string]bool{}
	for _, d := range dirs {
		paths[d.Path] = true
	}
	names := map[string]bool{}
	var out []backend.VolumeMount
	for _, s := range specs {
		v, err := volume.ParseMount(s)
		if err != nil {
			return nil, err
		}
		if names[v.Name] {
			return nil, fmt.Errorf("%w: volume %q is named twice; mount a volume once per sandbox", errdefs.ErrInvalidArgument, v.Name)
		}
		if paths[v.Path] {
			return nil, fmt.Errorf("%w: two mounts at %q", errdefs.ErrInvalidArgument, v.Path)
		}
		names[v.Name], paths[v.Path] = true, true
		if v.Shared && !hostMounted(backendName) {
			return nil, fmt.Errorf("%w: volume %q: the %s backend cannot share a volume read-write (each microVM has its own kernel); use :ro, or the container or gvisor backend",
				errdefs.ErrInvalidArgument, v.Name, backendName)
		}
		info, err := m.cfg.Volumes.Get(v.Name)
		if err != nil {
			return nil, err
		}
		if err := guestWrittenRefusal(info, backendName); err != nil {
			return nil, err
		}
		out = append(out, backend.VolumeMount{Name: v.Name, Disk: info.Disk, Path: v.Path, ReadOnly: v.ReadOnly, Shared: v.Shared})
	}
	return out, nil
}

// volumeSpec writes a volume mount back as `-v` takes it.
func volumeSpec(v backend.VolumeMount) string {
	s := v.Name + ":" + v.Path
	switch {
	case v.ReadOnly:
		s += ":ro"
	case v.Shared:
		s += ":shared"
	}
	return s
}

// guestWrittenRefusal refuses a host-mounting backend a volume that a
// microVM has written (see volume.Store.SetGuestWritten).
func guestWrittenRefusal(info volume.Info, backendName string) error {
	if info.GuestWritten && hostMounted(backendName) {
		return fmt.Errorf("%w: volume %q was written by a microVM, whose kernel wrote its disk directly; the host kernel does not mount such a disk, so only microvm sandboxes may use it",
			errdefs.ErrPermissionDenied, info.Name)
	}
	return nil
}

// claimVolumes claims the volumes of the sandbox whose state is in dir
// before it starts, refusing a host mount of a volume a microVM wrote,
// and records a microVM's read-write use as such.
func (m *Manager) claimVolumes(ctx context.Context, uuid string, force bool) error {
	spec, err := backend.ReadSpec(m.stateDir(uuid))
	if err != nil || len(spec.Volumes) == 0 {
		return nil // no spec: the start fails on its own, saying why
	}
	if m.cfg.Volumes != nil && !force {
		for _, v := range spec.Volumes {
			info, err := m.cfg.Volumes.Get(v.Name)
			if err != nil {
				return fmt.Errorf("%w: volume %q is gone (it was deleted): create it again, or remove the sandbox", errdefs.ErrFailedPrecondition, v.Name)
			}
			if err := guestWrittenRefusal(info, spec.Backend); err != nil {
				return err
			}
		}
	}
	if err := m.vols.acquire(ctx, uuid, spec, force); err != nil {
		return err
	}
	if m.cfg.Volumes != nil && !hostMounted(spec.Backend) {
		for _, v := range spec.Volumes {
			if v.ReadOnly {
				continue
			}
			if err := m.cfg.Volumes.SetGuestWritten(v.Name); err != nil {
				m.vols.release(uuid)
				return fmt.Errorf("volume %q: %w", v.Name, err)
			}
		}
	}
	return nil
}

// volumeStore returns the store, or the error of a server without one.
func (m *Manager) volumeStore() (*volume.Store, error) {
	if m.cfg.Volumes == nil {
		return nil, fmt.Errorf("%w: this server keeps no named volumes", errdefs.ErrNotImplemented)
	}
	return m.cfg.Volumes, nil
}

// CreateVolume makes a named volume.
func (m *Manager) CreateVolume(ctx context.Context, req api.CreateVolumeRequest) (api.VolumeInfo, error) {
	vs, err := m.volumeStore()
	if err != nil {
		return api.VolumeInfo{}, err
	}
	var size int64
	if req.Size != "" {
		if size, err = volume.ParseSize(req.Size); err != nil {
			return api.VolumeInfo{}, err
		}
	}
	info, err := vs.Create(ctx, req.Name, size)
	if err != nil {
		return api.VolumeInfo{}, err
	}
	m.log.Info("volume created", "volume", info.Name, "size_bytes", info.SizeBytes)
	return m.volumeInfo(ctx, info)
}

// ListVolumes describes every volume.
func (m *Manager) ListVolumes(ctx context.Context) ([]api.VolumeInfo, error) {
	vs, err := m.volumeStore()
	if err != nil {
		return nil, err
	}
	infos, err := vs.List()
	if err != nil {
		return nil, err
	}
	out := []api.VolumeInfo{}
	for _, info := range infos {
		vi, err := m.volumeInfo(ctx, info)
		if err != nil {
			return nil, err
		}
		out = append(out, vi)
	}
	return out, nil
}

// GetVolume describes volume name.
func (m *Manager) GetVolume(ctx context.Context, name string) (api.VolumeInfo, error) {
	vs, err := m.volumeStore()
	if err != nil {
		return api.VolumeInfo{}, err
	}
	info, err := vs.Get(name)
	if err != nil {
		return api.VolumeInfo{}, err
	}
	return m.volumeInfo(ctx, info)
}

// DeleteVolume deletes volume name and its data. While a sandbox (running
// or not) names it, it is refused unless force. With force the volume's
// name and files go at once: a running sandbox that has it mounted keeps
// its open image (unlinked, so nothing it writes is corrupted or lost to
// it) until it stops, when the space is freed; a sandbox that names it
// fails to start again, saying the volume is gone.
func (m *Manager) DeleteVolume(ctx context.Context, name string, force bool) (api.DeleteVolumeResponse, error) {
	vs, err := m.volumeStore()
	if err != nil {
		return api.DeleteVolumeResponse{}, err
	}
	info, err := vs.Get(name)
	if err != nil {
		return api.DeleteVolumeResponse{}, err
	}
	vi, err := m.volumeInfo(ctx, info)
	if err != nil {
		return api.DeleteVolumeResponse{}, err
	}
	var users, mounted []string
	for _, u := range vi.UsedBy {
		users = append(users, u.Sandbox)
		if u.Mounted {
			mounted = append(mounted, u.Sandbox)
		}
	}
	if len(users) > 0 && !force {
		return api.DeleteVolumeResponse{}, fmt.Errorf("%w: volume %q is used by sandbox(es) %s; remove them first, or delete with --force (running ones keep their copy until they stop; stopped ones will not start)",
			errdefs.ErrFailedPrecondition, name, strings.Join(users, ", "))
	}
	if err := vs.Delete(name); err != nil {
		return api.DeleteVolumeResponse{}, err
	}
	m.log.Info("volume deleted", "volume", name, "force", force, "still_mounted_by", mounted)
	return api.DeleteVolumeResponse{Name: name, Detached: mounted}, nil
}

// volumeInfo adds usage to a volume's description: the sandboxes whose
// spec names it, and whether each has it mounted now.
func (m *Manager) volumeInfo(ctx context.Context, info volume.Info) (api.VolumeInfo, error) {
	out := api.VolumeInfo{Name: info.Name, SizeBytes: info.SizeBytes, CreatedAt: info.CreatedAt, GuestWritten: info.GuestWritten}
	var st syscall.Stat_t
	if err := syscall.Stat(info.Disk, &st); err == nil {
		out.UsedBytes = st.Blocks * 512
	}
	mounted := m.vols.mounted(info.Name, st.Ino)
	recs, err := m.cfg.Store.ListSandboxes(ctx)
	if err != nil {
		return out, err
	}
	for _, rec := range recs {
		var spec backend.Spec
		if len(rec.Spec) == 0 || json.Unmarshal(rec.Spec, &spec) != nil {
			continue
		}
		for _, v := range spec.Volumes {
			if v.Name != info.Name {
				continue
			}
			u, isMounted := mounted[rec.UUID]
			if !isMounted {
				u = volumeUse{ro: v.ReadOnly, shared: v.Shared}
			}
			out.UsedBy = append(out.UsedBy, api.VolumeUsage{Sandbox: rec.Name, Path: v.Path, Mode: u.mode(), Mounted: isMounted})
		}
	}
	out.Mounts = len(out.UsedBy)
	return out, nil
}
