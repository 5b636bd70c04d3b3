package daemon

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/agentkernel/agentkernel/internal/paths"
)

// TLS of the TCP listener: the user's certificate and key, or one
// self-signed certificate generated once under the home (serve --tls),
// valid for the loopback names and the address served, and regenerated
// when it is about to expire. Clients trust it with --cacert HOME/tls/cert.pem.

// selfSignedValidity is how long a generated certificate lasts;
// selfSignedRenew is how close to its end it is replaced.
const (
	selfSignedValidity = 365 * 24 * time.Hour
	selfSignedRenew    = 30 * 24 * time.Hour
)

// SelfSignedCertFile is where serve --tls keeps its certificate (the one
// clients trust); the key is beside it, 0600.
func SelfSignedCertFile(l paths.Layout) string { return filepath.Join(l.Home, "tls", "cert.pem") }

func selfSignedKeyFile(l paths.Layout) string { return filepath.Join(l.Home, "tls", "key.pem") }

// tlsConfig loads the certificate to serve TCP with.
func tlsConfig(l paths.Layout, certFile, keyFile string, selfSigned bool, host string) (*tls.Config, error) {
	if selfSigned {
		certFile, keyFile = SelfSignedCertFile(l), selfSignedKeyFile(l)
		if err := ensureSelfSigned(certFile, keyFile, host); err != nil {
			return nil, fmt.Errorf("--tls: %w", err)
		}
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("loading the TLS certificate: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// ensureSelfSigned keeps a valid self-signed certificate for host (and
// the loopback names) in certFile and keyFile.
func ensureSelfSigned(certFile, keyFile, host string) error {
	if ok, err := selfSignedValid(certFile, host); err != nil || ok {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(certFile), 0o700); err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "agentkernel daemon"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(selfSignedValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		// Its own issuer: clients trust exactly this certificate.
		IsCA: true, BasicConstraintsValid: true,
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	if ip := net.ParseIP(host); ip != nil && !ip.IsLoopback() && !ip.IsUnspecified() {
		tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
	}
	if h, err := os.Hostname(); err == nil && h != "" {
		tmpl.DNSNames = append(tmpl.DNSNames, h)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := writeFile0600(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb})); err != nil {
		return err
	}
	return writeFile0600(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// selfSignedValid reports whether certFile holds a certificate that lasts
// more than selfSignedRenew and covers host.
func selfSignedValid(certFile, host string) (bool, error) {
	b, err := os.ReadFile(certFile)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return false, nil
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil || time.Until(c.NotAfter) < selfSignedRenew {
		return false, nil
	}
	if ip := net.ParseIP(host); ip != nil && !ip.IsLoopback() && !ip.IsUnspecified() {
		return c.VerifyHostname(host) == nil, nil
	}
	return true, nil
}

func writeFile0600(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
