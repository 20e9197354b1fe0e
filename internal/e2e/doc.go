// Package e2e holds the project's process-level end-to-end tests: they build
// bin/worker, bin/producer and bin/fakespotify once, run them as separate
// processes against the local SQS and DynamoDB emulators (internal/testenv)
// and a Spotify stand-in, and check what the contract promises from the
// outside: exit codes, summaries, the rows left in the tables, the queues left
// empty, the number of Spotify calls, and a graceful stop on SIGTERM.
//
// Run them with `go test ./internal/e2e/` after `npm ci` in the project root.
// The package has no non-test code.
package e2e
