package main

import (
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseSeccompErrno(t *testing.T) {
	got, err := parseSeccompErrno("435:38,1:5")
	if err != nil || len(got) != 2 || got[0] != (errnoRule{435, 38}) || got[1] != (errnoRule{1, 5}) {
		t.Fatalf("%v %v", got, err)
	}
	for _, bad := range []string{"", "435", "435:", ":38", "435:0", "x:38", "435:99999", "70000:1"} {
		if _, err := parseSeccompErrno(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestErrnoFilter checks the program's jumps: the arch check skips to the
// final allow, each rule's miss skips its return.
func TestErrnoFilter(t *testing.T) {
	p := errnoFilter(unix.AUDIT_ARCH_X86_64, []errnoRule{{435, 38}, {1, 5}})
	if len(p) != 8 {
		t.Fatalf("%d instructions", len(p))
	}
	if allow := 1 + 1 + int(p[1].Jf); allow != len(p)-1 || p[allow].K != unix.SECCOMP_RET_ALLOW {
		t.Errorf("arch mismatch jumps to %d", allow)
	}
	if p[3].K != 435 || p[4].K != unix.SECCOMP_RET_ERRNO|38 || p[5].K != 1 || p[6].K != unix.SECCOMP_RET_ERRNO|5 {
		t.Errorf("rules: %+v", p)
	}
}
