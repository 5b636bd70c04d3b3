package sandbox

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// SourceDir is where a create's source_url is cloned, the directory
// agents work in.
const SourceDir = "/workspace"

// Bounds of a source request.
const (
	maxSourceURL = 2048
	maxSourceRef = 256
	// sourceTimeout bounds the clone.
	sourceTimeout = 15 * time.Minute
	// maxCloneOutput bounds what of git's output an error quotes.
	maxCloneOutput = 4096
)

// sourceRefRe is what a ref may look like: a branch, a tag or a commit,
// never an option or a revision expression.
var sourceRefRe = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._/+-]*$`)

// validateSource checks a create's source_url and source_ref before
// anything is created. Only http(s) URLs are taken: the clone runs inside
// the sandbox through its gateway, under its network policy, and a URL
// with credentials would put a secret into the sandbox (bind one to the
// host with secrets instead; the gateway adds it).
func validateSource(rawURL, ref string, start bool) error {
	if rawURL == "" {
		if ref != "" {
			return fmt.Errorf("%w: source_ref without source_url", errdefs.ErrInvalidArgument)
		}
		return nil
	}
	if !start {
		return fmt.Errorf("%w: source_url is cloned by the running sandbox; it cannot be given with start=false", errdefs.ErrInvalidArgument)
	}
	if len(rawURL) > maxSourceURL || strings.ContainsFunc(rawURL, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return fmt.Errorf("%w: source_url: longer than %d bytes or with control characters", errdefs.ErrInvalidArgument, maxSourceURL)
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return fmt.Errorf("%w: source_url: %v", errdefs.ErrInvalidArgument, err)
	}
	switch {
	case u.Scheme != "https" && u.Scheme != "http":
		return fmt.Errorf("%w: source_url: only https:// and http:// URLs are cloned (not %q)", errdefs.ErrInvalidArgument, u.Scheme)
	case u.Host == "":
		return fmt.Errorf("%w: source_url: no host", errdefs.ErrInvalidArgument)
	case u.User != nil:
		return fmt.Errorf("%w: source_url: credentials in the URL would enter the sandbox; bind a secret to %s instead (secrets: [\"KEY:%s\"]), the gateway adds it", errdefs.ErrInvalidArgument, u.Hostname(), u.Hostname())
	}
	if ref == "" {
		return nil
	}
	if len(ref) > maxSourceRef || !sourceRefRe.MatchString(ref) || strings.Contains(ref, "..") ||
		strings.Contains(ref, "//") || strings.HasSuffix(ref, "/") || strings.HasSuffix(ref, ".lock") {
		return fmt.Errorf("%w: source_ref %q is not a branch, tag or commit name", errdefs.ErrInvalidArgument, ref)
	}
	return nil
}

// cloneScript clones $AK_SOURCE_URL at $AK_SOURCE_REF (a branch, a tag or,
// failing those, a commit) into $AK_SOURCE_DIR. The URL and ref reach git
// as arguments from the environment, never spliced into the script.
const cloneScript = `set -e
exec 2>&1
command -v git >/dev/null 2>&1 || { echo "the sandbox's image has no git" >&2; exit 127; }
if [ -e "$AK_SOURCE_DIR" ] && [ -n "$(ls -A "$AK_SOURCE_DIR" 2>/dev/null)" ]; then
  echo "$AK_SOURCE_DIR is not empty" >&2; exit 1
fi
if [ -z "$AK_SOURCE_REF" ]; then
  exec git clone --quiet --depth 1 -- "$AK_SOURCE_URL" "$AK_SOURCE_DIR"
fi
if git clone --quiet --depth 1 --branch "$AK_SOURCE_REF" -- "$AK_SOURCE_URL" "$AK_SOURCE_DIR" 2>/dev/null; then
  exit 0
fi
find "$AK_SOURCE_DIR" -mindepth 1 -delete 2>/dev/null || true
git init --quiet "$AK_SOURCE_DIR"
cd "$AK_SOURCE_DIR"
git remote add origin "$AK_SOURCE_URL"
if git fetch --quiet --depth 1 origin "$AK_SOURCE_REF" 2>/dev/null; then
  exec git checkout --quiet --detach FETCH_HEAD
fi
git fetch --quiet --tags origin
git checkout --quiet --detach "$AK_SOURCE_REF"
`

// cloneSource clones url at ref into SourceDir of running sandbox name,
// as its default user, through its gateway.
func (m *Manager) cloneSource(ctx context.Context, name, rawURL, ref string) error {
	p, err := m.Exec(ctx, name, ExecOptions{
		Argv: []string{"sh", "-c", cloneScript},
		Env: []string{"AK_SOURCE_URL=" + rawURL, "AK_SOURCE_REF=" + ref, "AK_SOURCE_DIR=" + SourceDir,
			"GIT_TERMINAL_PROMPT=0"}, // a server asking for credentials fails, not hangs
		Timeout: sourceTimeout,
	})
	if err != nil {
		return err
	}
	defer p.Close()
	go io.Copy(io.Discard, p.Stderr())
	out, _ := io.ReadAll(io.LimitReader(p.Stdout(), maxCloneOutput))
	io.Copy(io.Discard, p.Stdout())
	st, err := p.Wait()
	if err != nil {
		return err
	}
	if st.Code != 0 {
		msg := strings.TrimSpace(string(out))
		if msg == "" {
			msg = fmt.Sprintf("exit status %d", st.Code)
		}
		if networkTrouble(msg) {
			msg += " (the clone runs inside the sandbox: is the URL's host allowed by its network policy?)"
		}
		return fmt.Errorf("%w: cloning %s: %s", errdefs.ErrFailedPrecondition, rawURL, msg)
	}
	return nil
}

// networkTrouble reports whether git's message says it could not reach
// the server, which in a sandbox is most often its network policy.
func networkTrouble(msg string) bool {
	for _, s := range []string{"resolve host", "connect to", "Connection refused", "Connection reset", "timed out", "Recv failure"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}
