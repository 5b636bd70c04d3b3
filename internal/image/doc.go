// Package image keeps the root filesystems sandboxes start from.
//
// Two kinds exist today. The built-in "host" image is a read-only view of the
// host: /usr and the /lib* and /bin directories bound read-only, symlinks
// (bin -> usr/bin on merged-/usr systems) reproduced as symlinks, and a
// scrubbed copy of /etc built once per store (HostView). Imported images are
// one unpacked layer each, made from a host directory or a tar(.gz) by
// Store.Import, with file ownership shifted into the sandboxes' mapped uid
// range so that root in the sandbox owns its files. A backend stacks a
// sandbox's private copy-on-write layer over Image.Layers.
//
// On-disk layout under the store root (0700, root-owned):
//
//	images/<key>.json  metadata of one image; key = hex(sha256(name))[:32]
//	layers/<id>/       one unpacked layer (read-only once published)
//	host/etc-<id>/     a scrubbed /etc copy for the host image
//	host/etc           symlink to the current host/etc-<id>
//	tmp/               staging; anything here is garbage after a crash
//
// Only the daemon imports and removes images and rebuilds the /etc copy;
// every write publishes with an atomic rename, so other processes
// (supervisors) may read concurrently and see an image completely or not at
// all. The first HostView in any process builds the /etc copy if the store
// has none; two processes racing to do so each publish a complete copy and
// the last symlink wins. Within one process a Store is safe for concurrent
// use.
//
// Imports are extracted by internal/safetar (names with "..", absolute names
// and writes through symlinks are refused; sizes and entry counts are
// bounded). A directory is first turned into a tar stream by safetar.Write;
// either stream passes through a filter that checks every owner against the
// mapped range and shifts it, so files are created with their final owners.
package image
