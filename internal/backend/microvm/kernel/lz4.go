package kernel

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// The LZ4 "legacy" frame, which the Linux build uses for LZ4 kernels: a
// magic number, then blocks each preceded by their compressed size (LE
// uint32) that decompress to at most 8 MiB, and (appended by the kernel's
// build) the uncompressed size as a final LE uint32. A frame may restart
// with the magic number in the middle.
const (
	lz4LegacyMagic    = 0x184C2102
	lz4LegacyBlockMax = 8 << 20
	// lz4MaxCompressed is LZ4_compressBound(8 MiB): a larger block size is
	// corrupt.
	lz4MaxCompressed = lz4LegacyBlockMax + lz4LegacyBlockMax/255 + 16
)

var errLZ4Corrupt = errors.New("lz4: corrupt input")

// DecompressLZ4Legacy decompresses a legacy LZ4 frame of at most limit
// bytes of output. A trailing 4-byte size, if present, must match the
// output length.
func DecompressLZ4Legacy(src []byte, limit int) ([]byte, error) {
	if len(src) < 4 || binary.LittleEndian.Uint32(src) != lz4LegacyMagic {
		return nil, fmt.Errorf("lz4: not a legacy LZ4 frame")
	}
	src = src[4:]
	var out []byte
	for len(src) > 0 {
		if len(src) < 4 {
			return nil, fmt.Errorf("%w: %d stray bytes at the end", errLZ4Corrupt, len(src))
		}
		n := binary.LittleEndian.Uint32(src)
		if len(src) == 4 { // the kernel's size trailer
			if int(n) != len(out) {
				return nil, fmt.Errorf("%w: trailer says %d bytes, got %d", errLZ4Corrupt, n, len(out))
			}
			break
		}
		src = src[4:]
		if n == lz4LegacyMagic {
			continue
		}
		if n == 0 || n > lz4MaxCompressed || int(n) > len(src) {
			return nil, fmt.Errorf("%w: block size %d with %d bytes left", errLZ4Corrupt, n, len(src))
		}
		var err error
		out, err = lz4Block(out, src[:n], min(limit-len(out), lz4LegacyBlockMax))
		if err != nil {
			return nil, err
		}
		src = src[n:]
	}
	return out, nil
}

// lz4Block appends the decompression of one LZ4 block to dst, producing at
// most max bytes; matches may reach back into dst's earlier blocks only
// within this block's own output, as the legacy format's blocks are
// independent.
func lz4Block(dst, src []byte, max int) ([]byte, error) {
	start := len(dst)
	i := 0
	for {
		if i >= len(src) {
			return nil, errLZ4Corrupt
		}
		token := src[i]
		i++
		lit := int(token >> 4)
		if lit == 15 {
			for {
				if i >= len(src) {
					return nil, errLZ4Corrupt
				}
				b := src[i]
				i++
				lit += int(b)
				if lit > len(src) {
					return nil, errLZ4Corrupt
				}
				if b != 255 {
					break
				}
			}
		}
		if lit > len(src)-i || len(dst)-start+lit > max {
			return nil, fmt.Errorf("%w: literal run past the end", errLZ4Corrupt)
		}
		dst = append(dst, src[i:i+lit]...)
		i += lit
		if i == len(src) {
			return dst, nil // the last sequence has literals only
		}
		if len(src)-i < 2 {
			return nil, errLZ4Corrupt
		}
		off := int(src[i]) | int(src[i+1])<<8
		i += 2
		if off == 0 || off > len(dst)-start {
			return nil, fmt.Errorf("%w: match offset %d out of range", errLZ4Corrupt, off)
		}
		ml := int(token&15) + 4
		if ml == 19 {
			for {
				if i >= len(src) {
					return nil, errLZ4Corrupt
				}
				b := src[i]
				i++
				ml += int(b)
				if ml > max {
					return nil, errLZ4Corrupt
				}
				if b != 255 {
					break
				}
			}
		}
		if len(dst)-start+ml > max {
			return nil, fmt.Errorf("%w: output over %d bytes", errLZ4Corrupt, max)
		}
		p := len(dst) - off
		for k := 0; k < ml; k++ { // byte by byte: the match may overlap its output
			dst = append(dst, dst[p+k])
		}
	}
}
