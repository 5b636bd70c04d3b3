package plugin

import "bytes"

// Skill is Claude Code's skill file (SKILL.md) for the sandbox tools.
const Skill = `---
name: agentkernel
description: Run untrusted or risky commands, builds, tests and scripts in an isolated agentkernel sandbox (a microVM or container) through the agentkernel MCP tools instead of on the host.
---

# agentkernel sandboxes

The ` + "`agentkernel`" + ` MCP server gives you disposable sandboxes, isolated from this
machine. Use them when a command could damage or leak from the host: code from
the internet, unknown dependencies, install scripts, experiments, anything you
would not run on the user's machine without asking.

Tools:

- ` + "`sandbox_run`" + `: run one command (an array, or one shell string) in a new
  sandbox that is removed afterwards. The simplest choice for a one-off command.
- ` + "`sandbox_create`" + `: create a sandbox that stays for several steps (give
  ` + "`keep: true`" + ` only if it must outlive the session).
- ` + "`sandbox_exec`" + `: run a command in a sandbox you created.
- ` + "`sandbox_file_write`" + ` / ` + "`sandbox_file_read`" + `: put a file into a sandbox
  or read one out.
- ` + "`sandbox_list`" + `: the sandboxes that exist.
- ` + "`sandbox_remove`" + `: remove a sandbox when you are done.

How: for one command, call sandbox_run. For a task of several steps, call
sandbox_create, write the files it needs with sandbox_file_write, run steps
with sandbox_exec, read results with sandbox_file_read, then sandbox_remove.
The sandbox does not see the host's files unless they are written into it.
The profile, images and number of sandboxes are set by the user when the
server starts; a tool argument can only narrow them, so an error naming a
limit means ask the user rather than retry.
`

// InstallFile puts want in a file that must otherwise not exist: absent it
// is created, identical it is unchanged, different it needs force.
func InstallFile(name string, content []byte, exists bool, want []byte, force bool) ([]byte, Status, error) {
	switch {
	case !exists:
		return want, StatusCreated, nil
	case bytes.Equal(content, want):
		return content, StatusUnchanged, nil
	case !force:
		return nil, 0, &DiffersError{File: name}
	}
	return want, StatusUpdated, nil
}
