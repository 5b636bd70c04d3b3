#!/usr/bin/env bash
# Installs what agentkernel needs on a Debian host (bookworm): the OCI
# runtime and the tools the tests drive. Idempotent; needs root for apt.
# --with-gvisor also builds runsc for the gvisor backend (scripts/runsc.sh:
# minutes the first time), which `make test` and CI ask for and a first
# `make run` does not wait for.
set -euo pipefail
with_gvisor=
for arg in "$@"; do
  case $arg in
  --with-gvisor) with_gvisor=1 ;;
  *) echo "setup.sh: unknown argument $arg (--with-gvisor)" >&2; exit 2 ;;
  esac
done

need=()
command -v runc >/dev/null || need+=(runc)
command -v bwrap >/dev/null || need+=(bubblewrap)
command -v unshare >/dev/null || need+=(util-linux)
command -v setpriv >/dev/null || need+=(util-linux)
command -v script >/dev/null || need+=(bsdutils)
# The network gateway's tests: ip (namespaces, routes), nsenter, curl.
command -v ip >/dev/null || need+=(iproute2)
command -v nsenter >/dev/null || need+=(util-linux)
command -v curl >/dev/null || need+=(curl)
# Agents: work comes back as git branches (internal/workback); tmux drives
# the OpenCode TUI in its attach test.
command -v git >/dev/null || need+=(git)
command -v tmux >/dev/null || need+=(tmux)
command -v hyperfine >/dev/null || need+=(hyperfine)
# image build --debian: debootstrap, and what verifies the archive.
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v gpgv >/dev/null || need+=(gpgv)
[ -f /usr/share/keyrings/debian-archive-keyring.gpg ] || need+=(debian-archive-keyring)
# microVMs: QEMU, mkfs.ext4 for the disks, apt's tools for the guest kernel
# (`agentkernel setup`), cpio and lz4 for the tests' reference checks.
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
command -v mkfs.ext4 >/dev/null || need+=(e2fsprogs)
command -v dpkg-deb >/dev/null || need+=(dpkg)
command -v cpio >/dev/null || need+=(cpio)
command -v lz4 >/dev/null || need+=(lz4)
# The fault suite locks the store's database from another process.
command -v sqlite3 >/dev/null || need+=(sqlite3)
# Dockerfile build tests: a static shell for the base image they assemble.
[ -x /bin/busybox ] || need+=(busybox-static)

if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup: need root to install: ${need[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# `agentkernel setup` finds the guest kernel through apt's package lists.
if [ "$(id -u)" = 0 ] && ! apt-cache show linux-image-cloud-amd64 >/dev/null 2>&1; then
  apt-get update -qq
fi
# The gvisor backend's runsc, built once from the gvisor.dev/gvisor module
# version go.mod pins and cached in /var/cache/agentkernel/runsc (Debian's
# 2022 runsc runs only on ptrace here). A few minutes the first time on two
# cores; nothing afterwards.
if [ -n "$with_gvisor" ] && [ "$(id -u)" = 0 ]; then
  runsc=$("$(dirname "$0")/runsc.sh")
  echo "runsc: $runsc"
elif [ -n "$with_gvisor" ]; then
  echo "setup: not root; not building runsc (scripts/runsc.sh), so the gvisor tests will skip" >&2
fi
runc --version | head -1
