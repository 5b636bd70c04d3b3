// Package workback moves a project into a sandbox and the agent's work back
// out, without ever giving the sandbox a writable view of the host tree.
//
// Snapshot describes a host directory before the sandbox is made: whether it
// is in a git work tree, its top level, HEAD, the current branch and the
// directory's place below the top level. Pack writes the tar stream that
// becomes the sandbox's /workspace: for a git work tree the tracked and the
// untracked-but-not-ignored files of the directory as they are on disk (the
// agent sees uncommitted edits), never the .git directory, whose hooks and
// configuration would run code on the host later; for any other directory
// every regular file, directory and symlink, symlinks kept as links.
//
// Collect reads a tar stream of the sandbox's /workspace after the agent ran
// and brings the changes back. The stream is hostile input: sizes and entry
// counts are bounded, names are checked by safetar.CleanName, symlinks are
// data and never followed, nothing from it is written to a path it names
// (file contents are staged under numbered names in a private temporary
// directory), .git inside it is ignored and device nodes are refused. For a
// git source the result is a commit whose parent is the HEAD the copy was
// made from and whose tree is HEAD's with the directory replaced by the
// sandbox's, on a new branch agentkernel/<sandbox>. The commit is built in a
// private bare repository that borrows the host repository's objects as an
// alternate; only the new objects and the branch are then added to the host
// repository. The user's working tree, index, HEAD and checked-out branch
// are never touched, and no hook, fsmonitor, pager, filter or other program
// named by any git configuration runs (see gitEnv and hardening). For a
// directory outside git the result is a patch file. Diff shows what Collect
// would bring back.
//
// Files that were tracked in HEAD are always taken back; new files that the
// repository's ignore rules (the sandbox's .gitignore files, .git/info/exclude
// and the user's core.excludesFile) ignore are left out, so that build
// output and installed dependencies do not land in the branch.
//
// The package is Linux-only (like internal/safetar) and needs the git
// command.
package workback
