package image

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// HostView describes the host image's root filesystem. The backend builds a
// fresh skeleton from it for every start: Binds are host directories shown
// read-only at the same path, Symlinks are reproduced as they are on the host
// (bin -> usr/bin), and Etc is bound read-only at /etc.
type HostView struct {
	Binds    []string          // absolute host paths, e.g. "/usr"
	Symlinks map[string]string // top-level name -> link target
	Etc      string            // host path of the scrubbed /etc copy
}

// hostTop are the top-level host entries the host view shows.
var hostTop = []string{"usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32"}

// HostView returns the host view, building the /etc copy if the store has
// none yet. The copy is made once per store; RebuildHostEtc refreshes it.
func (s *Store) HostView(ctx context.Context) (*HostView, error) {
	etc, err := s.hostEtc(ctx, false)
	if err != nil {
		return nil, err
	}
	return hostView(etc)
}

func hostView(etc string) (*HostView, error) {
	hv := &HostView{Symlinks: map[string]string{}, Etc: etc}
	for _, name := range hostTop {
		p := "/" + name
		fi, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			t, err := os.Readlink(p)
			if err != nil {
				return nil, err
			}
			hv.Symlinks[name] = t
		case fi.IsDir():
			hv.Binds = append(hv.Binds, p)
		}
	}
	if !slices.Contains(hv.Binds, "/usr") {
		return nil, fmt.Errorf("%w: the host has no /usr directory to show", errdefs.ErrFailedPrecondition)
	}
	return hv, nil
}

// RebuildHostEtc makes a fresh /etc copy the current one (after the host's
// /etc changed). Sandboxes already running keep the copy they started with:
// older copies are left in place (host/etc-<id>, a few MB each) because a
// running sandbox may still have one mounted.
func (s *Store) RebuildHostEtc(ctx context.Context) error {
	_, err := s.hostEtc(ctx, true)
	return err
}

// hostEtc returns the directory of the current /etc copy, building one if
// there is none or if rebuild is set. host/etc is a symlink to the current
// host/etc-<id>; a copy is built under tmp/ and published by renaming it
// into host/ and then atomically replacing the symlink, so other processes
// never see a partial copy.
func (s *Store) hostEtc(ctx context.Context, rebuild bool) (string, error) {
	link := s.dir("host", "etc")
	s.etcMu.Lock()
	defer s.etcMu.Unlock()
	if !rebuild {
		if t, err := os.Readlink(link); err == nil && strings.HasPrefix(t, "etc-") && !strings.Contains(t, "/") {
			if fi, err := os.Lstat(s.dir("host", t)); err == nil && fi.IsDir() {
				return s.dir("host", t), nil
			}
		}
	}
	staging, err := os.MkdirTemp(s.dir("tmp"), "etc-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(staging)
	if err := scrubCopy(ctx, "/etc", filepath.Join(staging, "etc")); err != nil {
		return "", fmt.Errorf("copying /etc: %w", err)
	}
	name := "etc-" + randomID()
	if err := os.Rename(filepath.Join(staging, "etc"), s.dir("host", name)); err != nil {
		return "", err
	}
	tmpLink := filepath.Join(staging, "link")
	if err := os.Symlink(name, tmpLink); err != nil {
		return "", err
	}
	if err := os.Rename(tmpLink, link); err != nil {
		return "", err
	}
	return s.dir("host", name), nil
}

// Secret parts of /etc, by path relative to /etc. A directory listed here is
// skipped whole. Anything not world-readable is skipped as well, whatever
// its name.
var etcDenied = []string{
	"shadow", "gshadow", "sudoers", "sudoers.d", "machine-id", "security/opasswd",
	"ssl/private", "pki/tls/private", "pki/CA/private", "krb5.keytab", "credstore",
	"credstore.encrypted", "NetworkManager/system-connections", "wireguard",
	"ipsec.d", "ipsec.secrets", "openvpn", "ppp/chap-secrets", "ppp/pap-secrets",
	"ppp/srp-secrets", "letsencrypt", "docker", "containerd", "kubernetes",
	"rancher", "libvirt", "cups/ssl", "polkit-1/localauthority", "agentkernel",
	"ceph", "vault", "netplan", "wpa_supplicant", "iscsi", "mysql/debian.cnf",
	"restic", "rclone",
}

// etcSkip reports whether rel (a path relative to /etc) stays out of the copy.
func etcSkip(rel string, fi fs.FileInfo) bool {
	for _, d := range etcDenied {
		if rel == d || strings.HasPrefix(rel, d+"/") {
			return true
		}
	}
	base := path.Base(rel)
	// Backups (passwd-, shadow-) and editor leftovers.
	if strings.HasSuffix(base, "-") || strings.HasSuffix(base, "~") || strings.HasSuffix(base, ".bak") {
		return true
	}
	// Private keys: any ssh key file that is not a .pub, and *.key/*.pem
	// private material anywhere.
	if strings.HasPrefix(rel, "ssh/") && strings.Contains(base, "key") && !strings.HasSuffix(base, ".pub") {
		return true
	}
	if strings.HasSuffix(base, ".key") || strings.Contains(base, "secret") || strings.Contains(base, "token") {
		return true
	}
	m := fi.Mode()
	switch {
	case m.IsDir():
		return m.Perm()&0o005 != 0o005
	case m&fs.ModeSymlink != 0:
		return false
	case m.IsRegular():
		return m.Perm()&0o004 == 0
	default:
		return true // devices, sockets, fifos
	}
}

const (
	maxEtcFile  = 16 << 20
	maxEtcTotal = 128 << 20
)

// scrubCopy copies the world-readable, non-secret part of src to dst, owned
// by root, keeping symlinks as symlinks. resolv.conf is copied by content if
// it is a symlink (it usually points into /run, which the sandbox does not
// share).
func scrubCopy(ctx context.Context, src, dst string) error {
	var total int64
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrPermission) {
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		fi, err := d.Info()
		if err != nil {
			return nil // vanished
		}
		if rel == "." {
			return os.Mkdir(target, 0o755)
		}
		if rel == "resolv.conf" && fi.Mode()&fs.ModeSymlink != 0 {
			if to, err := os.Stat(p); err == nil && to.Mode().IsRegular() && to.Mode().Perm()&0o004 != 0 {
				return copyRegular(p, target, 0o644, &total)
			}
		}
		if etcSkip(rel, fi) {
			if fi.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		switch {
		case fi.IsDir():
			return os.Mkdir(target, fi.Mode().Perm()&0o755)
		case fi.Mode()&fs.ModeSymlink != 0:
			t, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(t, target)
		default:
			return copyRegular(p, target, fi.Mode().Perm()&0o755, &total)
		}
	})
}

// copyRegular copies one file, refusing to follow a symlink at src unless
// the caller resolved it, and bounding sizes.
func copyRegular(src, dst string, perm fs.FileMode, total *int64) error {
	in, err := os.OpenFile(src, os.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, fs.ErrPermission) || errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil || !fi.Mode().IsRegular() || fi.Size() > maxEtcFile {
		return nil // not a plain file after all, or absurdly large: leave it out
	}
	*total += fi.Size()
	if *total > maxEtcTotal {
		return fmt.Errorf("%w: /etc holds more than %d bytes", errdefs.ErrTooLarge, maxEtcTotal)
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err = io.Copy(out, io.LimitReader(in, maxEtcFile)); err == nil {
		err = unix.Fchmod(int(out.Fd()), uint32(perm))
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}
