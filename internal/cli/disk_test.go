package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/agentkernel/agentkernel/pkg/api"
)

func TestDiskStatusText(t *testing.T) {
	full := api.SandboxInfo{Name: "a", Status: api.StatusRunning, DiskMB: 64,
		Disk: &api.DiskUsage{SizeMB: 55, UsedMB: 55, Full: true}}
	if got := statusText(full); got != "running (disk full)" {
		t.Errorf("status of a full disk: %q", got)
	}
	if got := diskText(full); !strings.Contains(got, "64 MiB (55 MiB used, 0 MiB free)") || !strings.Contains(got, "No space left on device") {
		t.Errorf("disk of a full disk: %q", got)
	}
	roomy := api.SandboxInfo{Status: api.StatusRunning, DiskMB: 64, Disk: &api.DiskUsage{SizeMB: 55, UsedMB: 1, AvailMB: 54}}
	if statusText(roomy) != "running" || strings.Contains(diskText(roomy), "full") {
		t.Errorf("a roomy disk: %q %q", statusText(roomy), diskText(roomy))
	}
	if got := diskText(api.SandboxInfo{Status: api.StatusStopped, DiskMB: 64}); got != "64 MiB" {
		t.Errorf("a stopped sandbox's disk: %q", got)
	}
	if got := diskText(api.SandboxInfo{}); !strings.Contains(got, "not limited") {
		t.Errorf("an old sandbox's disk: %q", got)
	}
	var b bytes.Buffer
	if err := printSandboxTable(&b, time.Now(), []api.SandboxInfo{full}); err != nil || !strings.Contains(b.String(), "running (disk full)") {
		t.Errorf("list: %q %v", b.String(), err)
	}
}
