package httpapi

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/agentkernel/agentkernel/pkg/api"
)

// defaultFileMode is the mode of files written without one.
const defaultFileMode = 0o644

// fileTarget returns the validated {name} and absolute {path...} of r.
func fileTarget(r *http.Request) (name, p string, err error) {
	if name, err = pathName(r); err != nil {
		return "", "", err
	}
	p, err = SandboxPath(r.PathValue("path"))
	return name, p, err
}

// parseMode parses an octal file mode ("0644", "755"); empty is the
// default.
func parseMode(s string) (uint32, error) {
	if s == "" {
		return defaultFileMode, nil
	}
	m, err := strconv.ParseUint(s, 8, 32)
	if err != nil || m > 0o7777 {
		return 0, invalidf("invalid file mode %q: use octal such as 0644", s)
	}
	return uint32(m), nil
}

// wantsRaw reports whether the request's Accept asks for raw bytes.
func wantsRaw(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		if mediaType(strings.TrimSpace(part)) == ctOctet {
			return true
		}
	}
	return false
}

func (s *server) readFile(w http.ResponseWriter, r *http.Request) {
	name, p, err := fileTarget(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	list, err := queryBool(r, "list")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if list {
		entries, err := s.svc.ListDir(r.Context(), name, p)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if entries == nil {
			entries = []api.FileInfo{}
		}
		writeData(w, http.StatusOK, entries)
		return
	}
	data, err := s.svc.ReadFile(r.Context(), name, p, s.opts.MaxBodyBytes)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if int64(len(data)) > s.opts.MaxBodyBytes {
		s.writeError(w, r, tooLargef("%s is larger than %d bytes; download it with GET /sandboxes/%s/archive", p, s.opts.MaxBodyBytes, name))
		return
	}
	if wantsRaw(r) {
		h := w.Header()
		h.Set("Content-Type", ctOctet)
		h.Set("Content-Length", strconv.Itoa(len(data)))
		h.Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(data)
		return
	}
	resp := api.FileReadResponse{Content: string(data), Encoding: "utf8", Size: int64(len(data))}
	if !utf8.Valid(data) {
		resp.Content, resp.Encoding = base64.StdEncoding.EncodeToString(data), "base64"
	}
	writeData(w, http.StatusOK, resp)
}

func (s *server) writeFile(w http.ResponseWriter, r *http.Request) {
	name, p, err := fileTarget(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	dir, err := queryBool(r, "dir")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if dir {
		if err := s.svc.Mkdir(r.Context(), name, p); err != nil {
			s.writeError(w, r, err)
			return
		}
		writeData(w, http.StatusOK, "Created directory "+p)
		return
	}
	var (
		body io.Reader
		mode uint32
		size func() int64
	)
	if mediaType(r.Header.Get("Content-Type")) == ctOctet {
		if mode, err = parseMode(r.URL.Query().Get("mode")); err != nil {
			s.writeError(w, r, err)
			return
		}
		limited, err := limitBody(w, r, s.opts.MaxBodyBytes)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		cr := &countingReader{r: limited}
		body, size = cr, func() int64 { return cr.n }
	} else {
		var req api.FileWriteRequest
		if err := s.decodeJSON(w, r, &req, true); err != nil {
			s.writeError(w, r, err)
			return
		}
		if mode, err = parseMode(req.Mode); err != nil {
			s.writeError(w, r, err)
			return
		}
		var data []byte
		switch req.Encoding {
		case "", "utf8":
			data = []byte(req.Content)
		case "base64":
			if data, err = base64.StdEncoding.DecodeString(req.Content); err != nil {
				s.writeError(w, r, invalidf("invalid base64 content: %v", err))
				return
			}
		default:
			s.writeError(w, r, invalidf("invalid encoding %q: use utf8 or base64", req.Encoding))
			return
		}
		body, size = bytes.NewReader(data), func() int64 { return int64(len(data)) }
	}
	if err := s.svc.WriteFile(r.Context(), name, p, mode, body); err != nil {
		if cr, ok := body.(*countingReader); ok && cr.err != nil {
			err = fmt.Errorf("reading the request body: %w", cr.err)
		}
		s.writeError(w, r, err)
		return
	}
	writeData(w, http.StatusOK, fmt.Sprintf("Wrote %d bytes to %s", size(), p))
}

func (s *server) deleteFile(w http.ResponseWriter, r *http.Request) {
	name, p, err := fileTarget(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	recursive, err := queryBool(r, "recursive")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if p == "/" {
		s.writeError(w, r, invalidf("refusing to delete /"))
		return
	}
	if err := s.svc.DeleteFile(r.Context(), name, p, recursive); err != nil {
		s.writeError(w, r, err)
		return
	}
	writeData(w, http.StatusOK, "Deleted "+p)
}

func (s *server) writeFiles(w http.ResponseWriter, r *http.Request) {
	name, err := pathName(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var req api.BatchFileWriteRequest
	if err := s.decodeJSON(w, r, &req, true); err != nil {
		s.writeError(w, r, err)
		return
	}
	if len(req.Files) > maxBatchFiles {
		s.writeError(w, r, invalidf("at most %d files per request", maxBatchFiles))
		return
	}
	paths := make([]string, 0, len(req.Files))
	abs := make(map[string]string, len(req.Files))
	for k := range req.Files {
		p, err := SandboxPath(k)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		paths = append(paths, k)
		abs[k] = p
	}
	sort.Strings(paths)
	for i, k := range paths {
		if err := s.svc.WriteFile(r.Context(), name, abs[k], defaultFileMode, strings.NewReader(req.Files[k])); err != nil {
			s.writeError(w, r, fmt.Errorf("after writing %d of %d files: %w", i, len(paths), err))
			return
		}
	}
	writeData(w, http.StatusOK, api.BatchFileWriteResponse{Written: len(paths)})
}

// archivePath returns the validated ?path= of an archive request.
func archivePath(r *http.Request) (string, error) {
	q := r.URL.Query()
	if !q.Has("path") {
		return "", invalidf("query parameter path is required")
	}
	return SandboxPath(q.Get("path"))
}

func (s *server) tarOut(w http.ResponseWriter, r *http.Request) {
	name, err := pathName(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	p, err := archivePath(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	lw := &lazyWriter{w: w}
	if err := s.svc.TarOut(r.Context(), name, p, lw); err != nil {
		if !lw.started {
			s.writeError(w, r, err)
			return
		}
		// The status is sent: break the response so the client sees a
		// failed transfer, not a short tar.
		s.log.Error("tar stream failed", "sandbox", name, "path", p, "err", err)
		panic(http.ErrAbortHandler)
	}
	if !lw.started {
		lw.start() // an empty answer is still a tar response
	}
}

func (s *server) tarIn(w http.ResponseWriter, r *http.Request) {
	name, err := pathName(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	p, err := archivePath(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if mt := mediaType(r.Header.Get("Content-Type")); mt != ctTar && mt != ctOctet {
		s.writeError(w, r, invalidf("Content-Type must be %s, not %q", ctTar, r.Header.Get("Content-Type")))
		return
	}
	body, err := limitBody(w, r, s.opts.MaxArchiveBytes)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.svc.TarIn(r.Context(), name, p, body); err != nil {
		s.writeError(w, r, err)
		return
	}
	writeData(w, http.StatusOK, "Extracted into "+p)
}

// lazyWriter sends the tar response header on the first write, so an
// error before any byte can still be answered as JSON.
type lazyWriter struct {
	w       http.ResponseWriter
	started bool
}

func (l *lazyWriter) start() {
	l.started = true
	l.w.Header().Set("Content-Type", ctTar)
	l.w.WriteHeader(http.StatusOK)
}

func (l *lazyWriter) Write(b []byte) (int, error) {
	if !l.started {
		l.start()
	}
	return l.w.Write(b)
}

// countingReader counts the bytes read through it and keeps the first
// read error other than EOF (an oversized body, a broken connection), so
// the answer names the cause even when the service does not wrap it.
type countingReader struct {
	r   io.Reader
	n   int64
	err error
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += int64(n)
	if err != nil && err != io.EOF && c.err == nil {
		c.err = err
	}
	return n, err
}
