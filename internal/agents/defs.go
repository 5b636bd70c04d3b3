package agents

// The agents. Versions are pinned; their images record them in labels.
// What each needs to run unattended and quietly is documented in
// docs/AGENTS.md, with where each setting comes from.

// Claude is Anthropic's Claude Code.
var Claude = register(&Agent{
	Name: "claude", Title: "Claude Code",
	Package: "@anthropic-ai/claude-code", Version: "2.1.332", Binary: "claude",
	Preset: "claude",
	Key:    KeyBinding{Vars: []string{"ANTHROPIC_API_KEY"}, Host: "api.anthropic.com", Header: "x-api-key"},
	Env: []string{
		"DISABLE_AUTOUPDATER=1", "DISABLE_TELEMETRY=1", "DISABLE_ERROR_REPORTING=1", "DISABLE_BUG_COMMAND=1",
		"CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1",
		// The sandbox is the boundary: Claude Code may skip its own
		// permission prompts here.
		"IS_SANDBOX=1",
	},
	Files: map[string]string{
		".claude.json": `{"hasCompletedOnboarding": true, "bypassPermissionsModeAccepted": true, "autoUpdates": false}` + "\n",
	},
	Unattended: func(prompt []string) []string {
		return withPrompt([]string{"claude", "-p", "--dangerously-skip-permissions"}, prompt)
	},
})

// Codex is OpenAI's Codex CLI.
var Codex = register(&Agent{
	Name: "codex", Title: "Codex CLI",
	Package: "@openai/codex", Version: "0.171.0", Binary: "codex",
	Preset: "codex",
	Key:    KeyBinding{Vars: []string{"OPENAI_API_KEY"}, Host: "api.openai.com", Header: "Authorization"},
	Env:    []string{"CODEX_DISABLE_UPDATE_CHECK=1"},
	Files: map[string]string{
		// The sandbox is the boundary; nothing phones home: analytics
		// (ab.chatgpt.com), feedback, update checks and the plugin
		// marketplace sync (github.com) are off.
		".codex/config.toml": "# Written by agentkernel.\n" +
			"approval_policy = \"never\"\nsandbox_mode = \"danger-full-access\"\ncheck_for_update_on_startup = false\n\n" +
			"[analytics]\nenabled = false\n\n[feedback]\nenabled = false\n\n" +
			"[features]\nplugins = false\napps = false\nremote_plugin = false\n",
	},
	Unattended: func(prompt []string) []string {
		// Codex's own sandbox (Landlock, seccomp) cannot nest inside
		// ours; agentkernel's sandbox takes its place.
		return withPrompt([]string{"codex", "exec", "--skip-git-repo-check", "--dangerously-bypass-approvals-and-sandbox"}, prompt)
	},
})

// Gemini is Google's Gemini CLI.
var Gemini = register(&Agent{
	Name: "gemini", Title: "Gemini CLI",
	Package: "@google/gemini-cli", Version: "0.61.0", Binary: "gemini",
	Preset: "gemini",
	Key:    KeyBinding{Vars: []string{"GEMINI_API_KEY", "GOOGLE_API_KEY"}, Host: "generativelanguage.googleapis.com", Header: "x-goog-api-key"},
	// The sandbox holds only a copy of the project: trusting it is safe.
	Env: []string{"GEMINI_CLI_DISABLE_AUTOUPDATER=1", "GEMINI_CLI_TRUST_WORKSPACE=true"},
	Files: map[string]string{
		// selectedType is required: without it -p exits with "Invalid
		// auth method selected". Usage statistics go to
		// play.googleapis.com unless turned off.
		".gemini/settings.json": `{"security": {"auth": {"selectedType": "gemini-api-key"}}, ` +
			`"general": {"enableAutoUpdate": false, "enableAutoUpdateNotification": false}, ` +
			`"privacy": {"usageStatisticsEnabled": false}, "telemetry": {"enabled": false}}` + "\n",
	},
	Unattended: func(prompt []string) []string {
		return append([]string{"gemini", "--yolo", "-p"}, joinPrompt(prompt))
	},
})

// OpenCode is SST's OpenCode; it talks to Anthropic's API here.
var OpenCode = register(&Agent{
	Name: "opencode", Title: "OpenCode",
	Package: "opencode-ai", Version: "1.18.33", Binary: "opencode",
	Preset: "opencode",
	Key:    KeyBinding{Vars: []string{"ANTHROPIC_API_KEY"}, Host: "api.anthropic.com", Header: "x-api-key"},
	Env:    []string{"OPENCODE_DISABLE_AUTOUPDATE=1", "OPENCODE_DISABLE_MODELS_FETCH=1", "OPENCODE_DISABLE_LSP_DOWNLOAD=1"},
	Files: map[string]string{
		".config/opencode/opencode.json": `{"$schema": "https://opencode.ai/config.json", ` +
			`"model": "anthropic/claude-sonnet-4-5", "small_model": "anthropic/claude-haiku-4-5", ` +
			`"autoupdate": false, "share": "disabled", "permission": "allow"}` + "\n",
		// OpenCode installs @opencode-ai/plugin from npm into its config
		// directory at every start unless this lock file and the
		// node_modules directory say it is there already.
		".config/opencode/package-lock.json":  `{"lockfileVersion": 3, "packages": {"": {"dependencies": {"@opencode-ai/plugin": "*"}}}}` + "\n",
		".config/opencode/node_modules/.keep": "",
	},
	Unattended: func(prompt []string) []string {
		return append([]string{"opencode", "run"}, joinPrompt(prompt))
	},
})

// joinPrompt makes one argument of the prompt's words, for CLIs that take
// the prompt as a single flag value.
func joinPrompt(words []string) string {
	s := ""
	for i, w := range words {
		if i > 0 {
			s += " "
		}
		s += w
	}
	return s
}
