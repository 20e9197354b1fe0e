// Package worker drains the artist queues: it receives messages, fetches each
// artist's top tracks from Spotify through one shared rate limiter, writes
// them to the store, and deletes a message only after its writes are durable.
//
// A Worker serves one or two lanes: the chatbot's lane first, and optionally
// a bulk lane that gets what is left. Run stops in two phases when its
// context ends: it stops receiving, lets in-flight work finish for at most
// Options.DrainTimeout, then cancels what is left and gives those messages back
// to the queue, so that nothing is lost.
//
// New takes the parts directly (the interfaces speak aliased types, so other
// modules can implement them); the worker command wires them from the
// contract's URLs.
package worker
