package mcp

import (
	"fmt"
	"unicode/utf8"
)

// Long outputs are kept whole up to the policy's limit and beyond it cut
// in the middle, with a note saying how many bytes were cut: the start of
// a build log and its last errors are what an agent needs.

// truncateMiddle keeps s whole up to max bytes; beyond that it keeps the
// head and tail and puts in the middle a note saying how many bytes were
// cut. The result, note included, is at most max bytes (for max >= 64).
// It reports whether s was cut.
func truncateMiddle(s string, max int) (string, bool) {
	if len(s) <= max {
		return s, false
	}
	return cutMiddle(len(s), s[:max], s[len(s)-max:], max), true
}

// cutMiddle is truncateMiddle of a string of total bytes (total > max)
// given only its first max bytes (head) and its last max bytes (tail).
func cutMiddle(total int, head, tail string, max int) string {
	// The note's length depends on the count; size it for the widest.
	noteFor := func(cut int) string {
		return fmt.Sprintf("\n[... agentkernel: %d bytes truncated ...]\n", cut)
	}
	keep := max - len(noteFor(total))
	if keep < 0 {
		keep = 0
	}
	h := keep / 2
	// t is where the kept tail starts, as an index into tail.
	t := len(tail) - (keep - h)
	// Cut on rune boundaries so the kept text stays valid UTF-8.
	for h > 0 && !utf8.RuneStart(head[h]) {
		h--
	}
	for t < len(tail) && !utf8.RuneStart(tail[t]) {
		t++
	}
	return head[:h] + noteFor(total-h-(len(tail)-t)) + tail[t:]
}

// middleBuffer collects a stream as truncateMiddle would keep it, in
// bounded memory: the first max bytes, and the last max bytes.
type middleBuffer struct {
	max   int
	head  []byte
	tail  []byte // the bytes after head; trimmed to the last max when it passes 2*max
	total int
}

func (b *middleBuffer) Write(p []byte) (int, error) {
	n := len(p)
	b.total += n
	if room := b.max - len(b.head); room > 0 {
		take := min(room, len(p))
		b.head = append(b.head, p[:take]...)
		p = p[take:]
	}
	b.tail = append(b.tail, p...)
	if len(b.tail) > 2*b.max {
		b.tail = append(b.tail[:0:0], b.tail[len(b.tail)-b.max:]...)
	}
	return n, nil
}

// String is the stream cut as truncateMiddle(whole, max) would cut it,
// and whether it was cut.
func (b *middleBuffer) String() (string, bool) {
	if b.total <= b.max {
		return string(b.head), false
	}
	last := b.tail
	if len(last) < b.max {
		// Nothing was dropped yet: head and tail are the whole stream.
		whole := append(append([]byte(nil), b.head...), b.tail...)
		last = whole[len(whole)-b.max:]
	} else {
		last = last[len(last)-b.max:]
	}
	return cutMiddle(b.total, string(b.head), string(last), b.max), true
}
