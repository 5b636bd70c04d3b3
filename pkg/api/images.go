package api

import "time"

// PullImageRequest is the body of POST /images/pull.
type PullImageRequest struct {
	// Image is a reference: "python:3.12" (Docker Hub), "ghcr.io/o/r:tag",
	// "localhost:5000/x@sha256:…".
	Image string `json:"image"`
	// InsecureRegistries may be reached over plain HTTP (host or
	// host:port); loopback registries always may.
	InsecureRegistries []string `json:"insecure_registries,omitempty"`
}

// POST /images/pull answers with the JSON envelope (data: ImageInfo) once
// the pull is done, or, when the request has "Accept: text/event-stream",
// with Server-Sent Events: any number of "progress" (PullProgress), then
// exactly one of "done" (ImageInfo) or "error" (ImageErrorEvent).
const (
	EventPullProgress = "progress"
	EventPullDone     = "done"
	EventPullError    = "error"
)

// PullProgress is the data of a pull's "progress" event. Layer is a
// layer's compressed digest, empty for the image as a whole. Status is
// one of resolved (Total = number of layers), waiting, downloading
// (Current of Total bytes), extracting, exists, done.
type PullProgress struct {
	Layer   string `json:"layer,omitempty"`
	Status  string `json:"status"`
	Current int64  `json:"current,omitempty"`
	Total   int64  `json:"total,omitempty"`
}

// ImageErrorEvent is the data of a pull's or build's "error" event: the
// same as every stream's ErrorEvent (message and error class).
type ImageErrorEvent = ErrorEvent

// ImageDetails answers GET /images/{name}.
type ImageDetails struct {
	ImageInfo
	// Digest is the manifest's digest (pulled images).
	Digest   string       `json:"digest,omitempty"`
	Platform string       `json:"platform,omitempty"`
	Layers   []ImageLayer `json:"layers"`
	Config   *ImageConfig `json:"config,omitempty"`
}

// ImageLayer is one layer of an image, lowest first.
type ImageLayer struct {
	// ID is the layer's diff-id (pulled) or store id (imported).
	ID        string `json:"id"`
	Digest    string `json:"digest,omitempty"`
	Size      int64  `json:"size"`
	MediaType string `json:"media_type,omitempty"`
}

// ImageConfig is what a sandbox takes from an image's config: the
// environment, working directory and user of every command, and the
// command `run` uses when given none (Entrypoint followed by Cmd).
type ImageConfig struct {
	Env          []string          `json:"env,omitempty"`
	Entrypoint   []string          `json:"entrypoint,omitempty"`
	Cmd          []string          `json:"cmd,omitempty"`
	WorkingDir   string            `json:"working_dir,omitempty"`
	User         string            `json:"user,omitempty"`
	Labels       map[string]string `json:"labels,omitempty"`
	ExposedPorts []string          `json:"exposed_ports,omitempty"`
	Created      *time.Time        `json:"created,omitempty"`
}

// TagImageRequest is the body of POST /images/tag: give the image Source
// a second name, Target.
type TagImageRequest struct {
	Source string `json:"source"`
	Target string `json:"target"`
}

// PruneImagesResponse answers POST /images/prune.
type PruneImagesResponse struct {
	Blobs  int   `json:"blobs"`
	Layers int   `json:"layers"`
	Bytes  int64 `json:"bytes"`
}
