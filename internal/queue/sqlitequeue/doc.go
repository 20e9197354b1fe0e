// Package sqlitequeue is the embedded queue backend: a durable queue with the
// semantics of an SQS standard queue, kept in one SQLite file through the
// pure-Go driver modernc.org/sqlite (binaries build with CGO_ENABLED=0).
//
// A receive hands out up to ten visible messages at once and hides them for
// the visibility timeout; each delivery gets a fresh receipt, so a receipt
// stops working once its message was delivered again. A message received
// MaxReceiveCount times without being deleted moves to a dead-letter table
// the next time it would be delivered, as SQS's redrive policy does.
//
// Several queues (lanes) live in one file, told apart by name, and several
// processes (the producer and any number of workers) share the file: it runs
// in WAL mode with a busy timeout, every write is one BEGIN IMMEDIATE
// transaction, so a message is never handed to two receivers while it is
// invisible. The file and the tables (queue_messages, queue_dead_letters) are
// created when missing; the store's tables may live in the same file.
//
// # Why not a library
//
// maragu.dev/goqite, the best-kept Go queue on SQLite and itself modelled on
// SQS, was considered. It receives one message per call, deletes and extends
// by message ID (so a stale delivery can delete a message that was handed to
// someone else since), leaves messages that reached the receive limit in the
// table with no dead-letter queue, reads the wall clock, and reports neither
// receive counts nor send times. Adding per-delivery receipts, a dead-letter
// table, batches and an injectable clock would have meant rewriting most of
// its two hundred lines, so this package implements the same idea directly
// on database/sql: one table, one UPDATE … RETURNING per receive.
//
// # Where it differs from SQS
//
// Timeouts and delays keep millisecond precision (SQS rounds to seconds).
// Attributes (visibility timeout, MaxReceiveCount) belong to the handle that
// receives, not to the file: give every worker the same Options. The
// dead-letter move happens on the receive (or DeadLetters call) that finds the
// exhausted message visible, as in SQS. A long poll wakes at once for
// messages sent through the same handle and within PollInterval for messages
// sent by other handles or processes.
package sqlitequeue
