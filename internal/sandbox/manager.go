package sandbox

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"github.com/agentkernel/agentkernel/internal/backend"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agentkernel/agentkernel/internal/agentproto"
	"github.com/agentkernel/agentkernel/internal/audit"
	"github.com/agentkernel/agentkernel/internal/keyedmutex"
	"github.com/agentkernel/agentkernel/internal/paths"
	"github.com/agentkernel/agentkernel/internal/secrets"
	"github.com/agentkernel/agentkernel/internal/store"
	"github.com/agentkernel/agentkernel/internal/supervisor"
	"github.com/agentkernel/agentkernel/internal/volume"
	"github.com/agentkernel/agentkernel/pkg/api"
)

// Named timeouts.
const (
	// startTimeout bounds a sandbox's boot, from spawning its supervisor
	// to its agent answering.
	startTimeout = 60 * time.Second
	// stopTimeout bounds a graceful stop through the supervisor.
	stopTimeout = 60 * time.Second
	// probeTimeout bounds one status probe of a supervisor.
	probeTimeout = 2 * time.Second
	// teardownWait bounds how long image removal waits for sandbox
	// teardowns still running.
	teardownWait = 30 * time.Second
	// reapInterval is how often expired sandboxes are looked for.
	reapInterval = time.Second
)

// Images resolves image names for new sandboxes and manages the store of
// images. The daemon adapts internal/image to it.
type Images interface {
	Resolve(ctx context.Context, name string) (ResolvedImage, error)
	List(ctx context.Context) ([]api.ImageInfo, error)
	Import(ctx context.Context, name, path string) (api.ImageInfo, error)
	Remove(ctx context.Context, name string) error
	Pull(ctx context.Context, req api.PullImageRequest, progress func(api.PullProgress)) (api.ImageInfo, error)
	Inspect(ctx context.Context, name string) (api.ImageDetails, error)
	Tag(ctx context.Context, source, target string) (api.ImageInfo, error)
	Prune(ctx context.Context) (api.PruneImagesResponse, error)
}

// ResolvedImage is what a sandbox is made from.
type ResolvedImage struct {
	Name    string
	Rootfs  backend.RootfsSpec
	Env     []string
	Workdir string
	User    string
	// Cmd is the image's Entrypoint followed by its Cmd: what runs when a
	// request names no command.
	Cmd []string
}

// Config configures a Manager. Fields are read once by NewManager.
type Config struct {
	Layout paths.Layout
	Store  *store.Store
	Images Images
	// Backends are the runtimes this host offers, by name. The daemon
	// calls only their Cleanup; supervisors call Start.
	Backends       map[string]backend.Backend
	DefaultBackend string
	// AgentPath is the static guest agent binary given to every sandbox.
	AgentPath string
	// SupervisorExe and SupervisorArgs run the supervise role; the
	// sandbox's state directory is appended as the last argument.
	SupervisorExe  string
	SupervisorArgs []string
	// SupervisorEnv is the supervisors' whole environment.
	SupervisorEnv []string
	// Secrets is the vault of secrets sandboxes may bind; nil refuses
	// every binding.
	Secrets *secrets.Vault
	// Doctor adds host checks to the report of Doctor.
	Doctor func(ctx context.Context) []api.DoctorCheck
	Logger *slog.Logger
	// SandboxCAs says daemon.toml names sandbox_ca_files, which every
	// sandbox with a gateway trusts (the variables that name the CA
	// bundle are then set).
	SandboxCAs bool
	// PausedTTLStops stops a paused sandbox's TTL clock: the reaper skips
	// it and resume moves its expiry on by the time it was paused.
	PausedTTLStops bool
	// Events, when set, is told of every event once it is recorded (GET
	// /events, webhooks).
	Events EventSink
	// Observer, when set, is told how long each create, claim, exec and
	// removal took (GET /metrics).
	Observer Observer
	// Volumes keeps the named volumes sandboxes may mount; nil refuses
	// every volume.
	Volumes *volume.Store
	// Audit, when set, is the global audit log: every event is appended
	// to it (the Manager is its only writer while it runs), and execs and
	// file writes are also sent to the sandbox's own log. Nil (the
	// operator's AGENTKERNEL_AUDIT=0) records neither; the sandboxes' own
	// logs still get their gateways' connection records.
	Audit *audit.Writer
}

// Observer takes the duration of operations; internal/metrics implements
// it.
type Observer interface {
	Observe(op, backend string, d time.Duration, err error)
}

// observe reports an operation to the Observer, if any.
func (m *Manager) observe(op, backend string, since time.Time, err error) {
	if m.cfg.Observer != nil {
		m.cfg.Observer.Observe(op, backend, time.Since(since), err)
	}
}

// EventSink takes recorded events; internal/events' Broker implements it.
// Publish must not block.
type EventSink interface {
	Publish(api.Event)
}

// Manager runs sandboxes: it implements internal/httpapi.Service. Create it
// with NewManager, call Recover once, and Close it when the daemon exits;
// Close leaves running sandboxes running (their supervisors outlive us).
// All methods are safe for concurrent use.
type Manager struct {
	cfg Config
	log *slog.Logger

	ctx    context.Context // the Manager's lifetime; cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // watchers, the reaper and teardowns
	// teardowns counts removals still finishing in the background; image
	// removal waits for them, since a sandbox being torn down may still
	// have its image's layers mounted.
	teardowns sync.WaitGroup

	// Lock order: locks (one sandbox's lifecycle) before mu before a
	// liveSandbox's mu. mu and liveSandbox.mu are held only to read or
	// swap a pointer, never across a call to the store, a supervisor or
	// an agent; locks is held across a whole lifecycle operation
	// (create, start, stop, remove, a status change) of its sandbox, and
	// never two of them at once.
	locks keyedmutex.Mutex // per-sandbox lifecycle lock, by UUID

	// mu guards live.
	mu   sync.Mutex
	live map[string]*liveSandbox // running sandboxes by UUID
	// vols are the volumes running sandboxes use (its own lock).
	vols volumeClaims
	// gateways is what GatewayTotals has counted (its own lock).
	gateways gatewayTally

	// pools serves creates from warm pools; nil creates every sandbox
	// cold. Set once by SetPools before serving.
	pools WarmPools

	// eventMu makes events reach Config.Events in the order of their IDs
	// (a follower skips what it has seen by ID).
	eventMu sync.Mutex

	// auditQ holds records for supervisors' logs (see forwardAudit);
	// auditUnforwarded counts those it had no room for.
	auditQ           chan forwarded
	auditUnforwarded atomic.Int64
}

// liveSandbox is the daemon's handle on a running sandbox.
type liveSandbox struct {
	uuid string
	// name changes once, when a pooled sandbox is claimed.
	name atomic.Pointer[string]
	sup  *supervisor.Client
	// stopWatch ends the watcher when the daemon itself stops the sandbox.
	stopWatch context.CancelFunc

	// mu guards agent.
	mu    sync.Mutex
	agent *agentproto.Client
}

// NewManager returns a Manager; it starts no goroutine until Recover.
func NewManager(cfg Config) *Manager {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Manager{cfg: cfg, log: log, ctx: ctx, cancel: cancel, live: map[string]*liveSandbox{},
		auditQ: make(chan forwarded, auditForwardQueue)}
}

// Close stops the Manager's goroutines and closes agent connections. It
// does not stop sandboxes. Idempotent.
func (m *Manager) Close() error {
	m.cancel()
	m.mu.Lock()
	for _, l := range m.live {
		l.closeAgent()
	}
	m.mu.Unlock()
	m.wg.Wait()
	return nil
}

// stateDir is where a sandbox's files live. The UUID's dashes are dropped to
// keep socket paths short (Unix socket paths are limited to 107 bytes).
func (m *Manager) stateDir(uuid string) string {
	return m.cfg.Layout.SandboxDir(strings.ReplaceAll(uuid, "-", ""))
}

func (m *Manager) getLive(uuid string) *liveSandbox {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.live[uuid]
}

func (m *Manager) setLive(l *liveSandbox) {
	m.mu.Lock()
	m.live[l.uuid] = l
	m.mu.Unlock()
}

func (m *Manager) dropLive(uuid string) *liveSandbox {
	m.mu.Lock()
	defer m.mu.Unlock()
	l := m.live[uuid]
	delete(m.live, uuid)
	return l
}

func newLiveSandbox(uuid, name string, sup *supervisor.Client) *liveSandbox {
	l := &liveSandbox{uuid: uuid, sup: sup}
	l.setName(name)
	return l
}

func (l *liveSandbox) Name() string        { return *l.name.Load() }
func (l *liveSandbox) setName(name string) { l.name.Store(&name) }

// agentClient returns a connected agent client, reconnecting through the
// supervisor if the previous connection died.
func (l *liveSandbox) agentClient(ctx context.Context) (*agentproto.Client, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.agent != nil {
		select {
		case <-l.agent.Done():
			l.agent.Close()
			l.agent = nil
		default:
			return l.agent, nil
		}
	}
	conn, err := l.sup.DialAgent(ctx)
	if err != nil {
		return nil, fmt.Errorf("sandbox %s: %w", l.Name(), err)
	}
	c, err := agentproto.NewClient(conn)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("sandbox %s: connecting to its agent: %w", l.Name(), err)
	}
	l.agent = c
	return c, nil
}

func (l *liveSandbox) closeAgent() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.agent != nil {
		l.agent.Close()
		l.agent = nil
	}
}

// event appends to a sandbox's audit trail; failures are logged, not
// returned: the operation it records has already happened.
func (m *Manager) event(uuid, name, ev string, details map[string]any) {
	if strings.HasPrefix(name, pooledNamePrefix) {
		// A pooled sandbox's life before its claim is nobody's to audit:
		// its trail starts with the claim's sandbox_created.
		return
	}
	var raw json.RawMessage
	if details != nil {
		raw, _ = json.Marshal(details)
	}
	m.eventMu.Lock()
	defer m.eventMu.Unlock()
	m.audit(uuid, name, ev, raw)
	rec, err := m.cfg.Store.AppendEvent(context.WithoutCancel(m.ctx), store.Event{
		SandboxUUID: uuid, SandboxName: name, Event: ev, Details: raw,
	})
	if err != nil {
		m.log.Warn("recording event", "sandbox", name, "event", ev, "err", err)
		return
	}
	if m.cfg.Events != nil {
		m.cfg.Events.Publish(toAPIEvent(rec))
	}
}

// LastEventID is the newest recorded event's ID (0 when none).
func (m *Manager) LastEventID(ctx context.Context) (int64, error) {
	return m.cfg.Store.LastEventID(ctx)
}

// toAPIEvent is a recorded event on the wire.
func toAPIEvent(e store.Event) api.Event {
	out := api.Event{ID: e.ID, Time: e.Time, Event: e.Event, Sandbox: e.SandboxName, SandboxUUID: e.SandboxUUID}
	if len(e.Details) > 0 {
		json.Unmarshal(e.Details, &out.Details)
	}
	return out
}

// EventsAfter returns the recorded events of every sandbox after the one
// with ID after, oldest first (see store.ListEventsAfter).
func (m *Manager) EventsAfter(ctx context.Context, after int64, limit int) ([]api.Event, error) {
	recs, err := m.cfg.Store.ListEventsAfter(ctx, after, limit)
	if err != nil {
		return nil, err
	}
	out := make([]api.Event, 0, len(recs))
	for _, r := range recs {
		out = append(out, toAPIEvent(r))
	}
	return out, nil
}

// newUUID returns a random (version 4) UUID.
func newUUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// mkStateDir creates a sandbox's state directory. It is 0711: the
// sandbox's mapped root must traverse it to reach its bundle, but may not
// list it.
func mkStateDir(dir string) error {
	if err := os.MkdirAll(filepath.Dir(dir), 0o711); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o711); err != nil {
		return err
	}
	return os.Chmod(dir, 0o711)
}
