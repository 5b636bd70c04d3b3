package testutil

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
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

// LoopDevicesLeft is LoopDevicesUnder after waiting (at most 3 s) for the
// list to empty: the kernel detaches an autoclear loop device from a work
// queue after its last unmount, so right after a teardown it may still be
// listed.
func LoopDevicesLeft(dir string) []string {
	deadline := time.Now().Add(3 * time.Second)
	for {
		left := LoopDevicesUnder(dir)
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(20 * time.Millisecond)
	}
}
