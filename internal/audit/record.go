package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Types of the records the log writes about itself.
const (
	// TypeStart is the first record of a new chain (seq 1).
	TypeStart = "audit_start"
	// TypeRotated starts each file after a rotation; its prev is the last
	// record of the file rotated away.
	TypeRotated = "audit_rotated"
	// TypeTornTail says the writer found an incomplete last line (a crash
	// mid-write), cut it off and resumed after the last complete record.
	TypeTornTail = "audit_torn_tail"
	// TypeDropped counts records the writer's queue had no room for.
	TypeDropped = "audit_dropped"
)

// MaxLine bounds a line of the log: the writer shrinks a larger record
// (see Writer.Append) and Verify rejects a longer line as malformed.
const MaxLine = 256 << 10

// Entry is what a caller appends: the writer adds seq, prev and hash.
type Entry struct {
	// Time defaults to the time of Append.
	Time      time.Time
	Type      string
	Sandbox   string
	SandboxID string
	// Fields, if set, must marshal to a JSON object; its keys are merged
	// into the record (keys the record reserves are dropped).
	Fields any
}

// Header is the part of a record every record has.
type Header struct {
	Seq       int64     `json:"seq"`
	Time      time.Time `json:"time"`
	Type      string    `json:"type"`
	Sandbox   string    `json:"sandbox,omitempty"`
	SandboxID string    `json:"sandbox_id,omitempty"`
	Prev      string    `json:"prev"`
	Hash      string    `json:"hash"`
}

// reserved are the keys the writer sets; Fields cannot override them.
var reserved = map[string]bool{"seq": true, "time": true, "type": true, "sandbox": true, "sandbox_id": true, "prev": true, "hash": true}

// zeroHash is the prev of a chain's first record.
var zeroHash [sha256.Size]byte

// encode returns the line (without newline) and hash of e as record seq
// after prev.
func encode(e Entry, seq int64, prev [sha256.Size]byte) ([]byte, [sha256.Size]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte('{')
	head := struct {
		Seq       int64     `json:"seq"`
		Time      time.Time `json:"time"`
		Type      string    `json:"type"`
		Sandbox   string    `json:"sandbox,omitempty"`
		SandboxID string    `json:"sandbox_id,omitempty"`
	}{seq, e.Time.UTC(), e.Type, e.Sandbox, e.SandboxID}
	hb, err := json.Marshal(head)
	if err != nil {
		return nil, zeroHash, err
	}
	buf.Write(hb[1 : len(hb)-1])
	if e.Fields != nil {
		fb, err := json.Marshal(e.Fields)
		if err != nil {
			return nil, zeroHash, err
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(fb, &m); err != nil {
			return nil, zeroHash, fmt.Errorf("audit: fields must be a JSON object: %w", err)
		}
		for k := range m {
			if reserved[k] {
				delete(m, k)
			}
		}
		if len(m) > 0 {
			fb, err = json.Marshal(m) // sorted keys
			if err != nil {
				return nil, zeroHash, err
			}
			buf.WriteByte(',')
			buf.Write(fb[1 : len(fb)-1])
		}
	}
	buf.WriteString(`,"prev":"`)
	buf.WriteString(hex.EncodeToString(prev[:]))
	buf.WriteString(`"}`)
	body := buf.Bytes()
	sum := chain(prev, body)
	line := append(body[:len(body)-1:len(body)-1], []byte(`,"hash":"`+hex.EncodeToString(sum[:])+`"}`)...)
	return line, sum, nil
}

func chain(prev [sha256.Size]byte, body []byte) [sha256.Size]byte {
	h := sha256.New()
	h.Write(prev[:])
	h.Write(body)
	var out [sha256.Size]byte
	h.Sum(out[:0])
	return out
}

// hashSuffixLen is len(`,"hash":"` + 64 hex + `"}`).
const hashSuffixLen = 9 + 2*sha256.Size + 2

// decoded is a parsed line: its header and the hash it claims.
type decoded struct {
	Header
	hash, prev [sha256.Size]byte
	body       []byte
}

// decode parses and checks one line on its own: the hash suffix, the
// header, and that the claimed hash matches the body and the record's own
// prev. Chain links (seq and prev against the previous record) are the
// caller's.
func decode(line []byte) (decoded, error) {
	var d decoded
	if len(line) > MaxLine {
		return d, errors.New("malformed: line too long")
	}
	if len(line) < hashSuffixLen+2 || line[0] != '{' {
		return d, errors.New("malformed: not a record")
	}
	suf := line[len(line)-hashSuffixLen:]
	if !bytes.HasPrefix(suf, []byte(`,"hash":"`)) || !bytes.HasSuffix(suf, []byte(`"}`)) {
		return d, errors.New("malformed: no hash at the end of the line")
	}
	if _, err := hex.Decode(d.hash[:], suf[9:9+2*sha256.Size]); err != nil {
		return d, errors.New("malformed: hash is not hex")
	}
	body := make([]byte, 0, len(line)-hashSuffixLen+1)
	body = append(append(body, line[:len(line)-hashSuffixLen]...), '}')
	if err := json.Unmarshal(line, &d.Header); err != nil {
		return d, fmt.Errorf("malformed: %v", err)
	}
	// The hash parsed from JSON must be the suffix (no duplicate key).
	if d.Header.Hash != string(suf[9:9+2*sha256.Size]) {
		return d, errors.New("malformed: hash key appears twice")
	}
	if len(d.Header.Prev) != 2*sha256.Size {
		return d, errors.New("malformed: prev is not a hash")
	}
	if _, err := hex.Decode(d.prev[:], []byte(d.Header.Prev)); err != nil {
		return d, errors.New("malformed: prev is not hex")
	}
	if d.Seq < 1 {
		return d, errors.New("malformed: seq below 1")
	}
	if chain(d.prev, body) != d.hash {
		return d, errors.New("altered: hash does not match the record")
	}
	d.body = body
	return d, nil
}
