// Package config reads agentkernel.toml, the per-project sandbox
// configuration, with upstream agentkernel's schema, and keeps the
// templates and the image auto-detection that produce one.
//
// Parsing is strict: an unknown key, a value of the wrong type or a
// duplicate key is an error naming the key and its line. A value this
// agentkernel cannot enforce (domain and command rules, port publishing,
// automatic host mounts, environment pass-through, agent compatibility
// modes, Dockerfile builds, custom seccomp files) is refused with a message
// saying so and what to do instead; nothing in a file is silently ignored.
// docs/CONFIG.md lists every key and what happens to it.
//
// The package is used client-side: the CLI parses a file, turns it into an
// api.CreateSandboxRequest (Config.Request) and, after the sandbox exists,
// copies the [[files]] (Config.ResolveFiles) and runs [sandbox] init_script.
// A file is hostile input: it is read with a size bound, and [[files]]
// sources must stay inside the file's own directory, so that a config that
// came with a cloned repository cannot copy ~/.ssh into a sandbox.
//
// Templates (Builtin, Templates) are configs with a name; the built-ins
// are Go values, saved ones are agentkernel.toml files under
// $AGENTKERNEL_HOME/templates. Detection (DetectCommand, DetectProject)
// maps a command or a project's files to upstream's image for that
// language.
//
// Nothing here holds state beyond a call, except Templates, which owns its
// directory; every function is safe for concurrent use.
package config
