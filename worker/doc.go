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

// Inside, the package has three rooms, each behind one door, and a delivery
// passes through them in order:
//
//   - receiving (receive.go): the receive loop, the slots the lanes share,
//     idle tracking; its door is lane.receive, which Run starts per lane
//     with the run's state.
//   - settling a delivery (settle.go): the one switch that decides each
//     delivery's fate and counts its outcome once, batched deletes, release,
//     postpone, poison and the heartbeat; its door is lane.handle.
//   - fetching (fetch.go): one fetch per artist in flight, freshness,
//     Spotify with retries, the save; its door is fetching.process.
//
// worker.go wires them (New, Run, Ready), options.go holds the settings,
// their defaults and the named timeouts, and lane.go what one lane knows of
// its queue.
