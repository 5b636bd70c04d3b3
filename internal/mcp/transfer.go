package mcp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentkernel/agentkernel/internal/safetar"
)

// Directory transfers between the host and a sandbox, as tar streams:
// sandbox_upload_dir copies a host directory into a sandbox directory,
// sandbox_download_dir a sandbox directory into a host directory, each
// keeping the source's name (like `cp -r SRC DESTDIR/`). Host paths are
// held to Policy.HostDirs; what comes out of a sandbox is extracted with
// safetar, so no entry lands outside the destination.

// MaxDownloadBytes bounds the regular files one sandbox_download_dir
// writes on the host.
const MaxDownloadBytes = 1 << 30

type (
	UploadInput struct {
		Name     string `json:"name" jsonschema:"sandbox name"`
		HostPath string `json:"host_path" jsonschema:"absolute host directory to copy; it must lie in a directory the server allows"`
		Path     string `json:"path" jsonschema:"absolute sandbox directory to copy it into (created if missing)"`
	}
	DownloadInput struct {
		Name     string `json:"name" jsonschema:"sandbox name"`
		Path     string `json:"path" jsonschema:"absolute sandbox directory to copy"`
		HostPath string `json:"host_path" jsonschema:"absolute host directory to copy it into (created if missing); it must lie in a directory the server allows"`
	}
	TransferOutput struct {
		// Copied is where the copy is: DEST/BASE-OF-SOURCE.
		Copied string `json:"copied" jsonschema:"where the copy now is: the destination joined with the source's name"`
		Bytes  int64  `json:"bytes" jsonschema:"size of the tar stream moved"`
	}
)

// transferClient is what the transfer tools need of the daemon's API; the
// Client passed to New may implement it (pkg/client does), and without it
// these tools are not offered.
type transferClient interface {
	Mkdir(ctx context.Context, name, path string) error
	TarIn(ctx context.Context, name, dir string, r io.Reader) error
	TarOut(ctx context.Context, name, path string) (io.ReadCloser, error)
}

func (st *state) addTransferTools(s *mcp.Server) {
	tc, ok := st.c.(transferClient)
	if !ok {
		return
	}
	mcp.AddTool(s, &mcp.Tool{Name: "sandbox_upload_dir",
		Description: "Copy a host directory into a sandbox directory, keeping its name; host paths are limited to the directories the user allowed."},
		func(ctx context.Context, req *mcp.CallToolRequest, in UploadInput) (*mcp.CallToolResult, TransferOutput, error) {
			out, err := st.upload(ctx, tc, st.session(req.Session), in)
			return nil, out, err
		})
	mcp.AddTool(s, &mcp.Tool{Name: "sandbox_download_dir",
		Description: "Copy a sandbox directory into a host directory, keeping its name; host paths are limited to the directories the user allowed."},
		func(ctx context.Context, req *mcp.CallToolRequest, in DownloadInput) (*mcp.CallToolResult, TransferOutput, error) {
			out, err := st.download(ctx, tc, st.session(req.Session), in)
			return nil, out, err
		})
}

func (st *state) upload(ctx context.Context, tc transferClient, s *session, in UploadInput) (TransferOutput, error) {
	src, err := st.policy.hostPath(in.HostPath)
	if err != nil {
		return TransferOutput{}, err
	}
	if fi, err := os.Stat(src); err != nil {
		return TransferOutput{}, fmt.Errorf("host path %s: %w", in.HostPath, err)
	} else if !fi.IsDir() {
		return TransferOutput{}, fmt.Errorf("host path %s is not a directory", in.HostPath)
	}
	if !path.IsAbs(in.Path) {
		return TransferOutput{}, errors.New("path must be an absolute sandbox path")
	}
	if err := st.access(ctx, s, in.Name); err != nil {
		return TransferOutput{}, err
	}
	if err := tc.Mkdir(ctx, in.Name, in.Path); err != nil {
		return TransferOutput{}, err
	}
	pr, pw := io.Pipe()
	counted := &countingWriter{w: pw}
	wrote := make(chan error, 1)
	go func() {
		err := safetar.Write(ctx, counted, src)
		pw.CloseWithError(err)
		wrote <- err
	}()
	err = tc.TarIn(ctx, in.Name, in.Path, pr)
	pr.CloseWithError(errUploadEnded) // stops the writer if TarIn gave up early
	if werr := <-wrote; err != nil && werr != nil && !errors.Is(werr, errUploadEnded) && !errors.Is(err, werr) {
		return TransferOutput{}, fmt.Errorf("%w (reading the host directory: %v)", err, werr)
	}
	if err != nil {
		return TransferOutput{}, err
	}
	return TransferOutput{Copied: path.Join(in.Path, filepath.Base(src)), Bytes: counted.n}, nil
}

func (st *state) download(ctx context.Context, tc transferClient, s *session, in DownloadInput) (TransferOutput, error) {
	if !path.IsAbs(in.Path) || path.Clean(in.Path) == "/" {
		return TransferOutput{}, errors.New("path must be an absolute sandbox directory other than /")
	}
	dest, err := st.policy.hostPath(in.HostPath)
	if err != nil {
		return TransferOutput{}, err
	}
	if err := st.access(ctx, s, in.Name); err != nil {
		return TransferOutput{}, err
	}
	if err := os.MkdirAll(dest, 0o755); err != nil {
		return TransferOutput{}, err
	}
	// Check again now that it exists: a link swapped in meanwhile would
	// resolve elsewhere.
	if again, err := st.policy.hostPath(dest); err != nil || again != dest {
		return TransferOutput{}, fmt.Errorf("host path %s changed while it was checked", in.HostPath)
	}
	rc, err := tc.TarOut(ctx, in.Name, path.Clean(in.Path))
	if err != nil {
		return TransferOutput{}, err
	}
	defer rc.Close()
	counted := &countingReader{r: rc}
	if err := safetar.Extract(ctx, dest, counted, safetar.Options{MaxBytes: MaxDownloadBytes}); err != nil {
		return TransferOutput{}, err
	}
	return TransferOutput{Copied: filepath.Join(dest, path.Base(in.Path)), Bytes: counted.n}, nil
}

var errUploadEnded = errors.New("the upload ended")

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
