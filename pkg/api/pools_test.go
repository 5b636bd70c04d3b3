package api

import (
	"strings"
	"testing"
)

func TestParsePoolSize(t *testing.T) {
	for in, want := range map[string]PoolKey{
		"host=2":                           {Image: "host"},
		"python:3.12=2":                    {Image: "python:3.12"},
		"backend=microvm,image=host=2":     {Backend: "microvm", Image: "host"},
		"image=a,memory_mb=1024,vcpus=2=2": {Image: "a", MemoryMB: 1024, VCPUs: 2},
		"image=host,disk_mb=512=2":         {Image: "host", DiskMB: 512},
	} {
		k, n, err := ParsePoolSize(in)
		if err != nil || k != want || n != 2 {
			t.Errorf("%q: %+v %d %v", in, k, n, err)
		}
	}
	for _, bad := range []string{"", "=2", "host", "host=-1", "host=1001", "backend=x,nope=1=2", "memory_mb=x=1", "disk_mb=x=1", "image==1"} {
		if _, _, err := ParsePoolSize(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// FuzzParsePoolSize: any input parses or fails cleanly, and a key that
// parses prints back to one that parses to itself.
func FuzzParsePoolSize(f *testing.F) {
	for _, s := range []string{"host=2", "backend=microvm,image=host=1", "image=a,memory_mb=1024,vcpus=2=0", "=", ",=,"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k, n, err := ParsePoolSize(s)
		if err != nil {
			return
		}
		if n < 0 || n > MaxPoolSize {
			t.Fatalf("%q: size %d out of range", s, n)
		}
		if strings.ContainsAny(k.Image, ",") || k.String() == "" {
			return // a bare image with commas does not print back as fields
		}
		back, err := ParsePoolKey(k.String())
		if err != nil || back != k {
			t.Fatalf("%q: key %+v prints as %q, which parses to %+v (%v)", s, k, k.String(), back, err)
		}
	})
}
