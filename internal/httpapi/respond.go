package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/agentkernel/agentkernel/pkg/api"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// classError is an error whose message is exactly msg and whose class (for
// errors.Is and the HTTP status) is class.
type classError struct {
	class error
	msg   string
}

func (e *classError) Error() string { return e.msg }
func (e *classError) Unwrap() error { return e.class }

// invalidf returns an errdefs.ErrInvalidArgument error with the formatted
// message. String arguments are cut at maxEchoBytes: a hostile 10 MB name
// is not echoed whole.
func invalidf(format string, args ...any) error {
	return &classError{class: errdefs.ErrInvalidArgument, msg: fmt.Sprintf(format, boundArgs(args)...)}
}

// maxEchoBytes bounds what an error message repeats of one input;
// maxErrorBytes bounds a whole error message in a response.
const (
	maxEchoBytes  = 256
	maxErrorBytes = 4096
)

// boundArgs returns args with every string longer than maxEchoBytes cut,
// saying how long it was.
func boundArgs(args []any) []any {
	out := args
	for i, a := range args {
		if s, ok := a.(string); ok && len(s) > maxEchoBytes {
			if &out[0] == &args[0] {
				out = append([]any(nil), args...)
			}
			out[i] = fmt.Sprintf("%s… (%d bytes)", strings.ToValidUTF8(s[:maxEchoBytes], ""), len(s))
		}
	}
	return out
}

// boundMessage cuts an error message at maxErrorBytes.
func boundMessage(msg string) string {
	if len(msg) <= maxErrorBytes {
		return msg
	}
	return fmt.Sprintf("%s… (%d bytes cut)", strings.ToValidUTF8(msg[:maxErrorBytes], ""), len(msg)-maxErrorBytes)
}

// tooLargef returns an errdefs.ErrTooLarge error with the formatted message.
func tooLargef(format string, args ...any) error {
	return &classError{class: errdefs.ErrTooLarge, msg: fmt.Sprintf(format, args...)}
}

// classify gives err a class when it has none but its cause is known: an
// oversized body is ErrTooLarge, a passed deadline is ErrDeadlineExceeded.
func classify(err error) error {
	if errdefs.FromCode(errdefs.Code(err)) != nil {
		return err
	}
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return &classError{class: errdefs.ErrTooLarge, msg: fmt.Sprintf("request body exceeds the limit of %d bytes", mbe.Limit)}
	case errors.Is(err, context.DeadlineExceeded):
		return &classError{class: errdefs.ErrDeadlineExceeded, msg: err.Error()}
	}
	return err
}

// statusOf is the HTTP status and envelope code for err. It is the one place
// where errors become statuses.
func statusOf(err error) (int, string, error) {
	err = classify(err)
	return errdefs.HTTPStatus(err), errdefs.Code(err), err
}

// writeError answers with err's status and an error envelope. Unclassified
// errors (500) are logged at error level.
func (s *server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status, code, err := statusOf(err)
	if status >= 500 {
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
	}
	writeJSON(w, status, api.Envelope{Success: false, Error: boundMessage(err.Error()), Code: code})
}

// writeData answers status with a success envelope around data.
// writeExec answers a collected exec or run: 200 when the command exited
// 0, else upstream's 409 {success: false, error, exit_code, output} (so
// that upstream clients see a failure as one) with the whole response in
// data as well.
func writeExec(w http.ResponseWriter, resp api.ExecResponse, data any) {
	if resp.ExitCode == 0 {
		writeData(w, http.StatusOK, data)
		return
	}
	code, out := resp.ExitCode, resp.Output
	msg := fmt.Sprintf("command exited with code %d", code)
	if resp.Error != "" {
		msg += ": " + resp.Error
	}
	writeJSON(w, http.StatusConflict, api.Envelope{Error: msg, Code: api.CodeCommandFailed, ExitCode: &code, Output: &out, Data: data})
}

func writeData(w http.ResponseWriter, status int, data any) {
	writeJSON(w, status, api.Envelope{Success: true, Data: data})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b, _ = json.Marshal(api.Envelope{Error: "encoding the response: " + err.Error(), Code: "internal"})
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)+1))
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// decodeJSON decodes r's body into v strictly: at most s.maxBody bytes, a
// JSON Content-Type, no unknown fields, nothing after the value. An empty
// body is an error when required, else it leaves v unchanged.
func (s *server) decodeJSON(w http.ResponseWriter, r *http.Request, v any, required bool) error {
	if r.ContentLength == 0 {
		if required {
			return invalidf("request body is required")
		}
		return nil
	}
	if !isJSON(r.Header.Get("Content-Type")) {
		return invalidf("Content-Type must be application/json, not %q", r.Header.Get("Content-Type"))
	}
	body, err := limitBody(w, r, s.opts.MaxBodyBytes)
	if err != nil {
		return err
	}
	return decodeStrict(body, v, required)
}

// limitBody returns r's body bounded to limit bytes. A body declared larger
// (Content-Length) is refused before a byte is read, so that a client that
// sent "Expect: 100-continue" gets 413 instead of 100 Continue and then a
// dropped connection.
func limitBody(w http.ResponseWriter, r *http.Request, limit int64) (io.Reader, error) {
	if r.ContentLength > limit {
		return nil, tooLargef("request body of %d bytes exceeds the limit of %d bytes", r.ContentLength, limit)
	}
	return http.MaxBytesReader(w, r.Body, limit), nil
}

// decodeStrict decodes one JSON value from rd into v, refusing unknown
// fields and trailing data.
func decodeStrict(rd io.Reader, v any, required bool) error {
	dec := json.NewDecoder(rd)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) && !required {
			return nil
		}
		if errors.Is(err, io.EOF) {
			return invalidf("request body is required")
		}
		return badJSON(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if err != nil && !isSyntaxError(err) {
			return badJSON(err)
		}
		return invalidf("invalid request body: unexpected data after the JSON value")
	}
	return nil
}

func badJSON(err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return classify(err)
	}
	return invalidf("invalid request body: %v", err)
}

func isSyntaxError(err error) bool {
	var se *json.SyntaxError
	return errors.As(err, &se)
}

func isJSON(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && (mt == "application/json" || (len(mt) > 5 && mt[len(mt)-5:] == "+json"))
}

// mediaType is ct's media type without parameters, or "" when unparsable.
func mediaType(ct string) string {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return ""
	}
	return mt
}

// queryBool reads a boolean query parameter: absent, "", "0" and "false"
// are false; "1" and "true" are true; anything else is an error.
func queryBool(r *http.Request, key string) (bool, error) {
	switch v := r.URL.Query().Get(key); v {
	case "", "0", "false":
		return false, nil
	case "1", "true":
		return true, nil
	default:
		return false, invalidf("query parameter %s must be 1, true, 0 or false, not %q", key, v)
	}
}

func errorEnvelope(msg, code string) api.Envelope {
	return api.Envelope{Success: false, Error: msg, Code: code}
}
