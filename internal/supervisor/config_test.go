package supervisor

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentkernel/agentkernel/internal/daemonconf"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

func TestNetworkConfig(t *testing.T) {
	home := t.TempDir()
	cfg, err := LoadNetworkConfig(home)
	if err != nil || cfg.Resolvers != nil || cfg.Forbidden != nil || cfg.MTU != 0 || cfg.UpstreamRoots != nil {
		t.Fatalf("no file: %+v %v", cfg, err)
	}
	caFile := filepath.Join(home, "ca.pem")
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "t"}, IsCA: true,
		BasicConstraintsValid: true, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(filepath.Join(home, daemonconf.FileName), []byte(`[network]
resolvers = ["203.0.113.53", "203.0.113.54:5353"]
mtu = 9000
forbidden = ["169.254.0.0/16", "10.1.2.3/8"]
upstream_ca_files = ["`+caFile+`"]
sandbox_ca_files = ["`+caFile+`"]
`), 0o600)
	cfg, err = LoadNetworkConfig(home)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(cfg.SandboxCAs), "BEGIN CERTIFICATE") {
		t.Errorf("sandbox CAs: %q", cfg.SandboxCAs)
	}
	if _, err := ParseNetworkConfig([]byte("[network]\nsandbox_ca_files = [\"" + filepath.Join(home, daemonconf.FileName) + "\"]\n")); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("a sandbox CA file without a certificate: %v", err)
	}
	want := []netip.AddrPort{netip.MustParseAddrPort("203.0.113.53:53"), netip.MustParseAddrPort("203.0.113.54:5353")}
	if len(cfg.Resolvers) != 2 || cfg.Resolvers[0] != want[0] || cfg.Resolvers[1] != want[1] || cfg.MTU != 9000 {
		t.Errorf("resolvers %v mtu %d", cfg.Resolvers, cfg.MTU)
	}
	if len(cfg.Forbidden) != 2 || cfg.Forbidden[1] != netip.MustParsePrefix("10.0.0.0/8") || cfg.UpstreamRoots == nil {
		t.Errorf("forbidden %v roots %v", cfg.Forbidden, cfg.UpstreamRoots)
	}
	// An empty forbidden list is kept as empty (not the defaults).
	if cfg, err := ParseNetworkConfig([]byte("[network]\nforbidden = []\n")); err != nil || cfg.Forbidden == nil || len(cfg.Forbidden) != 0 {
		t.Errorf("empty forbidden: %v %v", cfg.Forbidden, err)
	}
	for in, want := range map[string]string{
		"[network]\nresolver = [\"1.1.1.1\"]\n":               "unknown key",
		"[netwrk]\n":                                          "unknown key",
		"[network]\nresolvers = [\"dns.google\"]\n":           "not an IP",
		"[network]\nmtu = 70000\n":                            "576 to 65000",
		"[network]\nforbidden = [\"10.0.0.1\"]\n":             "not a CIDR",
		"[network]\nupstream_ca_files = [\"/nonexistent\"]\n": "upstream_ca_files",
		"[network\n": "invalid argument",
	} {
		_, err := ParseNetworkConfig([]byte(in))
		if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v (want %q)", in, err, want)
		}
	}
}

func FuzzParseNetworkConfig(f *testing.F) {
	f.Add([]byte("[network]\nresolvers = [\"1.1.1.1\", \"8.8.8.8:53\"]\nmtu = 9000\nforbidden = [\"10.0.0.0/8\"]\n"))
	f.Add([]byte("[network]\nupstream_ca_files = []\n"))
	f.Add([]byte("[network\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		cfg, err := ParseNetworkConfig(b)
		if err != nil {
			return
		}
		if cfg.MTU != 0 && (cfg.MTU < 576 || cfg.MTU > 65000) {
			t.Fatalf("accepted MTU %d", cfg.MTU)
		}
		for _, r := range cfg.Resolvers {
			if !r.IsValid() || r.Port() == 0 {
				t.Fatalf("accepted resolver %v", r)
			}
		}
		for _, p := range cfg.Forbidden {
			if !p.IsValid() || p != p.Masked() {
				t.Fatalf("accepted prefix %v", p)
			}
		}
	})
}
