package agentproto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

func TestFrameRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	payloads := [][]byte{nil, []byte("x"), bytes.Repeat([]byte("a"), MaxPayload)}
	for i, p := range payloads {
		if err := WriteFrame(&buf, FrameType(i+1), p); err != nil {
			t.Fatal(err)
		}
	}
	for i, p := range payloads {
		f, err := ReadFrame(&buf)
		if err != nil || f.Type != FrameType(i+1) || !bytes.Equal(f.Payload, p) {
			t.Fatalf("frame %d: %v %v", i, f.Type, err)
		}
	}
	if _, err := ReadFrame(&buf); err != io.EOF {
		t.Errorf("end: %v, want io.EOF", err)
	}
	if err := WriteFrame(&buf, FrameData, make([]byte, MaxPayload+1)); err == nil {
		t.Errorf("oversized write accepted")
	}
}

func TestReadFrameRejects(t *testing.T) {
	hdr := func(t byte, n uint32) []byte {
		return append([]byte{t}, binary.BigEndian.AppendUint32(nil, n)...)
	}
	cases := map[string][]byte{
		"oversized":        hdr(byte(FrameStdout), MaxPayload+1),
		"huge":             hdr(byte(FrameStdout), 0xffffffff),
		"unknown type":     hdr(200, 0),
		"zero type":        hdr(0, 0),
		"truncated header": {byte(FrameStdout), 0, 0},
		"truncated body":   append(hdr(byte(FrameStdout), 10), "abc"...),
	}
	for name, b := range cases {
		_, err := ReadFrame(bytes.NewReader(b))
		if !errors.Is(err, ErrProtocol) || !errors.Is(err, errdefs.ErrUnavailable) {
			t.Errorf("%s: %v, want a protocol error", name, err)
		}
	}
}

// countingReader fails the test if more than max bytes are read: an
// oversized length must never be allocated or consumed.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func FuzzReadFrame(f *testing.F) {
	f.Add([]byte{1, 0, 0, 0, 2, '{', '}'})
	f.Add([]byte{7, 0, 16, 0, 1})
	f.Add([]byte{12, 0, 0, 0, 0})
	f.Add([]byte{9, 255, 255, 255, 255, 1, 2, 3})
	f.Fuzz(func(t *testing.T, data []byte) {
		cr := &countingReader{r: bytes.NewReader(data)}
		for {
			fr, err := ReadFrame(cr)
			if err != nil {
				if err != io.EOF && !errors.Is(err, ErrProtocol) {
					t.Fatalf("unexpected error class: %v", err)
				}
				break
			}
			if len(fr.Payload) > MaxPayload || fr.Type < 1 || fr.Type > maxFrameType {
				t.Fatalf("bad frame accepted: type %d len %d", fr.Type, len(fr.Payload))
			}
			// Re-encoding gives back the bytes read.
			var buf bytes.Buffer
			WriteFrame(&buf, fr.Type, fr.Payload)
			if buf.Len() != HeaderSize+len(fr.Payload) {
				t.Fatalf("re-encoded length %d", buf.Len())
			}
		}
		if cr.n > len(data) {
			t.Fatalf("read past input")
		}
	})
}

func FuzzDecodeRequest(f *testing.F) {
	f.Add([]byte(`{"op":"exec","exec":{"argv":["sh","-c","echo"],"env":["A=b"],"workdir":"/tmp","user":"1:2","timeout":1000}}`))
	f.Add([]byte(`{"op":"read_file","path":"/etc/passwd","max":100}`))
	f.Add([]byte(`{"op":"write_file","path":"/a/../b","mode":420}`))
	f.Add([]byte(`{"op":"signal","id":"p-1","signal":9}`))
	f.Add([]byte(`{"op":"nope"}`))
	f.Add([]byte(`[1,2,3]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := DecodeRequest(data)
		if err != nil {
			if req != nil {
				t.Fatalf("request returned with error")
			}
			if !errors.Is(err, ErrProtocol) && !errors.Is(err, errdefs.ErrInvalidArgument) && !errors.Is(err, errdefs.ErrNotImplemented) {
				t.Fatalf("unclassified error: %v", err)
			}
			return
		}
		switch req.Op {
		case OpExec, OpBgStart:
			if req.Exec == nil || len(req.Exec.Argv) == 0 || req.Exec.Timeout < 0 {
				t.Fatalf("bad exec accepted: %+v", req.Exec)
			}
			if req.Exec.Workdir != "" && ValidPath(req.Exec.Workdir) != nil {
				t.Fatalf("bad workdir accepted")
			}
			for _, kv := range req.Exec.Env {
				if !strings.Contains(kv, "=") || strings.HasPrefix(kv, "=") {
					t.Fatalf("bad env accepted: %q", kv)
				}
			}
		case OpStat, OpReadFile, OpWriteFile, OpListDir, OpRemove, OpMkdir, OpTarOut, OpTarIn:
			if ValidPath(req.Path) != nil {
				t.Fatalf("bad path accepted: %q", req.Path)
			}
		}
	})
}

func FuzzWireError(f *testing.F) {
	f.Add([]byte(`{"code":"not_found","message":"x"}`))
	f.Add([]byte(`{"code":"` + strings.Repeat("z", 100) + `"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var we WireError
		if err := DecodeJSON(Frame{Type: FrameError, Payload: data}, &we); err != nil {
			return
		}
		err := we.Err()
		if err == nil || len(err.Error()) > 9<<10 {
			t.Fatalf("error %v", err)
		}
	})
}

func TestErrorClasses(t *testing.T) {
	for _, class := range []error{errdefs.ErrNotFound, errdefs.ErrInvalidArgument, errdefs.ErrPermissionDenied,
		errdefs.ErrAlreadyExists, errdefs.ErrFailedPrecondition, errdefs.ErrTooLarge} {
		we := EncodeError(errors.Join(errors.New("context"), class))
		if got := we.Err(); !errors.Is(got, class) {
			t.Errorf("%v did not survive the wire: %v (%s)", class, got, we.Code)
		}
	}
	errnos := map[syscall.Errno]error{syscall.ENOENT: errdefs.ErrNotFound, syscall.EEXIST: errdefs.ErrAlreadyExists,
		syscall.EACCES: errdefs.ErrPermissionDenied, syscall.ENOTEMPTY: errdefs.ErrFailedPrecondition}
	for errno, class := range errnos {
		err := &os.PathError{Op: "open", Path: "/x", Err: errno}
		if got := EncodeError(err).Err(); !errors.Is(got, class) || got.Error() != err.Error() {
			t.Errorf("%v: got %v", errno, got)
		}
	}
}
