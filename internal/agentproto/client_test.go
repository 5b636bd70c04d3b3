package agentproto

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// handler plays a (possibly hostile) agent on one stream.
type handler func(req *Request, s *yamux.Stream)

// fakeAgent serves yamux on the far end of a pipe, answering hellos with
// version and passing every other stream to h.
func fakeAgent(t testing.TB, version int, h handler) (*Client, error) {
	host, guest := net.Pipe()
	cfg := yamux.DefaultConfig()
	cfg.LogOutput = io.Discard
	sess, err := yamux.Server(guest, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { sess.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			s, err := sess.AcceptStream()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer s.Close()
				f, err := ReadFrame(s)
				if err != nil {
					return
				}
				req, err := DecodeRequest(f.Payload)
				if err != nil {
					return
				}
				if req.Op == OpHello {
					WriteJSON(s, FrameResult, HelloInfo{Version: version, AgentVersion: "fake", PID: 1})
					return
				}
				h(req, s)
			})
		}
	})
	c, err := NewClient(host)
	if c != nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, err
}

// raw writes bytes as they are, bypassing WriteFrame's checks.
func raw(s io.Writer, b ...[]byte) {
	for _, x := range b {
		s.Write(x)
	}
}

func header(t FrameType, n uint32) []byte {
	return binary.BigEndian.AppendUint32([]byte{byte(t)}, n)
}

// within fails the test if fn does not return within d.
func within(t *testing.T, d time.Duration, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); fn() }()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("hung for %v", d)
	}
}

func TestVersionMismatch(t *testing.T) {
	_, err := fakeAgent(t, 2, nil)
	if err == nil || !strings.Contains(err.Error(), "version 2") || !strings.Contains(err.Error(), "version 1") {
		t.Fatalf("NewClient = %v; want a refusal naming both versions", err)
	}
}

func TestGarbageInsteadOfYamux(t *testing.T) {
	host, guest := net.Pipe()
	go func() {
		guest.Write(bytes.Repeat([]byte{0xde, 0xad, 0xbe, 0xef}, 1000))
		io.Copy(io.Discard, guest)
	}()
	within(t, 5*time.Second, func() {
		if c, err := NewClient(host); err == nil {
			c.Close()
			t.Errorf("NewClient over garbage succeeded")
		}
	})
}

func TestSilentAgent(t *testing.T) {
	old := helloTimeout
	helloTimeout = 200 * time.Millisecond
	defer func() { helloTimeout = old }()
	host, guest := net.Pipe()
	go io.Copy(io.Discard, guest)
	defer guest.Close()
	within(t, 5*time.Second, func() {
		if _, err := NewClient(host); err == nil {
			t.Errorf("NewClient with a silent peer succeeded")
		}
	})
}

func TestHostileExec(t *testing.T) {
	started := func(s io.Writer) { WriteJSON(s, FrameStarted, Started{PID: 42, ID: "p-1"}) }
	cases := map[string]handler{
		"oversized frame": func(_ *Request, s *yamux.Stream) { started(s); raw(s, header(FrameStdout, MaxPayload+1)) },
		"huge length":     func(_ *Request, s *yamux.Stream) { started(s); raw(s, header(FrameStdout, 0xffffffff)) },
		"unknown type":    func(_ *Request, s *yamux.Stream) { started(s); raw(s, header(99, 0)) },
		"truncated":       func(_ *Request, s *yamux.Stream) { started(s); raw(s, header(FrameStdout, 100), []byte("abc")) },
		"no exit":         func(_ *Request, s *yamux.Stream) { started(s); WriteFrame(s, FrameStdout, []byte("hi")) },
		"bad exit json":   func(_ *Request, s *yamux.Stream) { started(s); WriteFrame(s, FrameExit, []byte("{{{")) },
		"request frame":   func(_ *Request, s *yamux.Stream) { started(s); WriteFrame(s, FrameRequest, []byte("{}")) },
		"bad error json":  func(_ *Request, s *yamux.Stream) { started(s); WriteFrame(s, FrameError, []byte("nope")) },
	}
	for name, h := range cases {
		t.Run(name, func(t *testing.T) {
			c, err := fakeAgent(t, Version, h)
			if err != nil {
				t.Fatal(err)
			}
			within(t, 10*time.Second, func() {
				p, err := c.Exec(context.Background(), ExecRequest{Argv: []string{"x"}})
				if err != nil {
					return
				}
				go io.Copy(io.Discard, p.Stdout())
				go io.Copy(io.Discard, p.Stderr())
				if _, err := p.Wait(); err == nil {
					t.Errorf("Wait succeeded")
				} else if !errors.Is(err, errdefs.ErrUnavailable) {
					t.Errorf("Wait error %v is not unavailable", err)
				}
				p.Close()
			})
		})
	}
	// Before Started.
	for name, h := range map[string]handler{
		"stdout first": func(_ *Request, s *yamux.Stream) { WriteFrame(s, FrameStdout, []byte("x")) },
		"bad started":  func(_ *Request, s *yamux.Stream) { WriteFrame(s, FrameStarted, []byte("[")) },
		"silence":      func(_ *Request, s *yamux.Stream) { io.Copy(io.Discard, s) },
	} {
		t.Run(name, func(t *testing.T) {
			c, err := fakeAgent(t, Version, h)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			within(t, 10*time.Second, func() {
				if _, err := c.Exec(ctx, ExecRequest{Argv: []string{"x"}}); err == nil {
					t.Errorf("Exec succeeded")
				}
			})
		})
	}
}

// TestCloseWhileFlooded: an agent that floods output and never exits must
// not keep Process.Close from returning.
func TestCloseWhileFlooded(t *testing.T) {
	c, err := fakeAgent(t, Version, func(req *Request, s *yamux.Stream) {
		if req.Op == OpSignal {
			WriteJSON(s, FrameResult, struct{}{})
			return
		}
		WriteJSON(s, FrameStarted, Started{PID: 42, ID: "p-1"})
		for WriteFrame(s, FrameStdout, make([]byte, ChunkSize)) == nil {
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	p, err := c.Exec(context.Background(), ExecRequest{Argv: []string{"x"}})
	if err != nil {
		t.Fatal(err)
	}
	within(t, 2*ControlTimeout, func() { p.Close() })
}

func TestHostileData(t *testing.T) {
	c, err := fakeAgent(t, Version, func(req *Request, s *yamux.Stream) {
		switch req.Op {
		case OpReadFile:
			for range 10 {
				WriteFrame(s, FrameData, make([]byte, 1000))
			}
			WriteFrame(s, FrameDataEnd, nil)
		case OpListDir:
			entries := make([]FileInfo, 10000)
			for range 12 {
				WriteJSON(s, FrameData, entries)
			}
		case OpBgLogs:
			for WriteFrame(s, FrameStdout, make([]byte, ChunkSize)) == nil {
			}
		case OpStat:
			WriteFrame(s, FrameResult, []byte(`{"name": 5}`))
		case OpTarOut:
			WriteJSON(s, FrameResult, FileInfo{})
			WriteFrame(s, FrameData, []byte("abc"))
			WriteFrame(s, FrameStdout, []byte("x"))
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	within(t, 10*time.Second, func() {
		if _, err := c.ReadFile(ctx, "/f", 5000); !errors.Is(err, errdefs.ErrTooLarge) {
			t.Errorf("ReadFile past max: %v", err)
		}
		if _, err := c.ListDir(ctx, "/d"); !errors.Is(err, errdefs.ErrTooLarge) {
			t.Errorf("ListDir flood: %v", err)
		}
		if _, _, err := c.BackgroundLogs(ctx, "bg-1"); !errors.Is(err, ErrProtocol) {
			t.Errorf("BackgroundLogs flood: %v", err)
		}
		if _, err := c.Stat(ctx, "/x"); !errors.Is(err, ErrProtocol) {
			t.Errorf("Stat with bad JSON: %v", err)
		}
		rc, err := c.TarOut(ctx, "/x")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadAll(rc); !errors.Is(err, ErrProtocol) {
			t.Errorf("TarOut with a stray frame: %v", err)
		}
		rc.Close()
	})
}

func TestContextCancel(t *testing.T) {
	c, err := fakeAgent(t, Version, func(_ *Request, s *yamux.Stream) { io.Copy(io.Discard, s) })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	within(t, 5*time.Second, func() {
		if _, err := c.Stat(ctx, "/x"); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Stat: %v", err)
		}
		if err := c.WriteFile(ctx, "/x", 0, io.LimitReader(zeroReader{}, 100<<20)); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("WriteFile: %v", err)
		}
	})
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// TestAgentOpensStream: the agent never opens streams; one that does is
// cut off.
func TestAgentOpensStream(t *testing.T) {
	host, guest := net.Pipe()
	cfg := yamux.DefaultConfig()
	cfg.LogOutput = io.Discard
	sess, _ := yamux.Server(guest, cfg)
	defer sess.Close()
	go func() {
		s, err := sess.AcceptStream()
		if err != nil {
			return
		}
		ReadFrame(s)
		WriteJSON(s, FrameResult, HelloInfo{Version: Version})
		s.Close()
		sess.OpenStream()
	}()
	c, err := NewClient(host)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("session survived an agent-opened stream")
	}
	if err := c.Ping(context.Background()); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Errorf("Ping on a closed session: %v", err)
	}
}

// FuzzClientExec: whatever an agent sends on an exec stream, Exec and Wait
// return, without a panic, in bounded time.
func FuzzClientExec(f *testing.F) {
	var seed bytes.Buffer
	WriteJSON(&seed, FrameStarted, Started{PID: 1, ID: "p"})
	WriteFrame(&seed, FrameStdout, []byte("out"))
	WriteFrame(&seed, FrameStderr, []byte("err"))
	WriteJSON(&seed, FrameExit, ExitStatus{Code: 3})
	f.Add(seed.Bytes())
	f.Add(append(seed.Bytes()[:20], header(FrameStdout, MaxPayload+5)...))
	f.Add([]byte{4, 0, 0, 0, 2, '{', '}', 9, 0, 0, 0, 2, '{', '}'})
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := fakeAgent(t, Version, func(req *Request, s *yamux.Stream) {
			if req.Op == OpExec {
				s.Write(data)
				return
			}
			WriteJSON(s, FrameResult, struct{}{})
		})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			p, err := c.Exec(context.Background(), ExecRequest{Argv: []string{"x"}})
			if err != nil {
				return
			}
			go io.Copy(io.Discard, p.Stdout())
			go io.Copy(io.Discard, p.Stderr())
			p.Wait()
			p.Close()
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("client hung")
		}
	})
}
