package api

// BuildImageRequest is the body of POST /images/build: build image Name
// from exactly one source: Debian (debootstrap from a Debian mirror) or a
// Dockerfile.
type BuildImageRequest struct {
	Name       string            `json:"name"`
	Debian     *DebianSource     `json:"debian,omitempty"`
	Dockerfile *DockerfileSource `json:"dockerfile,omitempty"`
	// NoCache fetches the packages again even when a recent download is
	// cached.
	NoCache bool `json:"no_cache,omitempty"`
	// Network is the egress of a Dockerfile's RUN steps, through each
	// step's network gateway. Nil (the default) means none: RUN steps are
	// offline. Allow and Presets (registry presets such as "npm", "pypi",
	// "debian", or agent presets) name what they may reach; Profile must
	// be empty or "restrictive" and AllowCIDRs empty, since a build
	// reaches registries by name. The host, its LAN and cloud metadata
	// stay unreachable, as for every sandbox.
	Network *NetworkPolicy `json:"network,omitempty"`
}

// DebianSource builds a minimal Debian system with extra packages.
type DebianSource struct {
	// Suite is a Debian codename or suite: bookworm, trixie, stable, ….
	Suite string `json:"suite"`
	// Packages are installed on top of the minimal base.
	Packages []string `json:"packages,omitempty"`
	// Mirror is the archive URL; empty means the one the daemon's host
	// uses for apt (else http://deb.debian.org/debian).
	Mirror string `json:"mirror,omitempty"`
}

// DockerfileSource builds an image from a Dockerfile, each step in a
// sandbox of the daemon (see internal/image/dockerfile for what is
// supported). The daemon runs as the client's user and reads the paths
// itself.
type DockerfileSource struct {
	// Context is the absolute path of the build context directory.
	Context string `json:"context"`
	// Dockerfile is its path: absolute, or relative to Context; empty
	// means Context/Dockerfile.
	Dockerfile string `json:"dockerfile,omitempty"`
	// BuildArgs set ARGs the Dockerfile declares.
	BuildArgs map[string]string `json:"build_args,omitempty"`
}

// CommitSandboxRequest is the body of POST /sandboxes/{name}/commit: save
// the sandbox's changes as a new layer on top of its image, as image
// Image (a name already in use moves to the new image).
type CommitSandboxRequest struct {
	Image string `json:"image"`
	// Message is recorded as the image's source.
	Message string `json:"message,omitempty"`
}

// POST /images/build answers with the JSON envelope (data: ImageInfo) once
// the build is done or, when the request has "Accept: text/event-stream",
// with Server-Sent Events: any number of "progress" (BuildProgress), then
// exactly one of "done" (ImageInfo) or "error" (ImageErrorEvent). A
// request refused before the build starts (bad input, a name already
// taken, a host that cannot build) is answered as a JSON error with its
// status in both cases. Stages, in order:
const (
	BuildStageWait     = "wait"     // another build holds the builder
	BuildStageDownload = "download" // fetching and verifying packages
	BuildStageInstall  = "install"  // installing them into a fresh root
	BuildStageFinish   = "finish"   // removing host details and caches
	BuildStageImport   = "import"   // copying the root into the image store
	// Dockerfile builds: one event per instruction, "step" when it runs
	// (RUN, COPY and ADD in a sandbox), "cached" when its layer came from
	// the build cache, "config" for instructions that only change the
	// image config; "output" carries a RUN's output lines.
	BuildStageStep   = "step"
	BuildStageCached = "cached"
	BuildStageConfig = "config"
	BuildStageOutput = "output"
)

// BuildProgress is the data of a build's "progress" event.
type BuildProgress struct {
	Stage   string `json:"stage"`
	Message string `json:"message,omitempty"`
}
