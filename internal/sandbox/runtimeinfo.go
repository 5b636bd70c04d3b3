package sandbox

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
)

// RuntimeFile is an optional file a backend writes to a sandbox's state
// directory while the sandbox runs (and removes when it stops), to tell the
// daemon facts only the running sandbox knows. Today: the microvm
// backend's accelerator.
const RuntimeFile = "runtime.json"

// runtimeAccelerator returns "accelerator" from dir/runtime.json, or "".
func runtimeAccelerator(dir string) string {
	f, err := os.Open(filepath.Join(dir, RuntimeFile))
	if err != nil {
		return ""
	}
	defer f.Close()
	var r struct {
		Accelerator string `json:"accelerator"`
	}
	if json.NewDecoder(io.LimitReader(f, 64<<10)).Decode(&r) != nil || len(r.Accelerator) > 16 {
		return ""
	}
	return r.Accelerator
}
