// Command probe is a static test program for images that have no shell or
// libc: "probe id" prints the uid and gid, "probe read PATH" prints a file,
// "probe write PATH TEXT" writes one.
package main

import (
	"errors"
	"fmt"
	"os"
)

func main() {
	fail := func(err error) { fmt.Fprintln(os.Stderr, err); os.Exit(1) }
	args := os.Args[1:]
	switch {
	case len(args) == 3 && args[0] == "write":
		if err := os.WriteFile(args[1], []byte(args[2]), 0o644); err != nil {
			fail(err)
		}
	case len(args) == 2 && args[0] == "read":
		b, err := os.ReadFile(args[1])
		if err != nil {
			fail(err)
		}
		os.Stdout.Write(b)
	case len(args) == 1 && args[0] == "id":
		fmt.Println(os.Getuid(), os.Getgid())
	default:
		fail(errors.New("usage: probe write PATH TEXT | read PATH | id"))
	}
}
