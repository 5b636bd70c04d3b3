// Package image keeps the root filesystems sandboxes start from.
//
// Three kinds exist. The built-in "host" image is a read-only view of the
// host: /usr and the /lib* and /bin directories bound read-only, symlinks
// (bin -> usr/bin on merged-/usr systems) reproduced as symlinks, and a
// scrubbed copy of /etc built once per store (HostView). Imported images
// are one unpacked layer each, made from a host directory or a tar(.gz) by
// Store.Import. Pulled images come from an OCI or Docker registry
// (Store.Pull, through go-containerregistry): their blobs are kept by
// digest, their layers unpacked once each and shared between images. A
// backend stacks a sandbox's private copy-on-write layer over
// Image.Layers, so creating a sandbox costs the same whatever the image's
// size.
//
// On-disk layout under the store root (0700, root-owned), itself an OCI
// image layout (oci-layout, index.json, blobs/) that other tools can read:
//
//	images/<key>.json     one image's metadata, key = hex(sha256(name))[:32]:
//	                      the name -> manifest index of the store
//	blobs/sha256/<hex>    manifests, configs and compressed layers
//	index.json            the pulled images, regenerated from images/
//	layers/<id>/          one unpacked layer (read-only once published):
//	                      a pulled layer's diff-id, an imported layer's random id
//	layerinfo/<id>.json   size and entry count of a pulled layer
//	host/etc-<id>/        a scrubbed /etc copy for the host image
//	host/etc              symlink to the current host/etc-<id>
//	tmp/                  staging; anything here is garbage after a crash
//
// Names. Pulled images are named by the short ("familiar") form of their
// reference: "python:3.12" for index.docker.io/library/python:3.12,
// "ghcr.io/o/r:1", "localhost:5000/x:latest". Get accepts any form of a
// reference; an imported image keeps the exact name it was imported as,
// and an exact name wins over the familiar form of a reference.
//
// Pulls. Blobs are verified as they arrive (size and digest; a blob is
// written to tmp/, checked and only then renamed into blobs/), and each
// layer is decompressed (gzip, zstd or plain), checked against its diff-id
// and unpacked by internal/image/unpack in the same pass as its download.
// Layers already stored are neither fetched nor unpacked again. The image's
// metadata is written last, so an image is visible completely or not at
// all; a failed pull deletes whatever it added that no image uses. A
// name that moves to another digest leaves the old content until Remove or
// Prune collects it. Plain HTTP is used only for loopback registries and
// those the caller lists as insecure.
//
// Unpacked layers are overlayfs lower layers: OCI whiteouts become overlay
// whiteouts (0/0 character devices) and opaque directories the
// trusted.overlay.opaque xattr, so making them needs root. File owners are
// shifted into the sandboxes' mapped uid range, so root in the sandbox owns
// its files.
//
// Garbage collection. Remove deletes a name and then the blobs and layers
// no other image refers to; Prune deletes every unreferenced blob and layer.
// Neither deletes a layer that is the lower layer of a mounted overlay (a
// running sandbox), nor anything a pull in flight holds a lease on.
//
// Concurrency. Only the daemon writes to the store; every write publishes
// with an atomic rename, so other processes (supervisors) may read
// concurrently. Within one process a Store is safe for concurrent use: mu
// serialises metadata changes and collection (never held while
// downloading), a per-layer lock keeps two pulls from unpacking the same
// layer twice. The first HostView in any process builds the /etc copy if
// the store has none; two processes racing to do so each publish a
// complete copy and the last symlink wins.
//
// Imports are extracted by internal/safetar (names with "..", absolute
// names and writes through symlinks are refused; sizes and entry counts are
// bounded). A directory is first turned into a tar stream by safetar.Write;
// either stream passes through a filter that checks every owner against the
// mapped range and shifts it, so files are created with their final owners.
package image
