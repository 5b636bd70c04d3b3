package microvm

import (
	"io"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// The guest is hostile and writes its serial console as fast as it likes,
// so the console does not go to a file QEMU appends to without bound:
// QEMU writes it to a socket, and the supervisor copies it into
// console.log, moving a full file to console.log.1 (keeping 2 x
// maxConsoleLog). QEMU's own output goes through the same kind of file.

// cappedFile is an append-only log file that rotates to path.1 when it
// reaches max bytes. Safe for concurrent use; Close is idempotent.
type cappedFile struct {
	path string
	max  int64

	mu   sync.Mutex
	f    *os.File
	size int64
}

func openCapped(path string, max int64) (*cappedFile, error) {
	c := &cappedFile{path: path, max: max}
	if err := c.open(); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *cappedFile) open() error {
	f, err := os.OpenFile(c.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	c.f, c.size = f, fi.Size()
	return nil
}

// Write appends b, rotating first if it would pass the cap.
func (c *cappedFile) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.f == nil {
		return 0, os.ErrClosed
	}
	if c.size+int64(len(b)) > c.max && c.size > 0 {
		c.f.Close()
		c.f = nil
		if err := os.Rename(c.path, c.path+".1"); err != nil {
			return 0, err
		}
		if err := c.open(); err != nil {
			return 0, err
		}
	}
	if int64(len(b)) > c.max {
		b = b[int64(len(b))-c.max:]
	}
	n, err := c.f.Write(b)
	c.size += int64(n)
	return n, err
}

// Close closes the file. Idempotent.
func (c *cappedFile) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.f == nil {
		return nil
	}
	err := c.f.Close()
	c.f = nil
	return err
}

// copyConsole copies the console socket into w until EOF, then closes
// both and closes done.
func copyConsole(r io.ReadCloser, w io.WriteCloser, done chan<- struct{}) {
	io.Copy(w, r)
	r.Close()
	w.Close()
	close(done)
}
