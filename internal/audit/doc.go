// Package audit keeps append-only, hash-chained audit logs: JSON lines in
// which each record carries its sequence number, the hash of the record
// before it and its own hash, so that an altered, removed, reordered or
// truncated line is found by Verify.
//
// A record's hash is sha256(prev || body), where prev is the previous
// record's hash (32 zero bytes before the first record) and body is the
// exact bytes of the record without its hash: the line as written is body
// with its closing brace replaced by `,"hash":"<hex>"}`. Verify strips that
// suffix and recomputes, so no canonical JSON is needed.
//
// A log is one file plus, once it has grown past Options.MaxSize, one
// older file (name + ".1"); the chain continues across them and every file
// starts with a record of type TypeStart or TypeRotated. Invariants and the
// threat model are in docs/AUDIT.md.
package audit
