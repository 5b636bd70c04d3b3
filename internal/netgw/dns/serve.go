package dns

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"
)

// Limits of the serving loops.
const (
	// MaxTCPConns bounds the DNS-over-TCP connections served at once;
	// further ones are closed at once.
	MaxTCPConns = 16
	// TCPIdle is how long a DNS-over-TCP connection may sit idle.
	TCPIdle = 10 * time.Second
	// MaxTCPQueries bounds the queries answered on one TCP connection.
	MaxTCPQueries = 100
)

// ServeUDP answers queries arriving on pc until ctx is done or pc fails
// (closing pc is the other way to stop it). It waits for the queries it
// started before returning, and does not close pc.
func (s *Server) ServeUDP(ctx context.Context, pc net.PacketConn) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	stop := context.AfterFunc(ctx, func() { pc.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	buf := make([]byte, 4096)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		release, ok := s.admit()
		if !ok {
			continue
		}
		q := append([]byte(nil), buf[:n]...)
		wg.Go(func() {
			defer release()
			if r := s.handleAdmitted(ctx, q, 512); r != nil {
				pc.WriteTo(r, from)
			}
		})
	}
}

// ServeTCP answers length-prefixed queries on connections accepted from ln
// until ctx is done (which closes ln) or ln fails. It closes the
// connections it accepted and waits for them before returning.
func (s *Server) ServeTCP(ctx context.Context, ln net.Listener) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	slots := make(chan struct{}, MaxTCPConns)
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		select {
		case slots <- struct{}{}:
		default:
			c.Close()
			continue
		}
		wg.Go(func() {
			defer func() { <-slots }()
			defer c.Close()
			stopConn := context.AfterFunc(ctx, func() { c.Close() })
			defer stopConn()
			for range MaxTCPQueries {
				c.SetDeadline(time.Now().Add(TCPIdle))
				q, err := readTCPMsg(c)
				if err != nil {
					return
				}
				r := s.Handle(ctx, q, 65535)
				if r == nil || writeTCPMsg(c, r) != nil {
					return
				}
			}
		})
	}
}
