// Package receipt issues and verifies signed receipts of commands run in
// sandboxes (`exec --receipt`, `run --receipt`): the daemon, which saw the
// command run, signs with an Ed25519 key kept under its home (0600), and a
// verifier checks the signature with a public key it already trusts (the
// home's, or one it was given), never with anything the receipt carries:
// a receipt re-signed with another key, or any byte of it changed (the
// command, the exit code, an output hash), fails.
package receipt

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/agentkernel/agentkernel/pkg/api"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// Version is Receipt.Version of the receipts this package issues.
const Version = 1

// Key files under a home's receipts directory.
const (
	privateFile = "key"
	PublicFile  = "key.pub"
)

// LoadOrCreateKey returns the signing key kept in dir, making one (and
// its public half, PublicFile) the first time.
func LoadOrCreateKey(dir string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(filepath.Join(dir, privateFile))
	if err == nil {
		seed, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
		if err != nil || len(seed) != ed25519.SeedSize {
			return nil, fmt.Errorf("%w: %s is not an Ed25519 seed", errdefs.ErrFailedPrecondition, filepath.Join(dir, privateFile))
		}
		return ed25519.NewKeyFromSeed(seed), nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, PublicFile), []byte(EncodePublicKey(pub)+"\n"), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, privateFile), []byte(base64.StdEncoding.EncodeToString(priv.Seed())+"\n"), 0o600); err != nil {
		return nil, err
	}
	return priv, nil
}

// EncodePublicKey is a public key as key files hold it: base64.
func EncodePublicKey(pub ed25519.PublicKey) string { return base64.StdEncoding.EncodeToString(pub) }

// ParsePublicKey reads EncodePublicKey's form.
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: not an Ed25519 public key (base64 of %d bytes)", errdefs.ErrInvalidArgument, ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(b), nil
}

// KeyID names a public key: the hex SHA-256 of its bytes.
func KeyID(pub ed25519.PublicKey) string {
	h := sha256.Sum256(pub)
	return hex.EncodeToString(h[:])
}

// Sign signs r.
func Sign(key ed25519.PrivateKey, r api.Receipt) (api.SignedReceipt, error) {
	payload, err := json.Marshal(r)
	if err != nil {
		return api.SignedReceipt{}, err
	}
	return api.SignedReceipt{Payload: payload, Signature: ed25519.Sign(key, payload),
		KeyID: KeyID(key.Public().(ed25519.PublicKey))}, nil
}

// Verify checks s with the trusted key pub and returns the receipt.
func Verify(s api.SignedReceipt, pub ed25519.PublicKey) (api.Receipt, error) {
	if !ed25519.Verify(pub, s.Payload, s.Signature) {
		return api.Receipt{}, fmt.Errorf("%w: the signature does not verify with the trusted key %s: the receipt was altered or signed by another key",
			errdefs.ErrPermissionDenied, KeyID(pub)[:16])
	}
	r, err := Decode(s)
	if err != nil {
		return api.Receipt{}, err
	}
	if r.Version != Version {
		return api.Receipt{}, fmt.Errorf("%w: receipt version %d (this agentkernel reads %d)", errdefs.ErrInvalidArgument, r.Version, Version)
	}
	return r, nil
}

// Decode reads the receipt without checking it (for `receipt show`).
func Decode(s api.SignedReceipt) (api.Receipt, error) {
	var r api.Receipt
	if err := json.Unmarshal(s.Payload, &r); err != nil {
		return r, fmt.Errorf("%w: the receipt's payload: %v", errdefs.ErrInvalidArgument, err)
	}
	return r, nil
}

// Hash is the hex SHA-256 of b, as receipts hold output hashes.
func Hash(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// Facts are what an Issuer looks up about the sandbox a command ran in.
type Facts interface {
	GetSandbox(ctx context.Context, name string) (api.SandboxInfo, error)
	SandboxNetwork(ctx context.Context, name string) (api.NetworkInfo, error)
	InspectImage(ctx context.Context, name string) (api.ImageDetails, error)
}

// Issuer makes signed receipts of commands that ran.
type Issuer struct {
	Key   ed25519.PrivateKey
	Facts Facts
}

// Run is one command that ran and its result.
type Run struct {
	Sandbox           string
	Command           []string
	Workdir, User     string
	Result            api.ExecResponse
	Started, Finished time.Time
}

// Issue signs a receipt of run.
func (is Issuer) Issue(ctx context.Context, run Run) (*api.SignedReceipt, error) {
	sb, err := is.Facts.GetSandbox(ctx, run.Sandbox)
	if err != nil {
		return nil, err
	}
	r := api.Receipt{
		Version: Version, Sandbox: sb.Name, SandboxUUID: sb.UUID, Backend: sb.Backend, Profile: sb.Profile, Image: sb.Image,
		Command: run.Command, Workdir: run.Workdir, User: run.User,
		ExitCode: run.Result.ExitCode, TimedOut: run.Result.TimedOut,
		StdoutSHA256: Hash([]byte(run.Result.Stdout)), StderrSHA256: Hash([]byte(run.Result.Stderr)),
		StartedAt: run.Started.UTC(), FinishedAt: run.Finished.UTC(),
	}
	if d, err := is.Facts.InspectImage(ctx, sb.Image); err == nil {
		r.ImageID = d.ID
	}
	if n, err := is.Facts.SandboxNetwork(ctx, run.Sandbox); err == nil {
		r.Network = n.Policy
	} else if !errors.Is(err, errdefs.ErrNotFound) {
		return nil, fmt.Errorf("reading the sandbox's policy for its receipt: %w", err)
	}
	s, err := Sign(is.Key, r)
	if err != nil {
		return nil, err
	}
	return &s, nil
}
