package workback

import (
	"fmt"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// Defaults for Limits' zero values.
const (
	DefaultMaxBytes     = 4 << 30   // all regular files together
	DefaultMaxFileBytes = 512 << 20 // one file
	DefaultMaxEntries   = 500_000
)

// maxMetaBytes bounds the names and link targets of one tree, which are
// held in memory.
const maxMetaBytes = 256 << 20

// Limits bound a tree going into or coming out of a sandbox. The zero value
// means the defaults. Exceeding a limit is an error wrapping
// errdefs.ErrTooLarge.
type Limits struct {
	MaxBytes     int64 // bytes of all regular files; 0: DefaultMaxBytes
	MaxFileBytes int64 // bytes of one regular file; 0: DefaultMaxFileBytes
	MaxEntries   int   // entries (files, directories, links); 0: DefaultMaxEntries
}

func (l Limits) withDefaults() Limits {
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultMaxBytes
	}
	if l.MaxFileBytes <= 0 {
		l.MaxFileBytes = DefaultMaxFileBytes
	}
	if l.MaxEntries <= 0 {
		l.MaxEntries = DefaultMaxEntries
	}
	return l
}

// budget counts a tree against its Limits.
type budget struct {
	lim     Limits
	entries int
	bytes   int64
	meta    int64
}

func (b *budget) entry() error {
	b.entries++
	if b.entries > b.lim.MaxEntries {
		return fmt.Errorf("%w: more than %d entries", errdefs.ErrTooLarge, b.lim.MaxEntries)
	}
	return nil
}

// file checks a regular file's size before a byte of it is read.
func (b *budget) file(name string, size int64) error {
	if size < 0 {
		return fmt.Errorf("%w: %.200q has a negative size", errdefs.ErrInvalidArgument, name)
	}
	if size > b.lim.MaxFileBytes {
		return fmt.Errorf("%w: %.200q is %d bytes, more than the %d allowed for one file", errdefs.ErrTooLarge, name, size, b.lim.MaxFileBytes)
	}
	return b.add(size)
}

// add counts bytes against the total without the per-file limit.
func (b *budget) add(size int64) error {
	if size < 0 || size > b.lim.MaxBytes-b.bytes {
		return fmt.Errorf("%w: more than %d bytes of files", errdefs.ErrTooLarge, b.lim.MaxBytes)
	}
	b.bytes += size
	return nil
}

func (b *budget) name(n int) error {
	b.meta += int64(n)
	if b.meta > maxMetaBytes {
		return fmt.Errorf("%w: more than %d bytes of names and link targets", errdefs.ErrTooLarge, maxMetaBytes)
	}
	return nil
}
