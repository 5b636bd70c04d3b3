package agentproto

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// MaxListEntries is the most entries ListDir returns; a larger directory is
// errdefs.ErrTooLarge.
const MaxListEntries = 100_000

// modeBits are the mode bits a file or directory may be created with.
const modeBits = os.ModePerm | os.ModeSetuid | os.ModeSetgid | os.ModeSticky

// Stat describes the file at path without following a final symlink.
func (c *Client) Stat(ctx context.Context, path string) (FileInfo, error) {
	var fi FileInfo
	if err := ValidPath(path); err != nil {
		return fi, err
	}
	err := c.callJSON(ctx, &Request{Op: OpStat, Path: path}, &fi)
	return fi, err
}

// ReadFile returns the contents of the regular file at path; a file larger
// than max bytes is errdefs.ErrTooLarge.
func (c *Client) ReadFile(ctx context.Context, path string, max int64) ([]byte, error) {
	if err := ValidPath(path); err != nil {
		return nil, err
	}
	if max <= 0 {
		return nil, fmt.Errorf("%w: read_file: max must be positive", errdefs.ErrInvalidArgument)
	}
	st, err := c.open(ctx, &Request{Op: OpReadFile, Path: path, Max: max})
	if err != nil {
		return nil, err
	}
	defer st.close()
	var data []byte
	for {
		f, err := st.read()
		if err != nil {
			return nil, err
		}
		switch f.Type {
		case FrameData:
			if int64(len(data))+int64(len(f.Payload)) > max {
				return nil, fmt.Errorf("%w: %s is larger than %d bytes", errdefs.ErrTooLarge, path, max)
			}
			data = append(data, f.Payload...)
		case FrameDataEnd:
			return data, nil
		default:
			return nil, st.unexpected(f)
		}
	}
}

// WriteFile replaces the file at path with the contents of r, atomically
// (a temporary file renamed into place), creating missing parent
// directories. mode 0 means 0644; only permission bits count.
func (c *Client) WriteFile(ctx context.Context, path string, mode os.FileMode, r io.Reader) error {
	if err := ValidPath(path); err != nil {
		return err
	}
	return c.upload(ctx, &Request{Op: OpWriteFile, Path: path, Mode: uint32(mode & modeBits)}, r)
}

// TarIn extracts the tar stream r into dir (created if missing) with the
// protections of internal/safetar: nothing is written outside dir.
func (c *Client) TarIn(ctx context.Context, dir string, r io.Reader) error {
	if err := ValidPath(dir); err != nil {
		return err
	}
	return c.upload(ctx, &Request{Op: OpTarIn, Path: dir}, r)
}

// upload sends req, then r as Data frames and DataEnd, and waits for the
// result. An early error from the agent stops the upload.
func (c *Client) upload(ctx context.Context, req *Request, r io.Reader) error {
	st, err := c.open(ctx, req)
	if err != nil {
		return err
	}
	res := make(chan error, 1)
	failed := make(chan struct{})
	go func() {
		_, err := st.result()
		if err != nil {
			close(failed)
			st.s.SetWriteDeadline(past) // stop the sender: the op has failed
		}
		res <- err
	}()
	sendErr := sendData(st, r, failed)
	if sendErr != nil && sendErr.local {
		st.abort() // the agent sees the stream end without DataEnd
		<-res
		return fmt.Errorf("agent %s: reading input: %w", req.Op, sendErr.err)
	}
	err = <-res
	st.close()
	if err == nil && sendErr != nil {
		err = st.wrap(sendErr.err)
	}
	return err
}

type sendError struct {
	err   error
	local bool // reading r failed, not the stream
}

func sendData(st *stream, r io.Reader, failed <-chan struct{}) *sendError {
	buf := make([]byte, HeaderSize+ChunkSize)
	for {
		select {
		case <-failed:
			return &sendError{err: errors.New("agent failed the upload")}
		default:
		}
		n, err := r.Read(buf[HeaderSize:])
		if n > 0 {
			frame := AppendFrame(buf[:0], FrameData, buf[HeaderSize:HeaderSize+n])
			if _, werr := st.s.Write(frame); werr != nil {
				return &sendError{err: werr}
			}
		}
		if err == io.EOF {
			if werr := WriteFrame(st.s, FrameDataEnd, nil); werr != nil {
				return &sendError{err: werr}
			}
			return nil
		}
		if err != nil {
			return &sendError{err: err, local: true}
		}
	}
}

// ListDir lists the directory at path (without "." and ".."), sorted by
// name. Symlinks are described, not followed.
func (c *Client) ListDir(ctx context.Context, path string) ([]FileInfo, error) {
	if err := ValidPath(path); err != nil {
		return nil, err
	}
	st, err := c.open(ctx, &Request{Op: OpListDir, Path: path})
	if err != nil {
		return nil, err
	}
	defer st.close()
	var list []FileInfo
	for {
		f, err := st.read()
		if err != nil {
			return nil, err
		}
		switch f.Type {
		case FrameData:
			var part []FileInfo
			if err := json.Unmarshal(f.Payload, &part); err != nil {
				return nil, st.wrap(fmt.Errorf("%w: bad listing: %v", ErrProtocol, err))
			}
			if len(list)+len(part) > MaxListEntries {
				return nil, fmt.Errorf("%w: %s has more than %d entries", errdefs.ErrTooLarge, path, MaxListEntries)
			}
			list = append(list, part...)
		case FrameDataEnd:
			return list, nil
		default:
			return nil, st.unexpected(f)
		}
	}
}

// Remove removes the file or directory at path; recursive removes a
// directory with its contents. A missing path is errdefs.ErrNotFound.
func (c *Client) Remove(ctx context.Context, path string, recursive bool) error {
	if err := ValidPath(path); err != nil {
		return err
	}
	_, err := c.call(ctx, &Request{Op: OpRemove, Path: path, Recursive: recursive})
	return err
}

// Mkdir creates the directory at path (mode 0 means 0755). Without parents,
// an existing path is errdefs.ErrAlreadyExists; with parents, missing
// parents are created and an existing directory is fine.
func (c *Client) Mkdir(ctx context.Context, path string, mode os.FileMode, parents bool) error {
	if err := ValidPath(path); err != nil {
		return err
	}
	_, err := c.call(ctx, &Request{Op: OpMkdir, Path: path, Mode: uint32(mode & modeBits), Parents: parents})
	return err
}

// TarOut returns a tar stream of the file or directory at path, whose
// entry names start with the base name of path. Symlinks are stored as
// symlinks, hard links as links. ctx covers reading the stream too; Close
// the reader when done.
func (c *Client) TarOut(ctx context.Context, path string) (io.ReadCloser, error) {
	if err := ValidPath(path); err != nil {
		return nil, err
	}
	st, err := c.open(ctx, &Request{Op: OpTarOut, Path: path})
	if err != nil {
		return nil, err
	}
	if _, err := st.result(); err != nil {
		st.close()
		return nil, err
	}
	return &dataReader{st: st}, nil
}

// dataReader reads a run of Data frames ended by DataEnd. Read is for one
// goroutine; Close may be called from another to stop a blocked Read.
type dataReader struct {
	st     *stream
	closed atomic.Bool
	buf    []byte
	err    error // sticky: io.EOF after DataEnd, or the failure
}

func (d *dataReader) Read(p []byte) (int, error) {
	if d.closed.Load() {
		return 0, fmt.Errorf("agent %s: %w", d.st.op, os.ErrClosed)
	}
	for len(d.buf) == 0 {
		if d.err != nil {
			return 0, d.err
		}
		f, err := d.st.read()
		switch {
		case err != nil:
			d.err = err
		case f.Type == FrameData:
			d.buf = f.Payload
		case f.Type == FrameDataEnd:
			d.err = io.EOF
		default:
			d.err = d.st.unexpected(f)
		}
	}
	n := copy(p, d.buf)
	d.buf = d.buf[n:]
	return n, nil
}

func (d *dataReader) Close() error {
	if !d.closed.Swap(true) {
		d.st.abort()
	}
	return nil
}
