package backend

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// SpecFile is the name of the spec in a sandbox's state directory. The
// daemon writes it once, before the sandbox's supervisor starts; the
// supervisor and cleanup paths only read it.
const SpecFile = "spec.json"

// WriteSpec writes spec to dir/spec.json atomically.
func WriteSpec(dir string, spec *Spec) error {
	b, err := json.MarshalIndent(spec, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, ".spec.json.tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, SpecFile))
}

// ReadSpec reads dir/spec.json.
func ReadSpec(dir string) (*Spec, error) {
	b, err := os.ReadFile(filepath.Join(dir, SpecFile))
	if err != nil {
		return nil, err
	}
	var spec Spec
	if err := json.Unmarshal(b, &spec); err != nil {
		return nil, fmt.Errorf("decoding %s in %s: %w", SpecFile, dir, err)
	}
	return &spec, nil
}

// RuntimeFile is an optional file a backend writes to a sandbox's state
// directory while the sandbox runs (and removes when it stops), to tell the
// daemon facts only the running sandbox knows. Today: the microvm
// backend's accelerator.
const RuntimeFile = "runtime.json"
