package soak

import (
	"os"
	"os/exec"
	"path/filepath"
)

// buildHelper compiles the suite's helper into dir/helper, static: the
// program sandboxes run (bound at /soak) to serve files on a port and to
// fetch a URL through the gateway. The host image's /usr may have neither
// a server nor a client, and the suite must not depend on which.
func buildHelper(dir string) error {
	src, err := os.MkdirTemp("", "aksoak-helper")
	if err != nil {
		return err
	}
	defer os.RemoveAll(src)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	os.WriteFile(filepath.Join(src, "go.mod"), []byte("module helper\n\ngo 1.22\n"), 0o644)
	os.WriteFile(filepath.Join(src, "main.go"), []byte(helperSource), 0o644)
	cmd := exec.Command("go", "build", "-o", filepath.Join(dir, "helper"), ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=", "GOTOOLCHAIN=local")
	if out, err := cmd.CombinedOutput(); err != nil {
		return &buildError{err, out}
	}
	return nil
}

type buildError struct {
	err error
	out []byte
}

func (e *buildError) Error() string { return e.err.Error() + "\n" + string(e.out) }

// helperSource: "helper serve ADDR DIR" serves DIR's files on ADDR;
// "helper get URL" prints the body of a 200 answer, and otherwise fails
// saying why.
const helperSource = `package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

func main() {
	switch os.Args[1] {
	case "serve":
		err := http.ListenAndServe(os.Args[2], http.FileServer(http.Dir(os.Args[3])))
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	case "get":
		c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
		res, err := c.Get(os.Args[2])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		b, err := io.ReadAll(res.Body)
		if err != nil || res.StatusCode != 200 {
			fmt.Fprintln(os.Stderr, res.Status, err)
			os.Exit(1)
		}
		os.Stdout.Write(b)
	default:
		os.Exit(2)
	}
}
`
