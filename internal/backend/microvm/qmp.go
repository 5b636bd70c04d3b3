package microvm

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// QMP: QEMU's JSON control protocol. A small client over the socket is
// enough for what the backend needs (capabilities, cont, quit, query-status,
// stop/cont, and events), so it is written here rather than taken from
// digitalocean/go-qemu, whose generated API covers far more than we use
// and whose repository sees little maintenance.

// maxQMPLine bounds one message from QEMU.
const maxQMPLine = 1 << 20

// qmpEvent is an asynchronous event.
type qmpEvent struct {
	Event string          `json:"event"`
	Data  json.RawMessage `json:"data"`
}

// qmp is a connected QMP client. Commands are serialised; events go to
// the events channel (dropped when nobody reads it fast enough). Close is
// idempotent and ends the reader goroutine.
type qmp struct {
	conn   net.Conn
	events chan qmpEvent

	// mu serialises commands; replies carry the result of the one
	// command in flight.
	mu      sync.Mutex
	replies chan qmpReply
	done    chan struct{} // closed when the reader ends
	err     error         // why the reader ended; written before done closes

	closeOnce sync.Once
}

type qmpReply struct {
	Return json.RawMessage `json:"return"`
	Error  *struct {
		Class string `json:"class"`
		Desc  string `json:"desc"`
	} `json:"error"`
}

// newQMP reads QEMU's greeting, negotiates capabilities and starts the
// reader.
func newQMP(ctx context.Context, conn net.Conn) (*qmp, error) {
	q := &qmp{conn: conn, events: make(chan qmpEvent, 64), replies: make(chan qmpReply, 1), done: make(chan struct{})}
	br := bufio.NewReaderSize(conn, 64<<10)
	if dl, ok := ctx.Deadline(); ok {
		conn.SetReadDeadline(dl)
	}
	line, err := readLine(br)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("qmp greeting: %w", err)
	}
	var greet struct {
		QMP *json.RawMessage `json:"QMP"`
	}
	if json.Unmarshal(line, &greet) != nil || greet.QMP == nil {
		conn.Close()
		return nil, fmt.Errorf("qmp: unexpected greeting %.100q", line)
	}
	conn.SetReadDeadline(time.Time{})
	go q.read(br)
	if _, err := q.run(ctx, "qmp_capabilities", nil); err != nil {
		q.Close()
		return nil, err
	}
	return q, nil
}

func readLine(br *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		chunk, isPrefix, err := br.ReadLine()
		if err != nil {
			return nil, err
		}
		line = append(line, chunk...)
		if len(line) > maxQMPLine {
			return nil, errors.New("qmp: message too long")
		}
		if !isPrefix {
			return line, nil
		}
	}
}

func (q *qmp) read(br *bufio.Reader) {
	defer close(q.done)
	defer close(q.events)
	for {
		line, err := readLine(br)
		if err != nil {
			q.err = err
			return
		}
		var m struct {
			qmpReply
			Event string `json:"event"`
		}
		if err := json.Unmarshal(line, &m); err != nil {
			q.err = fmt.Errorf("qmp: bad message: %w", err)
			return
		}
		if m.Event != "" {
			var ev qmpEvent
			json.Unmarshal(line, &ev)
			select {
			case q.events <- ev:
			default:
			}
			continue
		}
		select {
		case q.replies <- m.qmpReply:
		default: // a reply nobody waits for (a timed-out command)
		}
	}
}

// run executes one command and returns its "return" value.
func (q *qmp) run(ctx context.Context, cmd string, args any) (json.RawMessage, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	// Drop a stale reply of a command that timed out earlier.
	select {
	case <-q.replies:
	default:
	}
	msg := map[string]any{"execute": cmd}
	if args != nil {
		msg["arguments"] = args
	}
	b, _ := json.Marshal(msg)
	if dl, ok := ctx.Deadline(); ok {
		q.conn.SetWriteDeadline(dl)
	}
	if _, err := q.conn.Write(append(b, '\n')); err != nil {
		return nil, fmt.Errorf("qmp %s: %w", cmd, err)
	}
	select {
	case r := <-q.replies:
		if r.Error != nil {
			return nil, fmt.Errorf("qmp %s: %s: %s", cmd, r.Error.Class, r.Error.Desc)
		}
		return r.Return, nil
	case <-q.done:
		return nil, fmt.Errorf("qmp %s: connection closed: %v", cmd, q.err)
	case <-ctx.Done():
		return nil, fmt.Errorf("qmp %s: %w", cmd, ctx.Err())
	}
}

// Close closes the connection and waits for the reader. Idempotent.
func (q *qmp) Close() error {
	q.closeOnce.Do(func() { q.conn.Close() })
	<-q.done
	return nil
}
