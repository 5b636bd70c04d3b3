package api

import "time"

// NetworkPolicy is a sandbox's egress policy, enforced by its network
// gateway (GET and PUT /sandboxes/{name}/network, and the network field of
// CreateSandboxRequest). Whatever it says, the host, the LAN, loopback and
// cloud metadata addresses stay unreachable.
type NetworkPolicy struct {
	// Profile is the base allow-list: "moderate" (package registries and
	// git hosts), "permissive" (any public address) or "restrictive"
	// (nothing beyond this policy's own lists). Empty in a create request
	// means the sandbox profile's. "none" in a create request means no
	// network at all: no gateway, loopback only (agentkernel.toml's
	// [security] network = false); it takes no lists, secrets or ports.
	Profile string `json:"profile,omitempty"`
	// Allow lists domains the sandbox may resolve and reach on ports 80
	// and 443: "example.com" exactly, "*.example.com" every name under it.
	Allow []string `json:"allow,omitempty"`
	// Block lists domains refused even when Allow, a preset or the
	// profile allows them.
	Block []string `json:"block,omitempty"`
	// Presets adds agents' API hosts with the registries and git hosts:
	// "claude", "codex", "gemini", "opencode".
	Presets []string `json:"presets,omitempty"`
	// AllowCIDRs allows addresses without a name, TCP and UDP:
	// "CIDR[:PORT]", e.g. "203.0.113.0/24:443" or "198.51.100.7".
	AllowCIDRs []string `json:"allow_cidrs,omitempty"`
}

// PublishedPort is a loopback port of the host forwarded to the sandbox.
type PublishedPort struct {
	// HostPort is the port asked for (0: any free port).
	HostPort    uint16 `json:"host_port"`
	SandboxPort uint16 `json:"sandbox_port"`
	// Address is where the host listens ("127.0.0.1:8080") while the
	// sandbox runs.
	Address string `json:"address,omitempty"`
}

// SecretBinding describes a secret bound to a host, without its value.
type SecretBinding struct {
	Name   string `json:"name"`
	Host   string `json:"host"`
	Header string `json:"header"`
}

// NetworkStats are a running gateway's counters.
type NetworkStats struct {
	TCPAllowed int64 `json:"tcp_allowed"`
	TCPDenied  int64 `json:"tcp_denied"`
	UDPAllowed int64 `json:"udp_allowed"`
	UDPDenied  int64 `json:"udp_denied"`
	// DNSDropped counts queries over the DNS rate limit; AuditDropped,
	// events the audit log could not keep up with.
	DNSDropped   uint64 `json:"dns_dropped"`
	AuditDropped int64  `json:"audit_dropped"`
}

// NetworkInfo answers GET and PUT /sandboxes/{name}/network.
type NetworkInfo struct {
	Sandbox string `json:"sandbox"`
	// Mode is "gateway", "none" or "loopback" (see SandboxInfo.Network).
	Mode string `json:"mode"`
	// Policy is nil unless Mode is "gateway".
	Policy    *NetworkPolicy  `json:"policy,omitempty"`
	Published []PublishedPort `json:"published,omitempty"`
	Secrets   []SecretBinding `json:"secrets,omitempty"`
	// Running says the policy shown is the one the live gateway enforces
	// (else the one the sandbox will start with).
	Running bool          `json:"running"`
	Stats   *NetworkStats `json:"stats,omitempty"`
}

// NetworkEvent is one record of a sandbox's network audit log
// (GET /sandboxes/{name}/network/log): a DNS answer, a connection decision,
// a connection's end or an intercepted request.
type NetworkEvent struct {
	Time    time.Time `json:"time"`
	Sandbox string    `json:"sandbox"`
	// Kind is "dns", "connect", "close", "request", "inbound" or
	// "suppressed" (denials dropped by the log's rate limit; see Count).
	Kind  string `json:"kind"`
	Proto string `json:"proto,omitempty"`
	Name  string `json:"name,omitempty"`
	IP    string `json:"ip,omitempty"`
	Port  uint16 `json:"port,omitempty"`
	// IPs, QType and RCode describe a DNS answer.
	IPs   []string `json:"ips,omitempty"`
	QType string   `json:"qtype,omitempty"`
	RCode string   `json:"rcode,omitempty"`
	// Allowed and Rule say what was decided and by which rule.
	Allowed        bool   `json:"allowed"`
	Rule           string `json:"rule"`
	BytesUp        int64  `json:"bytes_up,omitempty"`
	BytesDown      int64  `json:"bytes_down,omitempty"`
	DurationNS     int64  `json:"duration_ns,omitempty"`
	Intercepted    bool   `json:"intercepted,omitempty"`
	Method         string `json:"method,omitempty"`
	Status         int    `json:"status,omitempty"`
	SecretInjected bool   `json:"secret_injected,omitempty"`
	Error          string `json:"error,omitempty"`
	Count          int64  `json:"count,omitempty"`
	// TraceID and SpanID link a connection to its OpenTelemetry span (in
	// the trace of the exec that made it), when tracing is on.
	TraceID string `json:"trace_id,omitempty"`
	SpanID  string `json:"span_id,omitempty"`
}

// SecretInfo describes a secret in the daemon's vault (GET /secrets). The
// value is never listed.
type SecretInfo struct {
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// SecretValue answers GET /secrets/{name}.
type SecretValue struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// SetSecretRequest is the body of PUT /secrets/{name}.
type SetSecretRequest struct {
	Value string `json:"value"`
}
