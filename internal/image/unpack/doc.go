// Package unpack turns one OCI image layer, an uncompressed tar stream, into
// a directory that overlayfs can stack as a read-only lower layer.
//
// Each layer is unpacked on its own, into an empty directory, and the
// layers of an image are stacked in manifest order by the overlay mount; so
// a layer never needs to look at the layers below it. OCI whiteouts are
// turned into overlayfs's own representation instead of being applied:
//
//   - ".wh.NAME" becomes a character device 0/0 called NAME (an overlay
//     whiteout), which hides NAME of the lower layers. Making one needs
//     CAP_MKNOD, i.e. root: the daemon runs as root. A layer that holds
//     NAME itself as well keeps NAME (OCI: a whiteout applies only to lower
//     layers, and NAME hides them anyway).
//   - ".wh..wh..opq" in DIR sets the xattr trusted.overlay.opaque=y on DIR,
//     which hides everything the lower layers have in DIR (CAP_SYS_ADMIN).
//   - Other ".wh..wh.*" names (aufs bookkeeping) are dropped.
//
// Everything else is extracted by internal/safetar, which refuses names
// with "..", absolute names, hard links out of the layer and writes through
// symlinks (so a symlink, absolute or not, can never make a write land
// outside the directory). A filter in front of it checks every owner
// against the sandboxes' mapped id range and shifts it there (files are
// created with their final owners), drops device nodes (a sandbox's /dev is
// the runtime's; a device node in an image is only a hazard), and lifts
// extended attributes out of the stream. After extraction the whiteouts,
// opaque markers and kept xattrs are applied through file descriptors
// opened beneath the directory without following any symlink.
//
// Kept xattrs: user.* and security.capability (file capabilities; a v3
// entry's root id is shifted like the owners). Others — trusted.* (which
// would steer overlayfs), security.selinux, POSIX ACLs holding unshifted
// ids — are dropped and counted in Stats.
//
// A hard link to a file the layer does not hold (image-spec allows a link
// into a lower layer) is left out and reported in Stats.Links, for the
// image store to make above the layer (see LowerLink); one whose target
// the layer itself deleted, hid or put under a non-directory before the
// link is an error.
//
// Directories the archive does not list but needs as parents are created
// owned by the mapped root with mode 0755.
//
// The package is Linux-only and its callers must be root.
package unpack
