// Package sandbox orchestrates sandbox lifecycles above the backends: it
// validates requests, records sandboxes in the store, starts and adopts their
// supervisors, and hands out agent clients for exec and file operations.
//
// It declares Backend, the small interface every runtime implements, and the
// Spec a backend receives. Nothing above this package knows which backend
// runs a sandbox.
package sandbox
