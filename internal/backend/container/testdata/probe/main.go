// Command probe is a static test program for images that have no shell or
// libc: "probe id" prints the uid and gid, "probe read PATH" prints a file,
// "probe write PATH TEXT" writes one, "probe syscall NR" makes syscall NR
// with zero arguments and prints "ok" or its errno's name.
package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
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
	case len(args) == 2 && args[0] == "syscall":
		nr, err := strconv.Atoi(args[1])
		if err != nil {
			fail(err)
		}
		if _, _, e := syscall.RawSyscall(uintptr(nr), 0, 0, 0); e != 0 {
			fmt.Println(unix.ErrnoName(e))
		} else {
			fmt.Println("ok")
		}
	default:
		fail(errors.New("usage: probe write PATH TEXT | read PATH | id | syscall NR"))
	}
}
