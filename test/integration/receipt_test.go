package integration

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentkernel/agentkernel/internal/receipt"
	"github.com/agentkernel/agentkernel/pkg/api"
)

// TestReceipts: run --receipt writes the daemon's signed record of the run;
// receipt verify accepts it (and the output it hashes), and refuses it once
// its exit code is altered or it is re-signed with another key.
func TestReceipts(t *testing.T) {
	requireEnv(t)
	e := shared
	dir := t.TempDir()
	file := filepath.Join(dir, "run.receipt")
	r := e.ak(t, "run", "--receipt", file, "--", "sh", "-c", "echo hi; echo oops >&2; exit 2")
	if r.code != 2 || r.stdout != "hi\n" || r.stderr != "oops\n" {
		t.Fatalf("run --receipt: %v", r)
	}
	out := filepath.Join(dir, "stdout")
	os.WriteFile(out, []byte(r.stdout), 0o644)
	if v := e.ok(t, "receipt", "verify", file, "--stdout", out); !strings.Contains(v.stdout, "verified") || !strings.Contains(v.stdout, "exit 2") {
		t.Errorf("verify: %v", v)
	}
	os.WriteFile(out, []byte("bye\n"), 0o644)
	if v := e.ak(t, "receipt", "verify", file, "--stdout", out); v.code == 0 {
		t.Errorf("verify accepted another stdout: %v", v)
	}
	show := e.ok(t, "receipt", "show", file)
	var rc api.Receipt
	if err := json.Unmarshal([]byte(show.stdout), &rc); err != nil || rc.ExitCode != 2 || rc.Image != "host" ||
		rc.Command[0] != "sh" || rc.Network == nil || rc.StdoutSHA256 != receipt.Hash([]byte("hi\n")) {
		t.Fatalf("show: %v %+v", err, rc)
	}

	b, _ := os.ReadFile(file)
	var s api.SignedReceipt
	json.Unmarshal(b, &s)
	write := func(name string, s api.SignedReceipt) string {
		p := filepath.Join(dir, name)
		b, _ := json.Marshal(s)
		os.WriteFile(p, b, 0o644)
		return p
	}
	// The exit code altered: the signature no longer holds.
	rc.ExitCode = 0
	payload, _ := json.Marshal(rc)
	altered := write("altered", api.SignedReceipt{Payload: payload, Signature: s.Signature, KeyID: s.KeyID})
	if v := e.ak(t, "receipt", "verify", altered); v.code == 0 {
		t.Errorf("an altered exit code verified: %v", v)
	}
	// Re-signed with another key, which the receipt even names: refused
	// against the trusted key; accepted only when that other key is the
	// one given.
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	forged, _ := receipt.Sign(priv, rc)
	forgedFile := write("forged", forged)
	if v := e.ak(t, "receipt", "verify", forgedFile); v.code == 0 {
		t.Errorf("a receipt signed by another key verified against the home's: %v", v)
	}
	otherKey := filepath.Join(dir, "other.pub")
	os.WriteFile(otherKey, []byte(receipt.EncodePublicKey(pub)), 0o644)
	if v := e.ak(t, "receipt", "verify", forgedFile, "--key", otherKey); v.code != 0 {
		t.Errorf("verify --key of the signer: %v", v)
	}
}
