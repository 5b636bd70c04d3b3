package sniff

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// realHello returns the first flight of a real crypto/tls client asking for
// serverName.
func realHello(t testing.TB, serverName string) []byte {
	t.Helper()
	c, s := net.Pipe()
	defer s.Close()
	go func() {
		tc := tls.Client(c, &tls.Config{ServerName: serverName, InsecureSkipVerify: serverName == ""})
		tc.Handshake() // fails when s closes; we only want its first flight
		c.Close()
	}()
	s.SetReadDeadline(time.Now().Add(5 * time.Second))
	var buf []byte
	tmp := make([]byte, 4096)
	for {
		n, err := s.Read(tmp)
		buf = append(buf, tmp[:n]...)
		if _, perr := handshakeMessage(buf); !errors.Is(perr, ErrIncomplete) {
			return buf
		}
		if err != nil {
			t.Fatalf("reading ClientHello: %v", err)
		}
	}
}

// refragment splits the handshake message of a single-record hello into
// records of at most n payload bytes.
func refragment(t testing.TB, hello []byte, n int) []byte {
	t.Helper()
	l := int(binary.BigEndian.Uint16(hello[3:5]))
	payload := hello[5 : 5+l]
	var out []byte
	for len(payload) > 0 {
		k := min(n, len(payload))
		out = append(out, 22, 3, 1, byte(k>>8), byte(k))
		out = append(out, payload[:k]...)
		payload = payload[k:]
	}
	return out
}

func TestClientHelloSNIReal(t *testing.T) {
	h := realHello(t, "Allowed.Test")
	name, err := ClientHelloSNI(h)
	if err != nil || name != "allowed.test" {
		t.Fatalf("ClientHelloSNI = %q, %v", name, err)
	}
	for _, n := range []int{1, 7, 100} {
		name, err := ClientHelloSNI(refragment(t, h, n))
		if err != nil || name != "allowed.test" {
			t.Fatalf("fragmented by %d: %q, %v", n, name, err)
		}
	}
	// Every strict prefix needs more bytes; none is an error or a name.
	for i := range len(h) {
		if _, err := ClientHelloSNI(h[:i]); !errors.Is(err, ErrIncomplete) {
			t.Fatalf("prefix %d: err = %v, want incomplete", i, err)
		}
	}
}

func TestClientHelloSNIRejects(t *testing.T) {
	noSNI := realHello(t, "")
	if _, err := ClientHelloSNI(noSNI); !errors.Is(err, ErrMalformed) {
		t.Fatalf("hello without SNI: err = %v", err)
	}
	good := realHello(t, "a.example")
	corrupt := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	cases := map[string][]byte{
		"http":          []byte("GET / HTTP/1.1\r\n\r\n"),
		"record type":   corrupt(func(b []byte) []byte { b[0] = 23; return b }),
		"version":       corrupt(func(b []byte) []byte { b[1] = 2; return b }),
		"zero record":   {22, 3, 1, 0, 0},
		"huge record":   {22, 3, 1, 0xff, 0xff},
		"not hello":     corrupt(func(b []byte) []byte { b[5] = 2; return b }),
		"huge hello":    corrupt(func(b []byte) []byte { b[6] = 0x7f; return b }),
		"trailing data": appendTrailing(good),
		"sid length":    corrupt(func(b []byte) []byte { b[5+4+34] = 200; return b }),
	}
	for name, b := range cases {
		if _, err := ClientHelloSNI(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v, want malformed", name, err)
		}
	}
}

// appendTrailing grows the record by one byte that is not part of the hello.
func appendTrailing(h []byte) []byte {
	b := bytes.Clone(h)
	l := binary.BigEndian.Uint16(b[3:5]) + 1
	binary.BigEndian.PutUint16(b[3:5], l)
	return append(b, 0)
}

func TestHTTPHost(t *testing.T) {
	for _, tc := range []struct {
		in, host string
	}{
		{"GET / HTTP/1.1\r\nHost: Allowed.Test\r\n\r\n", "allowed.test"},
		{"POST /x HTTP/1.0\r\nUser-Agent: a\r\nhost:allowed.test:8080 \r\n\r\nbody", "allowed.test"},
		{"GET http://allowed.test/x HTTP/1.1\r\nHost: allowed.test\r\n\r\n", "allowed.test"},
	} {
		h, err := HTTPHost([]byte(tc.in))
		if err != nil || h != tc.host {
			t.Errorf("HTTPHost(%q) = %q, %v; want %q", tc.in, h, err, tc.host)
		}
	}
	for _, in := range []string{"GET / HTTP/1.1\r\nHost: a.test\r\n", "GET /", ""} {
		if _, err := HTTPHost([]byte(in)); !errors.Is(err, ErrIncomplete) {
			t.Errorf("HTTPHost(%q) err = %v, want incomplete", in, err)
		}
	}
	for _, in := range []string{
		"\x16\x03\x01\x00",
		"GET / HTTP/1.1\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a.test\r\n folded\r\n\r\n",
		"GET / HTTP/1.1\r\nHost : a.test\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a.test:x\r\n\r\n",
		"GET http://b.test/ HTTP/1.1\r\nHost: a.test\r\n\r\n",
		"GET http://a.test@b.test/ HTTP/1.1\r\nHost: a.test\r\n\r\n",
		"GET / HTTP/2.0\r\nHost: a.test\r\n\r\n",
		"GET / HTTP/1.1\r\nX: a\nHost: a.test\r\n\r\n",
	} {
		if _, err := HTTPHost([]byte(in)); !errors.Is(err, ErrMalformed) {
			t.Errorf("HTTPHost(%q) err = %v, want malformed", in, err)
		}
	}
}

// slowReader returns one byte per Read.
type slowReader struct{ r io.Reader }

func (s slowReader) Read(b []byte) (int, error) { return s.r.Read(b[:min(1, len(b))]) }

func TestRead(t *testing.T) {
	h := realHello(t, "a.example")
	stream := append(bytes.Clone(h), "application data"...)
	buf, name, err := Read(slowReader{bytes.NewReader(stream)}, ClientHelloSNI, MaxHello, time.Time{})
	if err != nil || name != "a.example" || !bytes.Equal(buf, h) {
		t.Fatalf("Read = %d bytes, %q, %v", len(buf), name, err)
	}
	// Garbage that never completes is cut at max.
	endless := io.MultiReader(strings.NewReader("GET / HTTP/1.1\r\n"), strings.NewReader(strings.Repeat("X-A: b\r\n", 10000)))
	if _, _, err := Read(endless, HTTPHost, MaxHTTPHeader, time.Time{}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("endless header: err = %v", err)
	}
	if _, _, err := Read(strings.NewReader("GET / HT"), HTTPHost, MaxHTTPHeader, time.Time{}); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("short stream: err = %v", err)
	}
	// A silent client hits the deadline.
	c, s := net.Pipe()
	defer c.Close()
	defer s.Close()
	start := time.Now()
	if _, _, err := Read(s, ClientHelloSNI, MaxHello, time.Now().Add(50*time.Millisecond)); err == nil || time.Since(start) > 2*time.Second {
		t.Fatalf("silent client: err = %v after %v", err, time.Since(start))
	}
}

func FuzzClientHelloSNI(f *testing.F) {
	h := realHello(f, "seed.example")
	f.Add(h)
	f.Add(refragment(f, h, 50))
	f.Add(realHello(f, ""))
	f.Add([]byte{22, 3, 1, 0, 4, 1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		name, err := ClientHelloSNI(b)
		if err == nil && name == "" {
			t.Fatal("no error and no name")
		}
		if err != nil && name != "" {
			t.Fatal("error with a name")
		}
	})
}

func FuzzHTTPHost(f *testing.F) {
	f.Add([]byte("GET / HTTP/1.1\r\nHost: a.test\r\n\r\n"))
	f.Add([]byte("GET http://a.test/ HTTP/1.1\r\nHost: a.test:80\r\n\r\n"))
	f.Add([]byte("GET / HTTP/1.1\r\nHost: a.test\r\nHost: b\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		host, err := HTTPHost(b)
		if err == nil {
			// A host found must really be the sole Host header's name.
			if host == "" || !bytes.Contains(bytes.ToLower(b), []byte(host)) {
				t.Fatalf("host %q not in input", host)
			}
		}
	})
}
