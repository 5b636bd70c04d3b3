// Package sniff reads the name a client asks for at the start of a TCP
// stream, without consuming it: the server name (SNI) of a TLS ClientHello
// and the Host of an HTTP/1.x request. The gateway uses it to check that a
// flow to an address goes to the name the address was resolved for.
//
// The parsers take the bytes seen so far and return ErrIncomplete when they
// need more; every other error means the stream is malformed or ambiguous and
// the flow must be refused. They never read past their input and never panic
// (see the fuzz tests); Read bounds how much is buffered.
package sniff

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/agentkernel/agentkernel/internal/netgw/policy"
)

// ErrIncomplete means the parser needs more bytes to decide.
var ErrIncomplete = errors.New("sniff: incomplete")

// ErrMalformed is wrapped by every error about bad input.
var ErrMalformed = errors.New("sniff: malformed")

// MaxHello bounds the bytes buffered for one ClientHello (all the TLS
// records that carry it). Real ClientHellos, post-quantum key shares
// included, are under 4 KiB.
const MaxHello = 32 << 10

const (
	recordHeaderLen    = 5
	recordTypeHandshak = 22
	maxRecordLen       = 1<<14 + 2048
	handshakeHello     = 1
	extServerName      = 0
	nameTypeHostName   = 0
)

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
}

// ClientHelloSNI parses a TLS ClientHello at the start of b (which may be
// split across several handshake records) and returns its server name,
// normalized (lowercase, no trailing dot). A ClientHello without a
// server_name, with two of them, or with a name that is not a valid DNS name
// is an error.
func ClientHelloSNI(b []byte) (string, error) {
	msg, err := handshakeMessage(b)
	if err != nil {
		return "", err
	}
	return helloServerName(msg)
}

// handshakeMessage reassembles the first handshake message from the records
// at the start of b.
func handshakeMessage(b []byte) ([]byte, error) {
	var payload []byte
	for {
		if len(b) < recordHeaderLen {
			return nil, ErrIncomplete
		}
		if b[0] != recordTypeHandshak {
			return nil, malformed("TLS record type %d, want handshake", b[0])
		}
		if b[1] != 3 {
			return nil, malformed("TLS record version %d.%d", b[1], b[2])
		}
		n := int(binary.BigEndian.Uint16(b[3:5]))
		if n == 0 || n > maxRecordLen {
			return nil, malformed("TLS record length %d", n)
		}
		if len(b) < recordHeaderLen+n {
			return nil, ErrIncomplete
		}
		payload = append(payload, b[recordHeaderLen:recordHeaderLen+n]...)
		b = b[recordHeaderLen+n:]
		if len(payload) >= 4 {
			if payload[0] != handshakeHello {
				return nil, malformed("handshake type %d, want ClientHello", payload[0])
			}
			mlen := int(payload[1])<<16 | int(payload[2])<<8 | int(payload[3])
			if mlen+4 > MaxHello {
				return nil, malformed("ClientHello of %d bytes", mlen)
			}
			if len(payload) >= 4+mlen {
				if len(payload) > 4+mlen {
					return nil, malformed("data after ClientHello in its record")
				}
				return payload[4:], nil
			}
		}
	}
}

// reader is a bounds-checked cursor over a byte slice. Every method returns
// ok=false instead of reading past the end.
type reader struct{ b []byte }

func (r *reader) bytes(n int) ([]byte, bool) {
	if n < 0 || n > len(r.b) {
		return nil, false
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v, true
}

func (r *reader) u8() (int, bool) {
	v, ok := r.bytes(1)
	if !ok {
		return 0, false
	}
	return int(v[0]), true
}

func (r *reader) u16() (int, bool) {
	v, ok := r.bytes(2)
	if !ok {
		return 0, false
	}
	return int(binary.BigEndian.Uint16(v)), true
}

// vec8 and vec16 read a vector with a 1- or 2-byte length prefix.
func (r *reader) vec8() (reader, bool) {
	n, ok := r.u8()
	if !ok {
		return reader{}, false
	}
	v, ok := r.bytes(n)
	return reader{v}, ok
}

func (r *reader) vec16() (reader, bool) {
	n, ok := r.u16()
	if !ok {
		return reader{}, false
	}
	v, ok := r.bytes(n)
	return reader{v}, ok
}

func helloServerName(msg []byte) (string, error) {
	r := reader{msg}
	if _, ok := r.bytes(2 + 32); !ok { // legacy_version, random
		return "", malformed("ClientHello too short")
	}
	sid, ok := r.vec8()
	if !ok || len(sid.b) > 32 {
		return "", malformed("ClientHello session id")
	}
	suites, ok := r.vec16()
	if !ok || len(suites.b) < 2 || len(suites.b)%2 != 0 {
		return "", malformed("ClientHello cipher suites")
	}
	comp, ok := r.vec8()
	if !ok || len(comp.b) < 1 {
		return "", malformed("ClientHello compression methods")
	}
	if len(r.b) == 0 {
		return "", malformed("ClientHello without extensions (no server name)")
	}
	exts, ok := r.vec16()
	if !ok || len(r.b) != 0 {
		return "", malformed("ClientHello extensions length")
	}
	var name string
	seen := make(map[int]bool)
	for len(exts.b) > 0 {
		typ, ok := exts.u16()
		if !ok {
			return "", malformed("extension header")
		}
		data, ok := exts.vec16()
		if !ok {
			return "", malformed("extension %d length", typ)
		}
		if seen[typ] {
			return "", malformed("duplicate extension %d", typ)
		}
		seen[typ] = true
		if typ != extServerName {
			continue
		}
		list, ok := data.vec16()
		if !ok || len(data.b) != 0 || len(list.b) == 0 {
			return "", malformed("server_name list")
		}
		for len(list.b) > 0 {
			nt, ok := list.u8()
			if !ok {
				return "", malformed("server_name entry")
			}
			host, ok := list.vec16()
			if !ok {
				return "", malformed("server_name entry length")
			}
			if nt != nameTypeHostName {
				continue
			}
			if name != "" {
				return "", malformed("two host names in server_name")
			}
			n, valid := policy.NormalizeName(string(host.b))
			if !valid {
				return "", malformed("server name %q is not a DNS name", host.b)
			}
			name = n
		}
	}
	if name == "" {
		return "", malformed("ClientHello has no server name")
	}
	return name, nil
}

// Read reads from r until parse decides (returns anything but
// ErrIncomplete), max bytes have been read, or deadline passes (when r has
// SetReadDeadline). It returns every byte read, so the caller can replay
// them upstream, with parse's result. Reaching max is a malformed error.
func Read(r io.Reader, parse func([]byte) (string, error), max int, deadline time.Time) ([]byte, string, error) {
	if d, ok := r.(interface{ SetReadDeadline(time.Time) error }); ok && !deadline.IsZero() {
		if err := d.SetReadDeadline(deadline); err != nil {
			return nil, "", err
		}
		defer d.SetReadDeadline(time.Time{})
	}
	buf := make([]byte, 0, 2048)
	for {
		if len(buf) == cap(buf) {
			if len(buf) >= max {
				return buf, "", malformed("no decision after %d bytes", len(buf))
			}
			nb := make([]byte, len(buf), min(2*cap(buf), max))
			copy(nb, buf)
			buf = nb
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if n > 0 {
			s, perr := parse(buf)
			if !errors.Is(perr, ErrIncomplete) {
				return buf, s, perr
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return buf, "", err
		}
	}
}
