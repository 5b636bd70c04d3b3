package audit

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Broken is the first record of a log that does not verify. Verify
// returns it as its error.
type Broken struct {
	File string `json:"file"`
	// Line is 1-based within File.
	Line int `json:"line"`
	// Seq is the record's seq when it could be read, else the seq
	// expected there.
	Seq    int64  `json:"seq"`
	Reason string `json:"reason"`
}

func (b *Broken) Error() string {
	return fmt.Sprintf("audit log broken at %s line %d (seq %d): %s", filepath.Base(b.File), b.Line, b.Seq, b.Reason)
}

// Result says what Verify checked.
type Result struct {
	Records int   `json:"records"`
	First   int64 `json:"first_seq"`
	Last    int64 `json:"last_seq"`
	// LastHash is the hash of the last record.
	LastHash string   `json:"last_hash"`
	Files    []string `json:"files"`
}

// Verify checks the files of one log, oldest first: every line a record
// whose hash matches, seq rising by one, each prev the hash of the record
// before, and each file starting with TypeStart (seq 1) or TypeRotated (the
// first file's prev cannot be checked: the file before it is gone). A
// non-nil want is the live writer's Head, taken before: a log ending
// before it lost its tail, and lines after it (written since, maybe not
// completely) are not read. The first problem is returned as a *Broken;
// other errors are I/O.
func Verify(want *Head, files ...string) (Result, error) {
	v := verifier{res: Result{Files: files}}
	if want != nil {
		v.stopAt = want.Seq
	}
	for _, file := range files {
		f, err := os.Open(file)
		if err != nil {
			return v.res, err
		}
		err = v.file(file, f)
		f.Close()
		if err != nil {
			return v.res, err
		}
	}
	return v.finish(want)
}

// verifier is Verify's state across the files of one log.
type verifier struct {
	// stopAt, if positive, is the last seq to read.
	stopAt   int64
	res      Result
	prev     decoded
	have     bool
	lastFile string
	lastLine int
}

// file checks the lines of one file, named file, read from r.
func (v *verifier) file(file string, r io.Reader) error {
	err := scanLines(r, func(n int, line []byte, long bool) error {
		if v.stopAt > 0 && v.have && v.prev.Seq >= v.stopAt {
			return errStop
		}
		v.lastFile, v.lastLine = file, n
		expect := v.prev.Seq + 1
		bad := func(seq int64, reason string) error {
			return &Broken{File: file, Line: n, Seq: seq, Reason: reason}
		}
		if long {
			return bad(expect, "malformed: line too long")
		}
		d, err := decode(line)
		if err != nil {
			return bad(expect, err.Error())
		}
		if n == 1 && d.Type != TypeStart && d.Type != TypeRotated {
			return bad(d.Seq, fmt.Sprintf("the file starts with a %s record, not %s or %s: its head was cut off", d.Type, TypeStart, TypeRotated))
		}
		if d.Type == TypeStart && (d.Seq != 1 || d.prev != zeroHash) {
			return bad(d.Seq, "a start record that is not seq 1 after the zero hash")
		}
		if !v.have {
			if d.Type == TypeStart && n != 1 {
				return bad(d.Seq, "a start record in the middle of a file")
			}
		} else {
			switch {
			case d.Seq > expect:
				return bad(d.Seq, fmt.Sprintf("missing records: seq %d follows %d (deleted)", d.Seq, v.prev.Seq))
			case d.Seq < expect:
				return bad(d.Seq, fmt.Sprintf("out of order: seq %d follows %d", d.Seq, v.prev.Seq))
			case d.prev != v.prev.hash:
				return bad(d.Seq, "altered: prev is not the hash of the record before")
			}
		}
		v.prev, v.have = d, true
		if v.res.Records == 0 {
			v.res.First = d.Seq
		}
		v.res.Records++
		return nil
	})
	if errors.Is(err, errStop) {
		return nil
	}
	return err
}

// errStop ends a scan early.
var errStop = errors.New("stop")

// finish checks the end of the log against want, the writer's head.
func (v *verifier) finish(want *Head) (Result, error) {
	res := v.res
	if v.have {
		res.Last = v.prev.Seq
		res.LastHash = hex.EncodeToString(v.prev.hash[:])
	}
	if want != nil && want.Seq > 0 {
		switch {
		case res.Last < want.Seq:
			return res, &Broken{File: v.lastFile, Line: v.lastLine + 1, Seq: res.Last + 1,
				Reason: fmt.Sprintf("truncated: the log ends at seq %d, its writer has written up to %d", res.Last, want.Seq)}
		case res.Last == want.Seq && res.LastHash != want.Hash:
			return res, &Broken{File: v.lastFile, Line: v.lastLine, Seq: res.Last, Reason: "altered: the last record is not the one its writer wrote"}
		}
	}
	return res, nil
}

// scanLines calls fn with each line of r (without its newline), numbered
// from 1; a line longer than MaxLine is passed truncated with long set. An
// incomplete last line is passed as it is (decode rejects it).
func scanLines(r io.Reader, fn func(n int, line []byte, long bool) error) error {
	br := bufio.NewReaderSize(r, 64<<10)
	var buf []byte
	n := 0
	for {
		chunk, err := br.ReadSlice('\n')
		buf = append(buf, chunk...)
		if errors.Is(err, bufio.ErrBufferFull) {
			if len(buf) > MaxLine+1 {
				// Skip the rest of the line.
				for errors.Is(err, bufio.ErrBufferFull) {
					_, err = br.ReadSlice('\n')
				}
				n++
				if ferr := fn(n, buf[:MaxLine], true); ferr != nil {
					return ferr
				}
				buf = buf[:0]
				if err != nil && !errors.Is(err, io.EOF) {
					return err
				}
				if err != nil {
					return nil
				}
			}
			continue
		}
		if len(buf) > 0 {
			n++
			line := bytes.TrimSuffix(buf, []byte("\n"))
			if ferr := fn(n, line, len(line) > MaxLine); ferr != nil {
				return ferr
			}
		}
		buf = buf[:0]
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// Record is one record as Read returns it: its header and its line.
type Record struct {
	Header
	// Line is the record as written (a JSON object).
	Line []byte
}

// Read calls fn with each record of the files, oldest first, skipping
// lines that are not records (Verify is the check; Read is for showing).
// fn returning false stops the reading.
func Read(fn func(Record) bool, files ...string) error {
	for _, file := range files {
		f, err := os.Open(file)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		more, err := readFrom(f, fn)
		f.Close()
		if err != nil || !more {
			return err
		}
	}
	return nil
}

// readFrom calls fn with each record read from r; more is false when fn
// stopped the reading.
func readFrom(r io.Reader, fn func(Record) bool) (more bool, err error) {
	err = scanLines(r, func(_ int, line []byte, long bool) error {
		if long {
			return nil
		}
		d, err := decode(line)
		if err != nil {
			return nil
		}
		if !fn(Record{Header: d.Header, Line: bytes.Clone(line)}) {
			return errStop
		}
		return nil
	})
	if errors.Is(err, errStop) {
		return false, nil
	}
	return err == nil, err
}
