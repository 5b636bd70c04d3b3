package agent

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/hashicorp/yamux"
	"golang.org/x/sys/unix"

	"github.com/agentkernel/agentkernel/internal/agentproto"
	"github.com/agentkernel/agentkernel/internal/safetar"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// listChunk is how many entries one listing frame carries.
const listChunk = 256

// maxTrailing bounds the bytes accepted after the end of a tar archive
// (writers pad archives to a record size).
const maxTrailing = 1 << 20

// fileOp runs the file operations. Paths were validated by DecodeRequest:
// absolute and clean. They are resolved in the agent's own root, which is
// the sandbox's.
func (s *Server) fileOp(ctx context.Context, st *yamux.Stream, req *agentproto.Request) error {
	return explainReadOnlyDisk(s.runFileOp(ctx, st, req))
}

// explainReadOnlyDisk adds why to a write refused because ext4 made the
// sandbox's disk read-only under it (a bare "read-only file system" would
// read as the user's mistake).
func explainReadOnlyDisk(err error) error {
	if !errors.Is(err, syscall.EROFS) {
		return err
	}
	if d, derr := diskStat(true); derr == nil && d.ReadOnly {
		return fmt.Errorf("%w: %s", err, agentproto.DiskReadOnly)
	}
	return err
}

func (s *Server) runFileOp(ctx context.Context, st *yamux.Stream, req *agentproto.Request) error {
	switch req.Op {
	case agentproto.OpStat:
		fi, err := os.Lstat(req.Path)
		if err != nil {
			return err
		}
		return result(st, fileInfo(req.Path, fi))
	case agentproto.OpReadFile:
		return readFile(st, req.Path, req.Max)
	case agentproto.OpWriteFile:
		return writeFile(st, req.Path, fs.FileMode(req.Mode))
	case agentproto.OpListDir:
		return listDir(st, req.Path)
	case agentproto.OpRemove:
		return remove(st, req.Path, req.Recursive)
	case agentproto.OpMkdir:
		return mkdir(st, req.Path, fs.FileMode(req.Mode), req.Parents)
	case agentproto.OpTarOut:
		return tarOut(ctx, st, req.Path)
	case agentproto.OpTarIn:
		return tarIn(ctx, st, req.Path)
	}
	return fmt.Errorf("%w: unknown op %q", errdefs.ErrNotImplemented, req.Op)
}

func fileInfo(path string, fi fs.FileInfo) agentproto.FileInfo {
	info := agentproto.FileInfo{
		Name: fi.Name(), Size: fi.Size(), Mode: fi.Mode(), ModTime: fi.ModTime().UTC(), IsDir: fi.IsDir(),
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		info.Link, _ = os.Readlink(path)
	}
	return info
}

func readFile(st io.Writer, path string, max int64) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%w: %s is not a regular file", errdefs.ErrFailedPrecondition, path)
	}
	if fi.Size() > max {
		return fmt.Errorf("%w: %s has %d bytes, more than %d", errdefs.ErrTooLarge, path, fi.Size(), max)
	}
	// The file may grow while it is read: read one byte past max to tell.
	n, err := io.Copy(agentproto.DataWriter{W: st}, io.LimitReader(f, max+1))
	if err != nil {
		return err
	}
	if n > max {
		return fmt.Errorf("%w: %s grew past %d bytes while read", errdefs.ErrTooLarge, path, max)
	}
	return agentproto.WriteFrame(st, agentproto.FrameDataEnd, nil)
}

// writeFile writes the host's data to a temporary file next to path and
// renames it into place. An existing file keeps its owner.
func writeFile(st io.ReadWriter, path string, mode fs.FileMode) (retErr error) {
	if mode == 0 {
		mode = 0o644
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	old, err := os.Lstat(path)
	if err == nil && old.IsDir() {
		return fmt.Errorf("%w: %s is a directory", errdefs.ErrFailedPrecondition, path)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".agentkernel-*")
	if err != nil {
		return err
	}
	defer func() {
		if retErr != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err := io.Copy(tmp, agentproto.NewDataReader(st)); err != nil {
		return err
	}
	if old != nil && os.Geteuid() == 0 {
		if sys, ok := old.Sys().(*syscall.Stat_t); ok {
			if err := tmp.Chown(int(sys.Uid), int(sys.Gid)); err != nil {
				return err
			}
		}
	}
	if err := tmp.Chmod(mode); err != nil {
		return err
	}
	// Reported done only once on the disk (see syncFS).
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	return result(st, struct{}{})
}

func listDir(st io.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	ents, err := f.ReadDir(agentproto.MaxListEntries + 1)
	if err != nil && err != io.EOF {
		return err
	}
	// ReadDir(n) does not sort; the protocol promises sorted names.
	slices.SortFunc(ents, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	for len(ents) > 0 {
		n := min(len(ents), listChunk)
		part := make([]agentproto.FileInfo, 0, n)
		for _, e := range ents[:n] {
			fi, err := e.Info()
			if err != nil {
				continue // removed meanwhile
			}
			part = append(part, fileInfo(filepath.Join(path, e.Name()), fi))
		}
		if err := agentproto.WriteJSON(st, agentproto.FrameData, part); err != nil {
			return err
		}
		ents = ents[n:]
	}
	return agentproto.WriteFrame(st, agentproto.FrameDataEnd, nil)
}

func remove(st io.Writer, path string, recursive bool) error {
	if path == "/" {
		return fmt.Errorf("%w: refusing to remove /", errdefs.ErrInvalidArgument)
	}
	if _, err := os.Lstat(path); err != nil {
		return err
	}
	var err error
	if recursive {
		err = os.RemoveAll(path)
	} else {
		err = os.Remove(path)
	}
	if err != nil {
		return err
	}
	return result(st, struct{}{})
}

func mkdir(st io.Writer, path string, mode fs.FileMode, parents bool) error {
	if mode == 0 {
		mode = 0o755
	}
	if parents {
		if fi, err := os.Stat(path); err == nil {
			if !fi.IsDir() {
				return fmt.Errorf("%w: %s exists and is not a directory", errdefs.ErrAlreadyExists, path)
			}
			return result(st, struct{}{})
		}
		if err := os.MkdirAll(path, mode); err != nil {
			return err
		}
	} else if err := os.Mkdir(path, mode); err != nil {
		return err
	}
	if err := os.Chmod(path, mode|fs.ModeDir); err != nil { // past the umask
		return err
	}
	return result(st, struct{}{})
}

// tarOut acknowledges with the FileInfo of path, then streams its tar.
func tarOut(ctx context.Context, st io.Writer, path string) error {
	if path == "/" {
		return fmt.Errorf("%w: cannot tar / (name a directory below it)", errdefs.ErrInvalidArgument)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return err
	}
	if err := result(st, fileInfo(path, fi)); err != nil {
		return err
	}
	bw := bufio.NewWriterSize(agentproto.DataWriter{W: st}, agentproto.ChunkSize)
	if err := safetar.Write(ctx, bw, path); err != nil {
		bw.Flush()
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	return agentproto.WriteFrame(st, agentproto.FrameDataEnd, nil)
}

// tarIn extracts the host's tar stream into dir, creating dir if needed.
func tarIn(ctx context.Context, st *yamux.Stream, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	r := agentproto.NewDataReader(st)
	err := safetar.Extract(ctx, dir, r, safetar.Options{SameOwner: os.Geteuid() == 0})
	if err != nil {
		return err
	}
	// Consume the padding after the archive's end, up to DataEnd.
	n, err := io.Copy(io.Discard, io.LimitReader(r, maxTrailing+1))
	if err != nil {
		return err
	}
	if n > maxTrailing {
		return fmt.Errorf("%w: more than %d bytes after the end of the archive", errdefs.ErrInvalidArgument, maxTrailing)
	}
	if err := syncFS(dir); err != nil {
		return err
	}
	return result(st, struct{}{})
}

// syncFS writes out the filesystem holding dir, so that a copy reported
// done is on the disk: the sandbox's disk is a sparse image, and a host
// that ran out of space under it fails only the write-back, which would
// otherwise reach no one.
func syncFS(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Syncfs(int(f.Fd())); err != nil {
		return fmt.Errorf("writing out %s: %w: the sandbox's disk could not store the data: is the host's disk full? (see the host's kernel log)", dir, err)
	}
	return nil
}
