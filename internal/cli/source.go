package cli

import (
	"github.com/spf13/cobra"

	"github.com/agentkernel/agentkernel/pkg/api"
)

// sourceFlags are upstream's --source and --git-ref: a git repository the
// new sandbox clones into /workspace, through its gateway and so under its
// network policy (the URL's host must be allowed).
type sourceFlags struct {
	url, ref string
}

func (f *sourceFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.url, "source", "", "clone the git repository at `URL` (http or https) into /workspace, from inside the sandbox through its network policy (allow its host)")
	fl.StringVar(&f.ref, "git-ref", "", "with --source, the branch, tag or commit `REF` to check out")
}

func (f *sourceFlags) apply(req *api.CreateSandboxRequest) {
	req.SourceURL, req.SourceRef = f.url, f.ref
}
