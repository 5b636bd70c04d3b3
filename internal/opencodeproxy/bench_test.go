package opencodeproxy

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// The proxy's added cost, as docs/BENCHMARKS.md reports it: each
// benchmark runs the same upstream handler directly and through the proxy
// (over loopback, the fake sandbox's server standing in for opencode
// serve), so the ratio of the two is what the proxy adds.
//
//	go test -run '^$' -bench . ./internal/opencodeproxy

// smallAnswer is a JSON answer like OpenCode's session routes give.
var smallAnswer = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, `{"id":"ses_1","title":"x","time":{"created":1}}`)
})

// sseEvents streams one small event per line until the client goes.
var sseEvents = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/event-stream")
	f := w.(http.Flusher)
	for i := 0; ; i++ {
		if _, err := fmt.Fprintf(w, "data: {\"type\":\"message.part.updated\",\"n\":%d}\n\n", i); err != nil {
			return
		}
		f.Flush()
		if r.Context().Err() != nil {
			return
		}
	}
})

// benchTargets returns the base URLs of h served directly and through the
// proxy.
func benchTargets(b *testing.B, h http.Handler) map[string]string {
	direct := httptest.NewServer(h)
	b.Cleanup(direct.Close)
	e := newTestEnv(b, h, Options{})
	return map[string]string{"direct": direct.URL, "proxy": e.srv.URL}
}

func BenchmarkRequest(b *testing.B) {
	for name, base := range benchTargets(b, smallAnswer) {
		b.Run(name, func(b *testing.B) {
			c := &http.Client{}
			get := func() {
				resp, err := c.Get(base + "/session/ses_1")
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Fatalf("status %d", resp.StatusCode)
				}
			}
			get() // provisions the sandbox (proxy) and warms the connection
			b.ResetTimer()
			for range b.N {
				get()
			}
		})
	}
}

func BenchmarkSSEEvent(b *testing.B) {
	for name, base := range benchTargets(b, sseEvents) {
		b.Run(name, func(b *testing.B) {
			resp, err := http.Get(base + "/event")
			if err != nil {
				b.Fatal(err)
			}
			defer resp.Body.Close()
			br := bufio.NewReader(resp.Body)
			b.ResetTimer()
			for n := 0; n < b.N; {
				l, err := br.ReadString('\n')
				if err != nil {
					b.Fatal(err)
				}
				if strings.HasPrefix(l, "data: ") {
					n++
				}
			}
		})
	}
}
