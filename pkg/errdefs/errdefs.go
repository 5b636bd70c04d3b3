// Package errdefs defines the closed set of error classes that agentkernel
// uses across every boundary: the daemon wraps its errors in one of these with
// %w and the object's name, internal/httpapi maps each class to one HTTP status,
// and pkg/client maps the status back, so errors.Is works across the socket.
package errdefs

import (
	"errors"
	"net/http"
)

// The error classes. Wrap them, never compare strings.
var (
	ErrInvalidArgument    = errors.New("invalid argument")
	ErrNotFound           = errors.New("not found")
	ErrAlreadyExists      = errors.New("already exists")
	ErrFailedPrecondition = errors.New("failed precondition")
	ErrUnavailable        = errors.New("unavailable")
	ErrPermissionDenied   = errors.New("permission denied")
	ErrUnauthenticated    = errors.New("unauthenticated")
	ErrTooLarge           = errors.New("request too large")
	ErrNotImplemented     = errors.New("not implemented")
	ErrDeadlineExceeded   = errors.New("deadline exceeded")
)

// classes lists each class with its HTTP status and the short code carried in
// the JSON envelope's "code" field. Order matters only for documentation.
var classes = []struct {
	err    error
	status int
	code   string
}{
	{ErrInvalidArgument, http.StatusBadRequest, "invalid_argument"},
	{ErrNotFound, http.StatusNotFound, "not_found"},
	{ErrAlreadyExists, http.StatusConflict, "already_exists"},
	{ErrFailedPrecondition, http.StatusPreconditionFailed, "failed_precondition"},
	{ErrUnavailable, http.StatusServiceUnavailable, "unavailable"},
	{ErrPermissionDenied, http.StatusForbidden, "permission_denied"},
	{ErrUnauthenticated, http.StatusUnauthorized, "unauthenticated"},
	{ErrTooLarge, http.StatusRequestEntityTooLarge, "too_large"},
	{ErrNotImplemented, http.StatusNotImplemented, "not_implemented"},
	{ErrDeadlineExceeded, http.StatusGatewayTimeout, "deadline_exceeded"},
}

// HTTPStatus returns the HTTP status for err's class, or 500 for an
// unclassified error.
func HTTPStatus(err error) int {
	for _, c := range classes {
		if errors.Is(err, c.err) {
			return c.status
		}
	}
	return http.StatusInternalServerError
}

// Code returns the short code for err's class ("internal" if none).
func Code(err error) string {
	for _, c := range classes {
		if errors.Is(err, c.err) {
			return c.code
		}
	}
	return "internal"
}

// FromCode returns the class named by code, or nil if code is unknown.
func FromCode(code string) error {
	for _, c := range classes {
		if c.code == code {
			return c.err
		}
	}
	return nil
}

// FromHTTPStatus returns the class for an HTTP status, or nil.
func FromHTTPStatus(status int) error {
	for _, c := range classes {
		if c.status == status {
			return c.err
		}
	}
	return nil
}

// Remote is an error received from the daemon: its message as the daemon
// wrote it, unwrapping to the class so errors.Is works on the client side.
type Remote struct {
	Class   error // one of the Err* values, or nil when unclassified
	Message string
}

func (e *Remote) Error() string { return e.Message }

// Unwrap returns the error's class.
func (e *Remote) Unwrap() error { return e.Class }
