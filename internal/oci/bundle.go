package oci

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// ConfigName is the runtime spec's file name in a bundle.
const ConfigName = "config.json"

// WriteConfig writes spec as bundleDir/config.json (0600), atomically: a
// reader sees the old file or the new one, never a torn one.
func WriteConfig(bundleDir string, spec *specs.Spec) error {
	b, err := json.MarshalIndent(spec, "", "\t")
	if err != nil {
		return fmt.Errorf("encoding %s: %w", ConfigName, err)
	}
	f, err := os.CreateTemp(bundleDir, ".config-*.json")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after a successful rename this fails harmlessly
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, filepath.Join(bundleDir, ConfigName)); err != nil {
		return fmt.Errorf("installing %s: %w", ConfigName, err)
	}
	return nil
}

// ReadConfig reads bundleDir/config.json, refusing files over 16 MiB.
func ReadConfig(bundleDir string) (*specs.Spec, error) {
	p := filepath.Join(bundleDir, ConfigName)
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Size() > 16<<20 {
		return nil, fmt.Errorf("%s is %d bytes, too large", p, fi.Size())
	}
	var s specs.Spec
	if err := json.NewDecoder(f).Decode(&s); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", p, err)
	}
	return &s, nil
}
