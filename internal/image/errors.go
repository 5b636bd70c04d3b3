package image

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// classify turns an error of go-containerregistry into one of our error
// classes with a message that says what to do.
func (p *pull) classify(err error) error {
	if err == nil {
		return nil
	}
	reg := p.ref.Context().RegistryStr()
	var pe *plainHTTPError
	var te *transport.Error
	var ne net.Error
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	case errors.As(err, &pe):
		return fmt.Errorf("%w: %s", errdefs.ErrPermissionDenied, pe.Error())
	case errors.As(err, &te):
		return classifyStatus(te, p.ref.Name(), reg)
	case errors.As(err, &ne), isConnError(err):
		return fmt.Errorf("%w: cannot reach registry %s: %v", errdefs.ErrUnavailable, reg, err)
	}
	return err
}

func classifyStatus(te *transport.Error, ref, reg string) error {
	has := func(codes ...transport.ErrorCode) bool {
		for _, d := range te.Errors {
			for _, c := range codes {
				if d.Code == c {
					return true
				}
			}
		}
		return false
	}
	switch {
	case te.StatusCode == http.StatusNotFound || has(transport.ManifestUnknownErrorCode, transport.NameUnknownErrorCode):
		return fmt.Errorf("%w: image %s not found in registry %s", errdefs.ErrNotFound, ref, reg)
	case te.StatusCode == http.StatusUnauthorized || te.StatusCode == http.StatusForbidden ||
		has(transport.UnauthorizedErrorCode, transport.DeniedErrorCode):
		return fmt.Errorf("%w: registry %s refused access to %s (%d: %v): the repository does not exist or needs credentials; "+
			"log in with `docker login %s` or add them to ~/.docker/config.json", errdefs.ErrPermissionDenied, reg, ref, te.StatusCode, te, reg)
	case te.StatusCode == http.StatusTooManyRequests || has(transport.TooManyRequestsErrorCode):
		return fmt.Errorf("%w: registry %s is rate-limiting pulls: %v", errdefs.ErrUnavailable, reg, te)
	case te.StatusCode >= 500:
		return fmt.Errorf("%w: registry %s failed: %v", errdefs.ErrUnavailable, reg, te)
	}
	return fmt.Errorf("registry %s: %w", reg, te)
}

func isConnError(err error) bool {
	s := err.Error()
	return strings.Contains(s, "connection refused") || strings.Contains(s, "no such host") || strings.Contains(s, "connection reset")
}
