package testutil

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// LoopDevicesUnder lists the loop devices ("loop3: /path/disk.ext4")
// whose backing file is at or below dir: a sandbox's disk still attached
// after its teardown is a leak.
func LoopDevicesUnder(dir string) []string {
	files, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
	var out []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // detached meanwhile
		}
		back := strings.TrimSuffix(strings.TrimSpace(string(b)), " (deleted)")
		if back == dir || strings.HasPrefix(back, strings.TrimSuffix(dir, "/")+"/") {
			out = append(out, filepath.Base(filepath.Dir(filepath.Dir(f)))+": "+back)
		}
	}
	sort.Strings(out)
	return out
}
