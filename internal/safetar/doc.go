// Package safetar writes and extracts tar streams without trusting them.
//
// Extract unpacks an archive into a directory and guarantees that nothing
// lands outside it, whatever the archive holds: names with "..", absolute
// names, symlinks followed by entries that would write through them (whether
// the symlink came earlier in the stream or already existed in the
// directory), hard links to files outside, device nodes, and archives too
// large or with too many entries. Every path is resolved beneath the
// directory with openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|
// RESOLVE_NO_MAGICLINKS), or, where openat2 is missing (ENOSYS), by a walk
// that opens one component at a time with O_NOFOLLOW. No symlink is followed
// while writing, so an entry may only create symlinks, never use them.
//
// Both the guest agent (tar into a sandbox) and the host (copying a tar that
// came out of a sandbox onto the host) use it. Write produces the archives
// the agent sends out.
//
// It builds on Linux and, for the CLI on macOS, on other Unixes: there
// every path takes the one-component-at-a-time walk and FIFOs are skipped
// (sys_other.go).
package safetar
