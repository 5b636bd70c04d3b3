package httpapi

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentkernel/agentkernel/pkg/api"
	"github.com/agentkernel/agentkernel/pkg/client"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// The fake's network and vault, kept beside it.
var fakeNet = struct {
	sync.Mutex
	policy  map[*fakeService]api.NetworkPolicy
	secrets map[*fakeService]map[string]string
}{policy: map[*fakeService]api.NetworkPolicy{}, secrets: map[*fakeService]map[string]string{}}

func (f *fakeService) SandboxNetwork(_ context.Context, name string) (api.NetworkInfo, error) {
	if _, err := f.sandbox(name); err != nil {
		return api.NetworkInfo{}, err
	}
	fakeNet.Lock()
	defer fakeNet.Unlock()
	p := fakeNet.policy[f]
	return api.NetworkInfo{Sandbox: name, Mode: "gateway", Policy: &p, Running: true}, nil
}

func (f *fakeService) SetSandboxNetwork(ctx context.Context, name string, p api.NetworkPolicy) (api.NetworkInfo, error) {
	if _, err := f.sandbox(name); err != nil {
		return api.NetworkInfo{}, err
	}
	if p.Profile == "bogus" {
		return api.NetworkInfo{}, errors.Join(errdefs.ErrInvalidArgument, errors.New("unknown profile"))
	}
	fakeNet.Lock()
	fakeNet.policy[f] = p
	fakeNet.Unlock()
	return f.SandboxNetwork(ctx, name)
}

func (f *fakeService) NetworkLog(_ context.Context, name string, limit int) ([]api.NetworkEvent, error) {
	if _, err := f.sandbox(name); err != nil {
		return nil, err
	}
	out := []api.NetworkEvent{{Kind: "dns", Name: "example.com", Allowed: true, Rule: "allow:example.com"},
		{Kind: "connect", IP: "203.0.113.1", Port: 443, Rule: "unresolved"}}
	if limit > 0 && limit < len(out) {
		out = out[len(out)-limit:]
	}
	return out, nil
}

func (f *fakeService) vault() map[string]string {
	if fakeNet.secrets[f] == nil {
		fakeNet.secrets[f] = map[string]string{}
	}
	return fakeNet.secrets[f]
}

func (f *fakeService) ListSecrets(context.Context) ([]api.SecretInfo, error) {
	fakeNet.Lock()
	defer fakeNet.Unlock()
	var out []api.SecretInfo
	for n := range f.vault() {
		out = append(out, api.SecretInfo{Name: n})
	}
	return out, nil
}

func (f *fakeService) GetSecret(_ context.Context, name string) (api.SecretValue, error) {
	fakeNet.Lock()
	defer fakeNet.Unlock()
	v, ok := f.vault()[name]
	if !ok {
		return api.SecretValue{}, notFound("secret " + name)
	}
	return api.SecretValue{Name: name, Value: v}, nil
}

func (f *fakeService) SetSecret(_ context.Context, name, value string) (api.SecretInfo, error) {
	fakeNet.Lock()
	defer fakeNet.Unlock()
	f.vault()[name] = value
	return api.SecretInfo{Name: name, CreatedAt: time.Now()}, nil
}

func (f *fakeService) DeleteSecret(_ context.Context, name string) error {
	fakeNet.Lock()
	defer fakeNet.Unlock()
	if _, ok := f.vault()[name]; !ok {
		return notFound("secret " + name)
	}
	delete(f.vault(), name)
	return nil
}

// exerciseNetworkRoutes drives the network and secret routes through the
// SDK on a handler with a token (TestEveryRouteThroughClient): the network
// works, and every secret route is refused over TCP.
func exerciseNetworkRoutes(t *testing.T, c *client.Client, ctx context.Context, name string) {
	t.Helper()
	info, err := c.SetSandboxNetwork(ctx, name, api.NetworkPolicy{Allow: []string{"example.com"}, AllowCIDRs: []string{"203.0.113.0/24:443"}})
	if err != nil || info.Policy == nil || info.Policy.Allow[0] != "example.com" || info.Policy.AllowCIDRs[0] != "203.0.113.0/24:443" {
		t.Fatalf("set network: %+v %v", info, err)
	}
	if info, err := c.SandboxNetwork(ctx, name); err != nil || info.Mode != "gateway" || info.Policy.Allow[0] != "example.com" {
		t.Fatalf("get network: %+v %v", info, err)
	}
	if _, err := c.SetSandboxNetwork(ctx, name, api.NetworkPolicy{Profile: "bogus"}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("bad policy: %v", err)
	}
	if ev, err := c.NetworkLog(ctx, name, 1); err != nil || len(ev) != 1 || ev[0].Rule != "unresolved" {
		t.Fatalf("network log: %+v %v", ev, err)
	}
	if _, err := c.SandboxNetwork(ctx, "nope"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("missing sandbox: %v", err)
	}
	_, err = c.ListSecrets(ctx)
	isDenied := func(err error) {
		t.Helper()
		if !errors.Is(err, errdefs.ErrPermissionDenied) || !strings.Contains(err.Error(), "Unix socket") {
			t.Fatalf("secret route over TCP: %v", err)
		}
	}
	isDenied(err)
	_, err = c.SetSecret(ctx, "K", "v")
	isDenied(err)
	_, err = c.GetSecret(ctx, "K")
	isDenied(err)
	isDenied(c.DeleteSecret(ctx, "K"))
}

// TestSecretsOverSocket: without a token (the Unix socket) the secret
// routes work; the value never reaches the log.
func TestSecretsOverSocket(t *testing.T) {
	e := newEnv(t, HandlerOptions{})
	c, ctx := e.client, testCtx(t)
	const value = "sk-socket-test-value"
	if _, err := c.SetSecret(ctx, "API_KEY", value); err != nil {
		t.Fatal(err)
	}
	list, err := c.ListSecrets(ctx)
	if err != nil || len(list) != 1 || list[0].Name != "API_KEY" {
		t.Fatalf("list: %+v %v", list, err)
	}
	if v, err := c.GetSecret(ctx, "API_KEY"); err != nil || v != value {
		t.Fatalf("get: %q %v", v, err)
	}
	resp, body := e.do(t, "GET", "/secrets", nil, nil)
	if resp.StatusCode != 200 || strings.Contains(string(body), value) {
		t.Fatalf("listing shows the value: %s", body)
	}
	if err := c.DeleteSecret(ctx, "API_KEY"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetSecret(ctx, "API_KEY"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("get after delete: %v", err)
	}
	resp, _ = e.do(t, "GET", "/sandboxes/x/network/log?limit=0", nil, nil)
	if resp.StatusCode != 400 {
		t.Fatalf("limit 0: %d", resp.StatusCode)
	}
	if strings.Contains(e.logs.String(), value) {
		t.Fatal("the server log holds the secret")
	}
}
