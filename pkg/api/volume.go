package api

import (
	"fmt"
	"regexp"
	"time"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// VolumeInfo describes a named volume: a persistent, size-limited
// filesystem that outlives the sandboxes it is mounted in
// (GET /volumes, GET /volumes/{name}).
type VolumeInfo struct {
	Name string `json:"name"`
	// SizeBytes is the volume's limit; UsedBytes what its image takes on
	// the host's disk (its data and the filesystem's own blocks).
	SizeBytes int64     `json:"size_bytes"`
	UsedBytes int64     `json:"used_bytes"`
	CreatedAt time.Time `json:"created_at"`
	// GuestWritten says a microVM has had the volume read-write; from
	// then on only microVMs may mount it (the host kernel never parses a
	// disk a guest kernel wrote).
	GuestWritten bool `json:"guest_written,omitempty"`
	// Mounts counts the sandboxes (running or not) whose spec names the
	// volume, as upstream's MOUNTS column; UsedBy lists them.
	Mounts int           `json:"mounts"`
	UsedBy []VolumeUsage `json:"used_by,omitempty"`
}

// VolumeUsage is one sandbox's use of a volume.
type VolumeUsage struct {
	Sandbox string `json:"sandbox"`
	Path    string `json:"path"`
	// Mode is "rw", "ro" or "shared".
	Mode string `json:"mode"`
	// Mounted says the sandbox runs with the volume mounted now.
	Mounted bool `json:"mounted"`
}

// CreateVolumeRequest is the body of POST /volumes.
type CreateVolumeRequest struct {
	Name string `json:"name"`
	// Size is written as upstream's --size: 512MB, 2GB (powers of 1024);
	// empty takes 1GB. The image is sparse: only what is written costs
	// disk.
	Size string `json:"size,omitempty"`
}

// DeleteVolumeResponse answers DELETE /volumes/{name}.
type DeleteVolumeResponse struct {
	Name string `json:"name"`
	// Detached lists the running sandboxes that still had the volume
	// mounted when force deleted it: they keep using its (now nameless)
	// data until they stop, when the space is freed.
	Detached []string `json:"detached,omitempty"`
}

// volumeNameRE is upstream's volume slug: letters, digits, '-' and '_',
// starting with a letter or digit, at most 63: never a path, never hidden.
var volumeNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$`)

// ValidateVolumeName checks a volume name; the error wraps
// errdefs.ErrInvalidArgument.
func ValidateVolumeName(name string) error {
	if !volumeNameRE.MatchString(name) {
		return fmt.Errorf("%w: volume name %.80q must be 1-63 letters, digits, '-' or '_', starting with a letter or digit", errdefs.ErrInvalidArgument, name)
	}
	return nil
}
