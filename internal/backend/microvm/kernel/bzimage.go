package kernel

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// maxVmlinux bounds the uncompressed kernel (Debian's cloud kernel is ~53 MB).
const maxVmlinux = 256 << 20

// ExtractVmlinux returns the uncompressed ELF kernel inside a bzImage whose
// payload is LZ4-compressed (Debian's x86 kernels). It reads the payload's
// place from the boot protocol's setup header (setup_sects at 0x1f1,
// payload_offset and payload_length at 0x248, protocol 2.08+).
func ExtractVmlinux(bz []byte) ([]byte, error) {
	if len(bz) < 0x250 || string(bz[0x202:0x206]) != "HdrS" {
		return nil, fmt.Errorf("not a bzImage (no HdrS header)")
	}
	if v := binary.LittleEndian.Uint16(bz[0x206:]); v < 0x208 {
		return nil, fmt.Errorf("bzImage boot protocol %#x is older than 2.08 (no payload fields)", v)
	}
	setup := int(bz[0x1f1])
	if setup == 0 {
		setup = 4
	}
	off := uint64(setup+1)*512 + uint64(binary.LittleEndian.Uint32(bz[0x248:]))
	n := uint64(binary.LittleEndian.Uint32(bz[0x24c:]))
	if off+n > uint64(len(bz)) || n < 8 {
		return nil, fmt.Errorf("bzImage payload [%d, +%d) outside the %d-byte file", off, n, len(bz))
	}
	payload := bz[off : off+n]
	if binary.LittleEndian.Uint32(payload) != lz4LegacyMagic {
		return nil, fmt.Errorf("bzImage payload is not LZ4 (starts % x); only LZ4 kernels are supported", payload[:4])
	}
	elf, err := DecompressLZ4Legacy(payload, maxVmlinux)
	if err != nil {
		return nil, fmt.Errorf("decompressing the kernel: %w", err)
	}
	if !bytes.HasPrefix(elf, []byte("\x7fELF\x02\x01")) {
		return nil, fmt.Errorf("decompressed kernel is not a 64-bit little-endian ELF")
	}
	return elf, nil
}
