package supervisor

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Status is what a supervisor reports about its sandbox.
type Status struct {
	// State is "running", "paused" (StatePaused) or "exited".
	State     string    `json:"state"`
	PID       int       `json:"pid"` // the supervisor's pid
	StartedAt time.Time `json:"started_at"`
	Exit      *Exit     `json:"exit,omitempty"`
	// Agent is the last probe of the guest agent (see health.go).
	Agent *AgentHealth `json:"agent,omitempty"`
}

// Exit records how a sandbox ended.
type Exit struct {
	At time.Time `json:"at"`
	// Requested is true when the sandbox ended because it was asked to stop.
	Requested bool `json:"requested"`
	// Error is why the sandbox ended on its own or failed to start.
	Error string `json:"error,omitempty"`
}

// ReadExit returns the exit record a supervisor left in dir, or nil if none.
func ReadExit(dir string) (*Exit, error) {
	b, err := os.ReadFile(filepath.Join(dir, ExitFile))
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var e Exit
	if err := json.Unmarshal(b, &e); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", ExitFile, err)
	}
	return &e, nil
}

func writeExit(dir string, e *Exit) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(dir, ExitFile), b, 0o600)
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
