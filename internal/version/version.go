// Package version holds the build's version string, set by the linker
// (-X github.com/agentkernel/agentkernel/internal/version.Version=…).
package version

// Version is the agentkernel release, or "dev" for an untagged build.
var Version = "dev"
