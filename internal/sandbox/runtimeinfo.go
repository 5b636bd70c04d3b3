package sandbox

import (
	"encoding/json"
	"github.com/agentkernel/agentkernel/internal/backend"
	"io"
	"os"
	"path/filepath"
)

// runtimeAccelerator returns "accelerator" from dir/runtime.json, or "".
func runtimeAccelerator(dir string) string {
	f, err := os.Open(filepath.Join(dir, backend.RuntimeFile))
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
