// Package secrets is agentkernel's vault of named secrets (API keys,
// tokens) and the syntax by which a sandbox binds one to a host.
//
// A Vault keeps every value encrypted at rest with AES-256-GCM under a
// random key in a 0600 file beside it (vault.key), each value
// authenticated together with its name so that ciphertexts cannot be
// swapped between names. The vault file (vault.json) holds names,
// timestamps, nonces and ciphertexts, never a value in the clear. The key
// file is only as safe as the account that owns it: this protects the
// values from backups, snapshots and casual reads of the home, not from
// root on the host. (An OS keyring could hold the key instead; agentkernel
// runs as root on servers without one, so the file is what we use.)
//
// The daemon is the vault's only user: the CLI reaches it through the API on
// the daemon's Unix socket, and supervisors receive the values their
// sandbox needs over a pipe when they start (see package supervisor). A
// value is never logged, never put in argv or an environment, and never
// written in the clear.
package secrets

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// Files in the vault's directory.
const (
	KeyFile  = "vault.key"
	DataFile = "vault.json"
)

// Limits on what the vault holds.
const (
	MaxValueBytes = 64 << 10
	MaxSecrets    = 4096
	// maxFileBytes bounds vault.json when it is read.
	maxFileBytes = 64 << 20
	keyBytes     = 32
	fileVersion  = 1
)

// nameRE is what a vault entry may be called. Names that users give are
// narrower (ValidName); the daemon keeps per-sandbox entries under
// "sandbox.<id>.<NAME>".
var nameRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,199}$`)

// Info describes a secret without its value.
type Info struct {
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// entry is one sealed value in vault.json.
type entry struct {
	Nonce      []byte    `json:"nonce"`
	Ciphertext []byte    `json:"ciphertext"`
	CreatedAt  time.Time `json:"created_at"`
	UpdatedAt  time.Time `json:"updated_at"`
}

type file struct {
	Version int               `json:"version"`
	Secrets map[string]*entry `json:"secrets"`
}

// Vault is an encrypted store of named values in one directory. Open
// returns it; it holds no open file or goroutine, so it needs no Close. It
// is safe for concurrent use within one process; one process (the daemon)
// should use a vault at a time.
type Vault struct {
	dir  string
	aead cipher.AEAD

	// mu serialises reads and writes of vault.json.
	mu sync.Mutex
}

// Open opens the vault in dir, creating the directory (0700) and a fresh
// key (0600) if there is none. An existing key must be a regular file of
// the right size that only its owner can read.
func Open(dir string) (*Vault, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("secrets: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("secrets: %w", err)
	}
	key, err := loadOrCreateKey(filepath.Join(dir, KeyFile))
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("secrets: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("secrets: %w", err)
	}
	return &Vault{dir: dir, aead: aead}, nil
}

func loadOrCreateKey(p string) ([]byte, error) {
	f, err := os.OpenFile(p, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if errors.Is(err, fs.ErrNotExist) {
		key := make([]byte, keyBytes)
		if _, err := io.ReadFull(rand.Reader, key); err != nil {
			return nil, fmt.Errorf("secrets: generating the vault key: %w", err)
		}
		if err := writeAtomic(p, key, 0o600); err != nil {
			return nil, fmt.Errorf("secrets: writing the vault key: %w", err)
		}
		return key, nil
	}
	if err != nil {
		return nil, fmt.Errorf("secrets: opening the vault key: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o077 != 0 || fi.Size() != keyBytes {
		return nil, fmt.Errorf("%w: secrets: %s must be a %d-byte file readable by its owner only (mode %v, %d bytes)",
			errdefs.ErrFailedPrecondition, p, keyBytes, fi.Mode(), fi.Size())
	}
	key := make([]byte, keyBytes)
	if _, err := io.ReadFull(f, key); err != nil {
		return nil, fmt.Errorf("secrets: reading the vault key: %w", err)
	}
	return key, nil
}

// checkName validates a vault entry's name.
func checkName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("%w: invalid secret name %q", errdefs.ErrInvalidArgument, name)
	}
	return nil
}

// aad binds a ciphertext to its name.
func aad(name string) []byte { return []byte("agentkernel-vault-v1\x00" + name) }

// Set stores value under name, replacing any earlier value.
func (v *Vault) Set(name, value string) (Info, error) {
	if err := checkName(name); err != nil {
		return Info{}, err
	}
	if value == "" || len(value) > MaxValueBytes {
		return Info{}, fmt.Errorf("%w: secret %s: the value must be 1 to %d bytes", errdefs.ErrInvalidArgument, name, MaxValueBytes)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	f, err := v.load()
	if err != nil {
		return Info{}, err
	}
	e := f.Secrets[name]
	now := time.Now().UTC()
	if e == nil {
		if len(f.Secrets) >= MaxSecrets {
			return Info{}, fmt.Errorf("%w: the vault holds %d secrets already", errdefs.ErrTooLarge, len(f.Secrets))
		}
		e = &entry{CreatedAt: now}
		f.Secrets[name] = e
	}
	e.Nonce = make([]byte, v.aead.NonceSize())
	if _, err := io.ReadFull(rand.Reader, e.Nonce); err != nil {
		return Info{}, err
	}
	e.Ciphertext = v.aead.Seal(nil, e.Nonce, []byte(value), aad(name))
	e.UpdatedAt = now
	if err := v.save(f); err != nil {
		return Info{}, err
	}
	return Info{Name: name, CreatedAt: e.CreatedAt, UpdatedAt: e.UpdatedAt}, nil
}

// Get returns the value of name; a missing one is errdefs.ErrNotFound.
func (v *Vault) Get(name string) (string, error) {
	if err := checkName(name); err != nil {
		return "", err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	f, err := v.load()
	if err != nil {
		return "", err
	}
	e := f.Secrets[name]
	if e == nil {
		return "", fmt.Errorf("%w: no secret named %q", errdefs.ErrNotFound, name)
	}
	if len(e.Nonce) != v.aead.NonceSize() {
		return "", fmt.Errorf("%w: secret %s is damaged", errdefs.ErrFailedPrecondition, name)
	}
	pt, err := v.aead.Open(nil, e.Nonce, e.Ciphertext, aad(name))
	if err != nil {
		return "", fmt.Errorf("%w: secret %s does not decrypt with this vault's key", errdefs.ErrFailedPrecondition, name)
	}
	return string(pt), nil
}

// List returns every entry's Info, sorted by name. It never decrypts.
func (v *Vault) List() ([]Info, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	f, err := v.load()
	if err != nil {
		return nil, err
	}
	out := make([]Info, 0, len(f.Secrets))
	for n, e := range f.Secrets {
		out = append(out, Info{Name: n, CreatedAt: e.CreatedAt, UpdatedAt: e.UpdatedAt})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Delete removes name; a missing one is errdefs.ErrNotFound.
func (v *Vault) Delete(name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	f, err := v.load()
	if err != nil {
		return err
	}
	if f.Secrets[name] == nil {
		return fmt.Errorf("%w: no secret named %q", errdefs.ErrNotFound, name)
	}
	delete(f.Secrets, name)
	return v.save(f)
}

// load reads vault.json; a missing file is an empty vault.
func (v *Vault) load() (*file, error) {
	p := filepath.Join(v.dir, DataFile)
	fh, err := os.OpenFile(p, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return &file{Version: fileVersion, Secrets: map[string]*entry{}}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("secrets: %w", err)
	}
	defer fh.Close()
	b, err := io.ReadAll(io.LimitReader(fh, maxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("secrets: reading %s: %w", p, err)
	}
	f, err := decodeFile(b)
	if err != nil {
		return nil, fmt.Errorf("secrets: %s: %w", p, err)
	}
	return f, nil
}

// decodeFile parses and checks vault.json's contents.
func decodeFile(b []byte) (*file, error) {
	if len(b) > maxFileBytes {
		return nil, fmt.Errorf("%w: the vault file is larger than %d bytes", errdefs.ErrFailedPrecondition, maxFileBytes)
	}
	var f file
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("%w: the vault file is damaged: %v", errdefs.ErrFailedPrecondition, err)
	}
	if f.Version != fileVersion {
		return nil, fmt.Errorf("%w: vault file version %d (this agentkernel reads %d)", errdefs.ErrFailedPrecondition, f.Version, fileVersion)
	}
	if len(f.Secrets) > MaxSecrets {
		return nil, fmt.Errorf("%w: the vault file holds %d secrets (at most %d)", errdefs.ErrFailedPrecondition, len(f.Secrets), MaxSecrets)
	}
	if f.Secrets == nil {
		f.Secrets = map[string]*entry{}
	}
	for n, e := range f.Secrets {
		if checkName(n) != nil || e == nil {
			return nil, fmt.Errorf("%w: the vault file has an invalid entry %q", errdefs.ErrFailedPrecondition, n)
		}
	}
	return &f, nil
}

func (v *Vault) save(f *file) error {
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	if err := writeAtomic(filepath.Join(v.dir, DataFile), b, 0o600); err != nil {
		return fmt.Errorf("secrets: writing the vault: %w", err)
	}
	return nil
}

// writeAtomic writes data to p through a temporary file, synced, renamed.
func writeAtomic(p string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(p), ".tmp-"+filepath.Base(p)+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), p)
}
