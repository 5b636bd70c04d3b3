package image

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/agentkernel/agentkernel/internal/image/unpack"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// Bounds on decompression.
const (
	maxZstdWindow   = 128 << 20
	progressEvery   = 100 * time.Millisecond
	blobCopyBufSize = 1 << 20
)

// layers fetches and unpacks the image's layers, Jobs at a time, and
// returns each one's size. Layers are independent directories, so their
// order matters only when they are stacked.
func (p *pull) layers(ctx context.Context, img v1.Image, descs []v1.Descriptor, diffIDs []v1.Hash) ([]int64, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sizes := make([]int64, len(descs))
	errs := make([]error, len(descs))
	sem := make(chan struct{}, p.opts.Jobs)
	var wg sync.WaitGroup
	for i := range descs {
		p.report(PullEvent{Layer: descs[i].Digest.String(), Status: StatusWaiting, Total: descs[i].Size})
	}
	for i := range descs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				errs[i] = ctx.Err()
				return
			}
			defer func() { <-sem }()
			sizes[i], errs[i] = p.layer(ctx, img, descs[i], diffIDs[i])
			if errs[i] != nil {
				cancel() // one failure stops the others
			}
		}()
	}
	wg.Wait()
	// Report the first real error, not the cancellations it caused.
	var first error
	for _, err := range errs {
		if err != nil && (first == nil || errors.Is(first, context.Canceled)) {
			first = err
		}
	}
	return sizes, first
}

// layer makes sure one layer is stored (blob) and unpacked (directory).
func (p *pull) layer(ctx context.Context, img v1.Image, d v1.Descriptor, diffID v1.Hash) (int64, error) {
	if diffID.Algorithm != "sha256" || !validLayerID(diffID.Hex) || len(diffID.Hex) != 64 {
		return 0, fmt.Errorf("%w: bad diff-id %q", errdefs.ErrInvalidArgument, diffID)
	}
	unlock := p.s.layerLocks.Lock(diffID.Hex)
	defer unlock()
	id := d.Digest.String()
	_, haveBlob := p.s.blobs.Has(d.Digest)
	dir := p.s.dir("layers", diffID.Hex)
	_, statErr := os.Stat(dir)
	haveDir := statErr == nil
	info, _ := p.s.layerInfo(diffID.Hex) // written before the layer is published
	switch {
	case haveBlob && haveDir:
		p.report(PullEvent{Layer: id, Status: StatusExists, Current: d.Size, Total: d.Size})
		return info.Size, nil
	case haveDir:
		// The unpacked layer is there, the blob is not: the blob must
		// still hash to the diff-id it claims, or an image could name any
		// layer already stored for content of its own (seen as a flaky
		// test when two layers of one image claimed one diff-id).
		if err := p.download(ctx, img, d, func(r io.Reader) error { return p.checkDiffID(r, diffID) }); err != nil {
			return 0, err
		}
		p.report(PullEvent{Layer: id, Status: StatusDone, Current: d.Size, Total: d.Size})
		return info.Size, nil
	case haveBlob:
		p.report(PullEvent{Layer: id, Status: StatusExtracting, Total: d.Size})
		f, err := p.s.blobs.Open(d.Digest)
		if err != nil {
			return 0, err
		}
		defer f.Close()
		size, err := p.unpack(ctx, f, diffID)
		if err != nil {
			return 0, fmt.Errorf("layer %s: %w", d.Digest, err)
		}
		p.report(PullEvent{Layer: id, Status: StatusDone, Current: d.Size, Total: d.Size})
		return size, nil
	}
	// Neither: download and unpack in one pass.
	var size int64
	err := p.download(ctx, img, d, func(r io.Reader) error {
		var err error
		size, err = p.unpack(ctx, r, diffID)
		return err
	})
	if err != nil {
		return 0, err
	}
	p.report(PullEvent{Layer: id, Status: StatusDone, Current: d.Size, Total: d.Size})
	return size, nil
}

// download fetches the compressed blob d into the blob store, verifying
// its size and digest. If consume is set, it reads the blob's bytes as
// they arrive (to unpack them); whatever it leaves is read too.
func (p *pull) download(ctx context.Context, img v1.Image, d v1.Descriptor, consume func(io.Reader) error) error {
	l, err := img.LayerByDigest(d.Digest)
	if err != nil {
		return p.classify(err)
	}
	rc, err := l.Compressed()
	if err != nil {
		return p.classify(err)
	}
	defer rc.Close()
	w, err := p.s.blobs.Writer(d.Digest, d.Size)
	if err != nil {
		return err
	}
	defer w.Close()
	src := &progressReader{r: rc, p: p, layer: d.Digest.String(), total: d.Size}
	tee := &teeReader{r: src, w: w}
	var cerr error
	if consume != nil {
		cerr = consume(tee)
	}
	// Read the rest even when unpacking failed, so that a corrupt blob is
	// reported as such rather than as whatever its garbage did to the
	// decompressor.
	var derr error
	if ctx.Err() == nil && tee.werr == nil {
		_, derr = io.CopyBuffer(io.Discard, tee, make([]byte, blobCopyBufSize))
	}
	switch {
	case tee.werr != nil:
		return fmt.Errorf("layer %s: %w", d.Digest, tee.werr)
	case w.Written() == d.Size && w.Verify() != nil:
		return w.Verify()
	case ctx.Err() != nil:
		return ctx.Err()
	case cerr != nil:
		return fmt.Errorf("layer %s: %w", d.Digest, cerr)
	case src.err != nil:
		return fmt.Errorf("layer %s: %w", d.Digest, p.classify(src.err))
	case derr != nil:
		return fmt.Errorf("layer %s: %w", d.Digest, derr)
	}
	if err := w.Commit(); err != nil {
		return err
	}
	p.addCreated(blobKey(d.Digest.String()))
	return nil
}

// teeReader is io.TeeReader that remembers a failed write (to tell a full
// disk from a bad stream).
type teeReader struct {
	r    io.Reader
	w    io.Writer
	werr error
}

func (t *teeReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if n > 0 {
		if _, werr := t.w.Write(p[:n]); werr != nil {
			t.werr = werr
			return n, werr
		}
	}
	return n, err
}

// checkDiffID decompresses r and checks it against diffID without
// unpacking it.
func (p *pull) checkDiffID(r io.Reader, diffID v1.Hash) error {
	dr, closeDR, err := decompressLayer(r)
	if err != nil {
		return err
	}
	defer closeDR()
	h := sha256.New()
	// The tar stream holds the files' bytes (at most MaxBytes) plus
	// headers and padding: 4x bounds a decompression bomb's CPU.
	var src io.Reader = dr
	limit := 4*p.s.limits.MaxBytes + 64<<20
	if p.s.limits.MaxBytes > 0 {
		src = io.LimitReader(dr, limit+1)
	}
	n, err := io.Copy(h, src)
	if err != nil {
		return err
	}
	if p.s.limits.MaxBytes > 0 && n > limit {
		return fmt.Errorf("%w: the layer is over %d bytes uncompressed", errdefs.ErrTooLarge, limit)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != diffID.Hex {
		return fmt.Errorf("%w: the layer's content hashes to sha256:%s, the config says %s", errdefs.ErrInvalidArgument, got, diffID)
	}
	return nil
}

// unpack decompresses r, checks it against diffID and publishes it as
// layers/<diffID hex>, returning the bytes of files in it.
func (p *pull) unpack(ctx context.Context, r io.Reader, diffID v1.Hash) (int64, error) {
	dir, done, err := p.s.stagingLayer("layer-")
	if err != nil {
		return 0, err
	}
	defer done()
	dr, closeDR, err := decompressLayer(r)
	if err != nil {
		return 0, err
	}
	defer closeDR()
	h := sha256.New()
	st, err := unpack.Layer(ctx, io.TeeReader(dr, h), dir, unpack.Options{
		Shift: unpack.IDShift(p.s.shift), MaxBytes: p.s.limits.MaxBytes, MaxEntries: p.s.limits.MaxEntries})
	if err != nil {
		return 0, err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != diffID.Hex {
		return 0, fmt.Errorf("%w: the layer's content hashes to sha256:%s, the config says %s", errdefs.ErrInvalidArgument, got, diffID)
	}
	info := LayerInfo{ID: diffID.Hex, Size: st.Bytes, Entries: st.Entries, Unpacked: time.Now().UTC(), Links: st.Links}
	if err := writeJSON(p.s.dir("layerinfo", diffID.Hex+".json"), info); err != nil {
		return 0, err
	}
	final := p.s.dir("layers", diffID.Hex)
	if err := os.Rename(dir, final); err != nil {
		return 0, fmt.Errorf("publishing layer %s: %w", diffID, err)
	}
	p.addCreated(layerKey(diffID.Hex))
	return st.Bytes, nil
}

// decompressLayer returns r decompressed according to its first bytes (gzip,
// zstd, or a plain tar), and a function that releases the decoder.
func decompressLayer(r io.Reader) (io.Reader, func(), error) {
	br := bufio.NewReaderSize(r, 64<<10)
	magic, _ := br.Peek(4)
	switch {
	case len(magic) >= 2 && magic[0] == 0x1f && magic[1] == 0x8b:
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: bad gzip stream: %v", errdefs.ErrInvalidArgument, err)
		}
		return zr, func() { zr.Close() }, nil
	case len(magic) == 4 && magic[0] == 0x28 && magic[1] == 0xb5 && magic[2] == 0x2f && magic[3] == 0xfd:
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(maxZstdWindow), zstd.WithDecoderLowmem(true))
		if err != nil {
			return nil, nil, fmt.Errorf("%w: bad zstd stream: %v", errdefs.ErrInvalidArgument, err)
		}
		return zr, zr.Close, nil
	}
	return br, func() {}, nil
}

// progressReader reports download progress and remembers a read error.
type progressReader struct {
	r     io.Reader
	p     *pull
	layer string
	total int64
	n     int64
	last  time.Time
	err   error
}

func (r *progressReader) Read(b []byte) (int, error) {
	n, err := r.r.Read(b)
	r.n += int64(n)
	if err != nil && err != io.EOF {
		r.err = err
	}
	if now := time.Now(); now.Sub(r.last) >= progressEvery || err == io.EOF {
		r.last = now
		r.p.report(PullEvent{Layer: r.layer, Status: StatusDownloading, Current: r.n, Total: r.total})
	}
	return n, err
}
