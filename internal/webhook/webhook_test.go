package webhook

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentkernel/agentkernel/internal/events/eventstest"
	"github.com/agentkernel/agentkernel/pkg/api"
)

// These tests deliver to real HTTP servers on loopback (httptest) from an
// in-memory history and broker standing in for the daemon's store; the
// daemon's own wiring is exercised by test/integration/events_test.go.

var secret = []byte("0123456789abcdef-webhook")

// receiver records the events it verified; fail, while it returns a
// status, answers that status instead.
type receiver struct {
	mu   sync.Mutex
	got  []api.Event
	bad  int
	fail atomic.Int32
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if st := rc.fail.Load(); st != 0 {
		w.WriteHeader(int(st))
		return
	}
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if err := Verify(secret, r.Header.Get(SignatureHeader), body, time.Now(), time.Minute); err != nil {
		rc.bad++
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var ev api.Event
	json.Unmarshal(body, &ev)
	rc.got = append(rc.got, ev)
}

func (rc *receiver) ids() []int64 {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var out []int64
	for _, ev := range rc.got {
		out = append(out, ev.ID)
	}
	return out
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func start(t *testing.T, src *eventstest.Source, dir string, urls ...string) *Deliverers {
	t.Helper()
	d, err := Start(context.Background(), Config{URLs: urls, Secret: secret, Source: src, Dir: dir,
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, MaxAttempts: 50})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestDeliverSignedInOrderAndAfterOutage: events recorded before Start are
// not sent (a new endpoint starts now); later ones arrive signed and in
// order, also those sent while the endpoint answered 503.
func TestDeliverSignedInOrderAndAfterOutage(t *testing.T) {
	src := eventstest.New()
	src.Add("before")
	rc := &receiver{}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	d := start(t, src, t.TempDir(), srv.URL)
	defer d.Close()
	src.Add("one")
	eventually(t, "the first event", func() bool { return len(rc.ids()) == 1 })
	rc.fail.Store(503)
	src.Add("two")
	src.Add("three")
	time.Sleep(100 * time.Millisecond) // some failed attempts
	rc.fail.Store(0)
	eventually(t, "the events sent during the outage", func() bool { return len(rc.ids()) == 3 })
	if ids := rc.ids(); ids[0] != 2 || ids[1] != 3 || ids[2] != 4 {
		t.Fatalf("delivered %v, want [2 3 4]", ids)
	}
	if rc.bad != 0 {
		t.Fatalf("%d deliveries with a bad signature", rc.bad)
	}
}

// TestDeadLetterAndResume: a refused event is dead-lettered and the next
// one still delivered; a new Deliverers on the same directory resumes
// after the last event delivered.
func TestDeadLetterAndResume(t *testing.T) {
	src := eventstest.New()
	rc := &receiver{}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	dir := t.TempDir()
	d := start(t, src, dir, srv.URL)
	rc.fail.Store(400)
	src.Add("refused")
	eventually(t, "the dead letter", func() bool {
		b, _ := os.ReadFile(DeadLettersFile(dir, srv.URL))
		return len(b) > 0
	})
	rc.fail.Store(0)
	src.Add("taken")
	eventually(t, "the next event", func() bool { return len(rc.ids()) == 1 })
	d.Close()
	f, _ := os.Open(DeadLettersFile(dir, srv.URL))
	defer f.Close()
	var dl DeadLetter
	sc := bufio.NewScanner(f)
	if !sc.Scan() || json.Unmarshal(sc.Bytes(), &dl) != nil || dl.Event.Event != "refused" || dl.Attempts != 1 {
		t.Fatalf("dead letter: %+v", dl)
	}
	src.Add("while-down") // the daemon is "down"
	d = start(t, src, dir, srv.URL)
	defer d.Close()
	eventually(t, "the event recorded while no deliverer ran", func() bool { return len(rc.ids()) == 2 })
	if ids := rc.ids(); ids[1] != 3 {
		t.Fatalf("resumed with %v, want event 3 next", ids)
	}
}

func TestVerify(t *testing.T) {
	body := []byte(`{"id":1}`)
	now := time.Now()
	h := Sign(secret, now, body)
	if err := Verify(secret, h, body, now, time.Minute); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		secret []byte
		header string
		body   []byte
		at     time.Time
	}{
		"tampered body": {secret, h, []byte(`{"id":2}`), now},
		"other secret":  {[]byte("another-secret-of-16+"), h, body, now},
		"stale":         {secret, h, body, now.Add(time.Hour)},
		"malformed":     {secret, "v1=abc", body, now},
		"empty":         {secret, "", body, now},
	} {
		if err := Verify(c.secret, c.header, c.body, c.at, time.Minute); err == nil {
			t.Errorf("%s: verified", name)
		}
	}
}

func TestStartRefuses(t *testing.T) {
	src := eventstest.New()
	for _, u := range []string{"ftp://x/", "http://", "http://user:pw@host/", "not a url"} {
		if _, err := Start(context.Background(), Config{URLs: []string{u}, Secret: secret, Source: src, Dir: t.TempDir()}); err == nil {
			t.Errorf("URL %q accepted", u)
		}
	}
	if _, err := Start(context.Background(), Config{URLs: []string{"http://127.0.0.1/"}, Secret: []byte("short"), Source: src, Dir: t.TempDir()}); err == nil {
		t.Error("a short secret accepted")
	}
}

// FuzzVerify: any header and body is verified or refused, never a panic,
// and only the true signature of the body passes.
func FuzzVerify(f *testing.F) {
	now := time.Unix(1_800_000_000, 0)
	f.Add(Sign(secret, now, []byte(`{"id":1}`)), []byte(`{"id":1}`))
	f.Add("t=,v1=", []byte{})
	f.Add("t=1800000000,v1=zz,v1=", []byte("x"))
	f.Fuzz(func(t *testing.T, header string, body []byte) {
		if Verify(secret, header, body, now, time.Minute) == nil && header != Sign(secret, now, body) {
			// Another timestamp within tolerance signs differently but
			// validly: check it is a true signature of body.
			ts := strings.TrimPrefix(strings.Split(header, ",")[0], "t=")
			if !strings.Contains(header, mac(secret, ts, body)) {
				t.Fatalf("header %q verified for body %q", header, body)
			}
		}
	})
}
