// Package dnstest runs a tiny authoritative DNS server on loopback for the
// gateway's tests and the integration tests: the "internet's" resolver. It
// answers A queries from a fixed table over UDP and TCP, NXDOMAIN for names it
// does not know, and can be told to truncate UDP replies to exercise the TCP
// fallback. It listens in the network namespace of the goroutine that calls
// Start.
package dnstest

import (
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

// Server is a running test resolver. Create it with Start; it stops when
// the test ends.
type Server struct {
	// Addr is the UDP and TCP address (same port) it listens on.
	Addr netip.AddrPort
	// TruncateUDP makes every UDP reply truncated and empty.
	TruncateUDP atomic.Bool
	// Queries counts the queries received.
	Queries atomic.Int64

	mu      sync.Mutex
	records map[string][]netip.Addr // lowercase name with trailing dot
	cnames  map[string]string
}

// Start starts a server on 127.0.0.1 answering records (name → A addresses)
// and registers its shutdown with t.Cleanup.
func Start(t testing.TB, records map[string][]netip.Addr) *Server {
	t.Helper()
	s := &Server{records: map[string][]netip.Addr{}, cnames: map[string]string{}}
	for n, ips := range records {
		s.Set(n, ips...)
	}
	var (
		pc  net.PacketConn
		ln  net.Listener
		err error
	)
	// Find a port free for both UDP and TCP.
	for range 20 {
		pc, err = net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ln, err = net.Listen("tcp4", pc.LocalAddr().String())
		if err == nil {
			break
		}
		pc.Close()
	}
	if err != nil {
		t.Fatalf("dnstest: no free port: %v", err)
	}
	s.Addr = netip.MustParseAddrPort(pc.LocalAddr().String())
	var wg sync.WaitGroup
	wg.Go(func() { s.serveUDP(pc) })
	wg.Go(func() { s.serveTCP(ln, &wg) })
	t.Cleanup(func() { pc.Close(); ln.Close(); wg.Wait() })
	return s
}

// Set replaces the A records of name.
func (s *Server) Set(name string, ips ...netip.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.records[fqdn(name)] = ips
}

// SetCNAME makes name an alias of target.
func (s *Server) SetCNAME(name, target string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cnames[fqdn(name)] = fqdn(target)
}

func fqdn(n string) string { return strings.TrimSuffix(strings.ToLower(n), ".") + "." }

func (s *Server) reply(q []byte, udp bool) []byte {
	s.Queries.Add(1)
	var m dnsmessage.Message
	if err := m.Unpack(q); err != nil || len(m.Questions) != 1 {
		return nil
	}
	r := dnsmessage.Message{Header: dnsmessage.Header{ID: m.Header.ID, Response: true, Authoritative: true, RecursionDesired: m.Header.RecursionDesired}, Questions: m.Questions}
	if udp && s.TruncateUDP.Load() {
		r.Header.Truncated = true
		b, _ := r.Pack()
		return b
	}
	qn := m.Questions[0]
	name := strings.ToLower(qn.Name.String())
	s.mu.Lock()
	defer s.mu.Unlock()
	if target, ok := s.cnames[name]; ok {
		r.Answers = append(r.Answers, dnsmessage.Resource{
			Header: dnsmessage.ResourceHeader{Name: qn.Name, Class: dnsmessage.ClassINET, TTL: 60},
			Body:   &dnsmessage.CNAMEResource{CNAME: dnsmessage.MustNewName(target)},
		})
		name = target
	}
	ips, ok := s.records[name]
	if !ok {
		r.Header.RCode = dnsmessage.RCodeNameError
		r.Answers = nil
	} else if qn.Type == dnsmessage.TypeA {
		for _, ip := range ips {
			r.Answers = append(r.Answers, dnsmessage.Resource{
				Header: dnsmessage.ResourceHeader{Name: dnsmessage.MustNewName(name), Class: dnsmessage.ClassINET, TTL: 60},
				Body:   &dnsmessage.AResource{A: ip.As4()},
			})
		}
		// An unrelated record that a careless forwarder would pass on.
		r.Answers = append(r.Answers, dnsmessage.Resource{
			Header: dnsmessage.ResourceHeader{Name: dnsmessage.MustNewName("unrelated.example."), Class: dnsmessage.ClassINET, TTL: 60},
			Body:   &dnsmessage.AResource{A: [4]byte{192, 0, 2, 99}},
		})
	}
	b, _ := r.Pack()
	return b
}

func (s *Server) serveUDP(pc net.PacketConn) {
	buf := make([]byte, 4096)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		if r := s.reply(buf[:n], true); r != nil {
			pc.WriteTo(r, from)
		}
	}
}

func (s *Server) serveTCP(ln net.Listener, wg *sync.WaitGroup) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		wg.Go(func() {
			defer c.Close()
			var l [2]byte
			for {
				if _, err := io.ReadFull(c, l[:]); err != nil {
					return
				}
				q := make([]byte, binary.BigEndian.Uint16(l[:]))
				if _, err := io.ReadFull(c, q); err != nil {
					return
				}
				r := s.reply(q, false)
				out := binary.BigEndian.AppendUint16(nil, uint16(len(r)))
				if _, err := c.Write(append(out, r...)); err != nil {
					return
				}
			}
		})
	}
}
