package image

import (
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// ParseReference parses an image reference as Docker does: "python:3.12"
// is index.docker.io/library/python:3.12, a missing tag is "latest".
// Registries in insecure (a host or host:port) may be reached over plain
// HTTP; so may loopback registries (localhost, 127.0.0.0/8, ::1).
func ParseReference(s string, insecure []string) (name.Reference, error) {
	if s == "" || len(s) > 512 {
		return nil, fmt.Errorf("%w: image reference %.100q", errdefs.ErrInvalidArgument, s)
	}
	ref, err := name.ParseReference(s)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errdefs.ErrInvalidArgument, err)
	}
	if plainHTTPAllowed(ref.Context().RegistryStr(), insecure) {
		if ref, err = name.ParseReference(s, name.Insecure); err != nil {
			return nil, fmt.Errorf("%w: %v", errdefs.ErrInvalidArgument, err)
		}
	}
	return ref, nil
}

// Familiar returns the short form of ref that the store names images by:
// Docker Hub's registry and "library/" are left out, and the tag or digest
// is always there ("python:3.12", "ghcr.io/o/r:1", "localhost:5000/x:latest").
func Familiar(ref name.Reference) string {
	repo := ref.Context()
	s := repo.Name()
	if repo.RegistryStr() == name.DefaultRegistry {
		s = repo.RepositoryStr()
		if rest, ok := strings.CutPrefix(s, "library/"); ok && !strings.Contains(rest, "/") {
			s = rest
		}
	}
	switch r := ref.(type) {
	case name.Digest:
		return s + "@" + r.DigestStr()
	case name.Tag:
		return s + ":" + r.TagStr()
	}
	return s + ":" + ref.Identifier()
}

// lookupNames are the store keys name may mean, most specific first: the
// name exactly as given (imported images keep the name they were given),
// then its familiar form.
func lookupNames(n string) []string {
	out := []string{n}
	if ref, err := name.ParseReference(n); err == nil {
		if f := Familiar(ref); f != n {
			out = append(out, f)
		}
	}
	return out
}

// validStoredName accepts the names the store writes: import names
// (ValidateName) and familiar references.
func validStoredName(n string) error {
	if ValidateName(n) == nil {
		return nil
	}
	if ref, err := name.ParseReference(n); err == nil && Familiar(ref) == n {
		return nil
	}
	return fmt.Errorf("%w: bad image name %.100q", errdefs.ErrInvalidArgument, n)
}

// plainHTTPAllowed says whether registry (host or host:port) may be
// reached without TLS.
func plainHTTPAllowed(registry string, insecure []string) bool {
	host := registry
	if h, _, err := net.SplitHostPort(registry); err == nil {
		host = h
	}
	for _, r := range insecure {
		if r == registry || r == host {
			return true
		}
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// httpGuard refuses plain-HTTP requests to registries that were not
// allowed: go-containerregistry would otherwise fall back to HTTP for
// private (RFC 1918) addresses too. It sees every request, redirects
// included.
type httpGuard struct {
	base     http.RoundTripper
	insecure []string
}

func (g httpGuard) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != "https" && !plainHTTPAllowed(req.URL.Host, g.insecure) {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, &plainHTTPError{host: req.URL.Host}
	}
	return g.base.RoundTrip(req)
}

// plainHTTPError is a refused plain-HTTP request.
type plainHTTPError struct{ host string }

func (e *plainHTTPError) Error() string {
	return fmt.Sprintf("refusing to reach %s over plain HTTP; pass --insecure-registry %s if you trust the network to it", e.host, e.host)
}

func (e *plainHTTPError) Unwrap() error { return errdefs.ErrPermissionDenied }
