package agentproto

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// FrameType is the first byte of a frame.
type FrameType uint8

// The frame types. Each says who sends it and what its payload is.
const (
	// FrameRequest (host→agent, JSON Request) is the first frame of every stream.
	FrameRequest FrameType = 1
	// FrameResult (agent→host, JSON, shape depends on the op) ends a
	// successful op, or acknowledges it before data flows.
	FrameResult FrameType = 2
	// FrameError (agent→host, JSON WireError) ends a failed op.
	FrameError FrameType = 3
	// FrameStarted (agent→host, JSON Started) says an exec'd process runs.
	FrameStarted FrameType = 4
	// FrameStdin (host→agent, raw bytes) is input for the process.
	FrameStdin FrameType = 5
	// FrameStdinEOF (host→agent, empty) closes the process's stdin.
	FrameStdinEOF FrameType = 6
	// FrameStdout and FrameStderr (agent→host, raw bytes) are output.
	FrameStdout FrameType = 7
	FrameStderr FrameType = 8
	// FrameExit (agent→host, JSON ExitStatus) is the last frame of an exec.
	FrameExit FrameType = 9
	// FrameData (either way, raw bytes) carries file, tar or listing data.
	FrameData FrameType = 10
	// FrameDataEnd (either way, empty) ends a run of FrameData.
	FrameDataEnd FrameType = 11

	maxFrameType = FrameDataEnd
)

var frameNames = [...]string{
	FrameRequest: "request", FrameResult: "result", FrameError: "error",
	FrameStarted: "started", FrameStdin: "stdin", FrameStdinEOF: "stdin-eof",
	FrameStdout: "stdout", FrameStderr: "stderr", FrameExit: "exit",
	FrameData: "data", FrameDataEnd: "data-end",
}

func (t FrameType) String() string {
	if t >= 1 && t <= maxFrameType {
		return frameNames[t]
	}
	return fmt.Sprintf("frame-type-%d", uint8(t))
}

// Frame limits.
const (
	// HeaderSize is the size of a frame header: type byte and length.
	HeaderSize = 5
	// MaxPayload is the largest payload a frame may carry. A header that
	// announces more is a protocol error; the payload is never allocated.
	MaxPayload = 1 << 20
	// ChunkSize is how much raw data (output, file contents) one frame
	// carries at most when this package or the agent sends it.
	ChunkSize = 32 << 10
)

// ErrProtocol marks a peer that broke the protocol: a malformed, oversized,
// unknown or unexpected frame. It is also errdefs.ErrUnavailable, because a
// peer that does this cannot be used.
var ErrProtocol = fmt.Errorf("%w: agent protocol error", errdefs.ErrUnavailable)

// Frame is one decoded frame.
type Frame struct {
	Type    FrameType
	Payload []byte
}

// ReadFrame reads one frame from r. It returns io.EOF only when r ends
// cleanly between frames; a truncated frame, an unknown type or a length
// above MaxPayload is an error wrapping ErrProtocol (or the read error).
func ReadFrame(r io.Reader) (Frame, error) {
	var hdr [HeaderSize]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return Frame{}, fmt.Errorf("%w: truncated frame header", ErrProtocol)
		}
		return Frame{}, err
	}
	t := FrameType(hdr[0])
	if t < 1 || t > maxFrameType {
		return Frame{}, fmt.Errorf("%w: unknown frame type %d", ErrProtocol, hdr[0])
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if n > MaxPayload {
		return Frame{}, fmt.Errorf("%w: %s frame of %d bytes exceeds the %d byte limit", ErrProtocol, t, n, MaxPayload)
	}
	if n == 0 {
		return Frame{Type: t}, nil
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return Frame{}, fmt.Errorf("%w: truncated %s frame", ErrProtocol, t)
		}
		return Frame{}, err
	}
	return Frame{Type: t, Payload: p}, nil
}

// AppendFrame appends the encoding of one frame to b.
func AppendFrame(b []byte, t FrameType, payload []byte) []byte {
	b = append(b, byte(t))
	b = binary.BigEndian.AppendUint32(b, uint32(len(payload)))
	return append(b, payload...)
}

// WriteFrame writes one frame with a single Write call, so that frames
// written concurrently to a stream that serialises Writes (as yamux streams
// do) never interleave.
func WriteFrame(w io.Writer, t FrameType, payload []byte) error {
	if len(payload) > MaxPayload {
		return fmt.Errorf("%s frame of %d bytes exceeds the %d byte limit", t, len(payload), MaxPayload)
	}
	_, err := w.Write(AppendFrame(make([]byte, 0, HeaderSize+len(payload)), t, payload))
	return err
}

// WriteJSON writes one frame whose payload is v encoded as JSON.
func WriteJSON(w io.Writer, t FrameType, v any) error {
	p, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s frame: %w", t, err)
	}
	return WriteFrame(w, t, p)
}

// WriteChunked writes data as frames of type t of at most ChunkSize bytes.
func WriteChunked(w io.Writer, t FrameType, data []byte) error {
	for len(data) > 0 {
		n := min(len(data), ChunkSize)
		if err := WriteFrame(w, t, data[:n]); err != nil {
			return err
		}
		data = data[n:]
	}
	return nil
}

// DecodeJSON decodes the JSON payload of f into v. A payload that does not
// decode is an error wrapping ErrProtocol.
func DecodeJSON(f Frame, v any) error {
	if err := json.Unmarshal(f.Payload, v); err != nil {
		return fmt.Errorf("%w: bad %s payload: %v", ErrProtocol, f.Type, err)
	}
	return nil
}

// NewDataReader returns a reader of the payloads of the FrameData frames
// read from r, ending with io.EOF at FrameDataEnd. Any other frame, or r
// ending before FrameDataEnd, is an error wrapping ErrProtocol.
func NewDataReader(r io.Reader) io.Reader { return &dataFrames{r: r} }

type dataFrames struct {
	r   io.Reader
	buf []byte
	err error
}

func (d *dataFrames) Read(p []byte) (int, error) {
	for len(d.buf) == 0 {
		if d.err != nil {
			return 0, d.err
		}
		f, err := ReadFrame(d.r)
		switch {
		case errors.Is(err, io.EOF):
			d.err = fmt.Errorf("%w: stream ended before %s", ErrProtocol, FrameDataEnd)
		case err != nil:
			d.err = err
		case f.Type == FrameData:
			d.buf = f.Payload
		case f.Type == FrameDataEnd:
			d.err = io.EOF
		default:
			d.err = fmt.Errorf("%w: unexpected %s frame in data", ErrProtocol, f.Type)
		}
	}
	n := copy(p, d.buf)
	d.buf = d.buf[n:]
	return n, nil
}

// DataWriter writes what it is given as FrameData frames of at most
// ChunkSize bytes. It does not buffer; wrap it in a bufio.Writer of
// ChunkSize to avoid small frames.
type DataWriter struct{ W io.Writer }

func (d DataWriter) Write(p []byte) (int, error) {
	if err := WriteChunked(d.W, FrameData, p); err != nil {
		return 0, err
	}
	return len(p), nil
}
