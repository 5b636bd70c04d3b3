package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// DefaultMaxSize is the size at which a log is rotated to name + ".1"
// (which is replaced): a log keeps between one and two times this much.
const DefaultMaxSize = 8 << 20

// Options configures Open. Zero values take the documented defaults.
type Options struct {
	// MaxSize is the rotation size; default DefaultMaxSize.
	MaxSize int64
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Head names the last record written: its seq and hash.
type Head struct {
	Seq  int64  `json:"seq"`
	Hash string `json:"hash"`
}

// Writer appends records to one log. It must be the log's only writer
// (the file is not locked against others). Open creates it, Close closes
// it; its methods are safe for concurrent use. Append writes through to
// the file (no buffer outlives a call), so a crash loses at most the
// record being written, which the next Open cuts off as a torn tail.
type Writer struct {
	path string
	opts Options

	// mu guards the fields below.
	mu   sync.Mutex
	f    *os.File
	size int64
	seq  int64
	prev [sha256.Size]byte
}

// Open opens the log at path (0600, created with its directory 0700 if
// missing) and resumes its chain after the last complete record. A torn
// last line is cut off and a TypeTornTail record says how many bytes it
// had. A last line that is not a record cannot be resumed from: the file
// is renamed to path + ".broken-<unix time>" and a new chain starts whose
// TypeStart record names it.
func Open(path string, opts Options) (*Writer, error) {
	if opts.MaxSize <= 0 {
		opts.MaxSize = DefaultMaxSize
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	w := &Writer{path: path, opts: opts}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, err
	}
	w.f = f
	if err := w.resume(); err != nil {
		// resume may have replaced the file it was given.
		if w.f != nil {
			w.f.Close()
		}
		return nil, fmt.Errorf("audit log %s: %w", path, err)
	}
	return w, nil
}

// resume reads the file's last lines to find where the chain stands and
// writes the records that explain what it found.
func (w *Writer) resume() error {
	fi, err := w.f.Stat()
	if err != nil {
		return err
	}
	size := fi.Size()
	if size == 0 {
		if head, err := lastHead(w.path + ".1"); err == nil && head != nil {
			// Rotated before a crash could write the new file's first
			// record: continue the older file's chain.
			w.seq, w.prev = head.Seq, head.hash
			return w.appendLocked(Entry{Type: TypeRotated})
		}
		return w.appendLocked(Entry{Type: TypeStart})
	}
	tail, _, err := readTail(w.f, size)
	if err != nil {
		return err
	}
	torn := int64(0)
	if i := bytes.LastIndexByte(tail, '\n'); i != len(tail)-1 {
		torn = int64(len(tail) - 1 - i)
		tail = tail[:i+1]
	}
	var last []byte
	if t := bytes.TrimSuffix(tail, []byte("\n")); len(t) > 0 {
		last = t[bytes.LastIndexByte(t, '\n')+1:]
	}
	d, derr := decode(last)
	if last == nil || derr != nil {
		// Nothing complete to resume from.
		w.f.Close()
		w.f = nil
		broken := fmt.Sprintf("%s.broken-%d", w.path, w.opts.Now().Unix())
		if err := os.Rename(w.path, broken); err != nil {
			return err
		}
		if w.f, err = os.OpenFile(w.path, os.O_RDWR|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600); err != nil {
			return err
		}
		reason := "its last line is not a record"
		if derr != nil {
			reason += ": " + derr.Error()
		}
		return w.appendLocked(Entry{Type: TypeStart, Fields: map[string]any{"previous_log": filepath.Base(broken), "previous_log_error": reason}})
	}
	w.seq, w.prev = d.Seq, d.hash
	w.size = size
	if torn > 0 {
		w.size = size - torn
		if err := w.f.Truncate(w.size); err != nil {
			return err
		}
		return w.appendLocked(Entry{Type: TypeTornTail, Fields: map[string]any{"dropped_bytes": torn}})
	}
	return nil
}

// readTail returns the file's last MaxLine*2 bytes (whole file if smaller)
// and their offset.
func readTail(f *os.File, size int64) ([]byte, int64, error) {
	off := max(0, size-2*MaxLine-2)
	b := make([]byte, size-off)
	if _, err := f.ReadAt(b, off); err != nil && !errors.Is(err, io.EOF) {
		return nil, 0, err
	}
	return b, off, nil
}

type headHash struct {
	Seq  int64
	hash [sha256.Size]byte
}

// lastHead is the last complete record of the file at p (nil if none).
func lastHead(p string) (*headHash, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	tail, _, err := readTail(f, fi.Size())
	if err != nil {
		return nil, err
	}
	tail = bytes.TrimSuffix(tail, []byte("\n"))
	d, err := decode(tail[bytes.LastIndexByte(tail, '\n')+1:])
	if err != nil {
		return nil, nil
	}
	return &headHash{d.Seq, d.hash}, nil
}

// Append writes e as the next record. A record longer than MaxLine is
// written without its fields, with "fields_dropped" giving its size.
func (w *Writer) Append(e Entry) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return fs.ErrClosed
	}
	return w.appendLocked(e)
}

// appendLocked writes e. Preconditions: w.mu is held (or w is not yet
// shared), w.f is open.
func (w *Writer) appendLocked(e Entry) error {
	if e.Time.IsZero() {
		e.Time = w.opts.Now()
	}
	line, sum, err := encode(e, w.seq+1, w.prev)
	if err != nil {
		return err
	}
	if len(line)+1 > MaxLine {
		n := len(line)
		e.Fields = map[string]any{"fields_dropped": n}
		if line, sum, err = encode(e, w.seq+1, w.prev); err != nil {
			return err
		}
	}
	line = append(line, '\n')
	if w.size > 0 && w.size+int64(len(line)) > w.opts.MaxSize && e.Type != TypeRotated {
		if err := w.rotateLocked(); err != nil {
			return err
		}
		return w.appendLocked(e)
	}
	if _, err := w.f.WriteAt(line, w.size); err != nil {
		// Cut off what may have been written, so the file stays a chain.
		w.f.Truncate(w.size)
		return err
	}
	w.size += int64(len(line))
	w.seq, w.prev = w.seq+1, sum
	return nil
}

// rotateLocked moves the file to path + ".1" and starts the next with a
// TypeRotated record. Preconditions: w.mu is held.
func (w *Writer) rotateLocked() error {
	if err := w.f.Close(); err != nil {
		return err
	}
	w.f = nil
	if err := os.Rename(w.path, w.path+".1"); err != nil {
		return err
	}
	f, err := os.OpenFile(w.path, os.O_RDWR|os.O_CREATE|os.O_TRUNC|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	w.f, w.size = f, 0
	return w.appendLocked(Entry{Type: TypeRotated})
}

// Head returns the last record written.
func (w *Writer) Head() Head {
	w.mu.Lock()
	defer w.mu.Unlock()
	return Head{Seq: w.seq, Hash: hex.EncodeToString(w.prev[:])}
}

// Path is the log's current file.
func (w *Writer) Path() string { return w.path }

// Close closes the file. Idempotent; Append then fails.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return nil
	}
	err := w.f.Close()
	w.f = nil
	return err
}

// Files returns the files of the log at path that exist, oldest first.
func Files(path string) []string {
	var out []string
	for _, p := range []string{path + ".1", path} {
		if _, err := os.Lstat(p); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// Move renames the log at from (both its files) to to.
func Move(from, to string) error {
	if err := os.MkdirAll(filepath.Dir(to), 0o700); err != nil {
		return err
	}
	for _, suf := range []string{".1", ""} {
		if err := os.Rename(from+suf, to+suf); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}
