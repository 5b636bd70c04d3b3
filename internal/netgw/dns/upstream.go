package dns

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// exchange sends a fresh query for qn (our own ID, recursion desired) to
// each upstream in turn until one answers; a truncated UDP reply is retried
// over TCP. The sandbox's own message is never forwarded.
func (s *Server) exchange(ctx context.Context, qn dnsmessage.Question) (*dnsmessage.Message, error) {
	var idb [2]byte
	if _, err := rand.Read(idb[:]); err != nil {
		return nil, err
	}
	q := dnsmessage.Message{
		Header:    dnsmessage.Header{ID: binary.BigEndian.Uint16(idb[:]), RecursionDesired: true},
		Questions: []dnsmessage.Question{qn},
	}
	var opt dnsmessage.Resource
	opt.Header.Name = dnsmessage.MustNewName(".")
	if err := opt.Header.SetEDNS0(1232, dnsmessage.RCodeSuccess, false); err != nil {
		return nil, err
	}
	opt.Body = &dnsmessage.OPTResource{}
	q.Additionals = []dnsmessage.Resource{opt}
	msg, err := q.Pack()
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, up := range s.cfg.Upstreams {
		r, err := s.exchangeOne(ctx, up, "udp", msg, &q)
		if err == nil && r.Header.Truncated {
			r, err = s.exchangeOne(ctx, up, "tcp", msg, &q)
		}
		if err == nil {
			return r, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", up, err))
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

func (s *Server) exchangeOne(ctx context.Context, up netip.AddrPort, network string, msg []byte, q *dnsmessage.Message) (*dnsmessage.Message, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, network, up.String())
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	var reply []byte
	if network == "tcp" {
		if err := writeTCPMsg(c, msg); err != nil {
			return nil, err
		}
		if reply, err = readTCPMsg(c); err != nil {
			return nil, err
		}
	} else {
		if _, err := c.Write(msg); err != nil {
			return nil, err
		}
		buf := make([]byte, 65535)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return nil, err
			}
			// A stray datagram with another ID is ignored, not an error.
			if n >= 2 && binary.BigEndian.Uint16(buf) == q.Header.ID {
				reply = buf[:n]
				break
			}
		}
	}
	var r dnsmessage.Message
	if err := r.Unpack(reply); err != nil {
		return nil, fmt.Errorf("dns: upstream reply: %w", err)
	}
	if !r.Header.Response || r.Header.ID != q.Header.ID || len(r.Questions) != 1 ||
		r.Questions[0].Type != q.Questions[0].Type ||
		!equalFoldName(r.Questions[0].Name, q.Questions[0].Name) {
		return nil, errMismatch
	}
	return &r, nil
}

func equalFoldName(a, b dnsmessage.Name) bool {
	x, y := a.String(), b.String()
	if len(x) != len(y) {
		return false
	}
	for i := 0; i < len(x); i++ {
		if lower(x[i]) != lower(y[i]) {
			return false
		}
	}
	return true
}

func lower(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// readTCPMsg reads one length-prefixed DNS message (RFC 1035 4.2.2).
func readTCPMsg(r io.Reader) ([]byte, error) {
	var l [2]byte
	if _, err := io.ReadFull(r, l[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint16(l[:])
	if n == 0 {
		return nil, errors.New("dns: empty TCP message")
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, err
	}
	return b, nil
}

func writeTCPMsg(w io.Writer, msg []byte) error {
	if len(msg) > 65535 {
		return errors.New("dns: message too long for TCP")
	}
	b := make([]byte, 2+len(msg))
	binary.BigEndian.PutUint16(b, uint16(len(msg)))
	copy(b[2:], msg)
	_, err := w.Write(b)
	return err
}
