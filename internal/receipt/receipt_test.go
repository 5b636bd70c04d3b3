package receipt

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentkernel/agentkernel/pkg/api"
)

func sample() api.Receipt {
	return api.Receipt{Version: Version, Sandbox: "dev", SandboxUUID: "u", Backend: "container", Profile: "moderate",
		Image: "host", Command: []string{"sh", "-c", "echo hi; exit 2"}, ExitCode: 2,
		StdoutSHA256: Hash([]byte("hi\n")), StderrSHA256: Hash(nil), StartedAt: time.Now().UTC(), FinishedAt: time.Now().UTC()}
}

// TestVerify: a receipt verifies with its key; any change to what it says
// (command, exit code, an output hash), a signature by another key (even
// one the receipt names), or another version fails.
func TestVerify(t *testing.T) {
	dir := t.TempDir()
	key, err := LoadOrCreateKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	pub := key.Public().(ed25519.PublicKey)
	s, err := Sign(key, sample())
	if err != nil {
		t.Fatal(err)
	}
	if r, err := Verify(s, pub); err != nil || r.ExitCode != 2 {
		t.Fatalf("verify: %+v %v", r, err)
	}
	alter := func(f func(*api.Receipt)) api.SignedReceipt {
		r, _ := Decode(s)
		f(&r)
		b, _ := json.Marshal(r)
		return api.SignedReceipt{Payload: b, Signature: s.Signature, KeyID: s.KeyID}
	}
	for name, bad := range map[string]api.SignedReceipt{
		"exit code":   alter(func(r *api.Receipt) { r.ExitCode = 0 }),
		"command":     alter(func(r *api.Receipt) { r.Command = []string{"true"} }),
		"stdout hash": alter(func(r *api.Receipt) { r.StdoutSHA256 = Hash([]byte("bye\n")) }),
	} {
		if _, err := Verify(bad, pub); err == nil {
			t.Errorf("altered %s verified", name)
		}
	}
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	r, _ := Decode(s)
	r.ExitCode = 0
	resigned, _ := Sign(other, r)
	if _, err := Verify(resigned, pub); err == nil {
		t.Error("a receipt re-signed with another key verified against the trusted one")
	}
	v2 := sample()
	v2.Version = Version + 1
	s2, _ := Sign(key, v2)
	if _, err := Verify(s2, pub); err == nil {
		t.Error("a receipt of another version verified")
	}
	// The key persists; its public half is where verifiers look.
	again, err := LoadOrCreateKey(dir)
	if err != nil || !again.Equal(key) {
		t.Fatalf("reloaded key differs: %v", err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, PublicFile))
	if p, err := ParsePublicKey(string(b)); err != nil || !p.Equal(pub) {
		t.Fatalf("public key file: %v", err)
	}
	if st, _ := os.Stat(filepath.Join(dir, privateFile)); st.Mode().Perm() != 0o600 {
		t.Errorf("private key mode %v", st.Mode().Perm())
	}
	if _, err := ParsePublicKey(strings.Repeat("A", 10)); err == nil {
		t.Error("a short public key parsed")
	}
}
