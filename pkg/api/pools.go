package api

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// PoolKey names a warm pool by what must be decided before a sandbox
// starts: backend, image, profile and resources. Empty fields take the
// daemon's defaults when a pool is set; GET /pools shows them resolved.
// A create request matches a pool when its own resolved values are the
// same and it asks for nothing that must be bound at start (host
// directories, published ports, start=false, network profile none).
type PoolKey struct {
	Backend  string `json:"backend,omitempty"`
	Image    string `json:"image,omitempty"`
	Profile  string `json:"profile,omitempty"`
	MemoryMB int    `json:"memory_mb,omitempty"`
	VCPUs    int    `json:"vcpus,omitempty"`
	// DiskMB is the size of the sandboxes' disks: a disk cannot shrink
	// in place, so a request matches only a pool of its own disk size.
	DiskMB int `json:"disk_mb,omitempty"`
}

// String is the key as `serve --pool` and `pool set` write it:
// comma-separated KEY=VALUE fields, the empty ones left out.
func (k PoolKey) String() string {
	var parts []string
	add := func(name, v string) {
		if v != "" {
			parts = append(parts, name+"="+v)
		}
	}
	num := func(name string, n int) {
		if n != 0 {
			add(name, strconv.Itoa(n))
		}
	}
	add("backend", k.Backend)
	add("image", k.Image)
	add("profile", k.Profile)
	num("memory_mb", k.MemoryMB)
	num("vcpus", k.VCPUs)
	num("disk_mb", k.DiskMB)
	return strings.Join(parts, ",")
}

// ParsePoolSize parses `serve --pool`'s KEY=N: KEY is an image name
// ("host=2", "python:3.12=1") or comma-separated fields of PoolKey
// ("backend=microvm,image=host=2"); N is how many sandboxes the pool keeps
// ready.
func ParsePoolSize(s string) (PoolKey, int, error) {
	i := strings.LastIndexByte(s, '=')
	if i <= 0 {
		return PoolKey{}, 0, fmt.Errorf("%w: pool %q: want KEY=N (an image, or fields such as backend=microvm,image=host, then =N)", errdefs.ErrInvalidArgument, s)
	}
	n, err := strconv.Atoi(s[i+1:])
	if err != nil || n < 0 || n > MaxPoolSize {
		return PoolKey{}, 0, fmt.Errorf("%w: pool %q: size must be a number from 0 to %d", errdefs.ErrInvalidArgument, s, MaxPoolSize)
	}
	k, err := ParsePoolKey(s[:i])
	return k, n, err
}

// ParsePoolKey parses PoolKey.String's form, or a bare image name.
func ParsePoolKey(s string) (PoolKey, error) {
	var k PoolKey
	if !strings.Contains(s, "=") {
		k.Image = s
		return k, nil
	}
	for _, f := range strings.Split(s, ",") {
		name, v, ok := strings.Cut(f, "=")
		if !ok || v == "" {
			return k, fmt.Errorf("%w: pool key %q: field %q is not NAME=VALUE", errdefs.ErrInvalidArgument, s, f)
		}
		var err error
		switch name {
		case "backend":
			k.Backend = v
		case "image":
			k.Image = v
		case "profile":
			k.Profile = v
		case "memory_mb":
			k.MemoryMB, err = strconv.Atoi(v)
		case "vcpus":
			k.VCPUs, err = strconv.Atoi(v)
		case "disk_mb":
			k.DiskMB, err = strconv.Atoi(v)
		default:
			return k, fmt.Errorf("%w: pool key %q: unknown field %q (backend, image, profile, memory_mb, vcpus, disk_mb)", errdefs.ErrInvalidArgument, s, name)
		}
		if err != nil {
			return k, fmt.Errorf("%w: pool key %q: %s is not a number", errdefs.ErrInvalidArgument, s, name)
		}
	}
	return k, nil
}

// MaxPoolSize bounds one pool's size.
const MaxPoolSize = 1000

// PoolInfo is one pool as GET /pools reports it.
type PoolInfo struct {
	PoolKey
	// Size is how many ready sandboxes the pool keeps.
	Size int `json:"size"`
	// Ready sandboxes wait for a claim; Starting ones are being made.
	Ready    int `json:"ready"`
	Starting int `json:"starting"`
	// Claimed counts claims served since the daemon started; Missed the
	// creates that matched this pool but found it empty.
	Claimed uint64 `json:"claimed"`
	Missed  uint64 `json:"missed"`
	// Held says why refilling waits, when it does ("memory budget",
	// "memory pressure").
	Held string `json:"held,omitempty"`
	// LastError is the last failure to make a pooled sandbox.
	LastError string `json:"last_error,omitempty"`
}

// String describes the pool on one line. (Without it, PoolInfo would
// print as its embedded key alone.)
func (p PoolInfo) String() string {
	s := fmt.Sprintf("%s: size %d, %d ready, %d starting, %d claimed, %d missed", p.PoolKey, p.Size, p.Ready, p.Starting, p.Claimed, p.Missed)
	if p.Held != "" {
		s += ", held by " + p.Held
	}
	if p.LastError != "" {
		s += ", last error: " + p.LastError
	}
	return s
}

// SetPoolRequest is the body of PUT /pools: the pool of PoolKey keeps Size
// sandboxes ready. Size 0 drains it: its ready sandboxes are removed.
type SetPoolRequest struct {
	PoolKey
	Size int `json:"size"`
}
