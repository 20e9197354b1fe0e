// Package gate is the one owner of whether this process may call Spotify
// now. Every Spotify call passes it. It is a thin join of parts that each
// own one decision, each in a file of its own:
//
//   - quota.go, pacer.go: how fast. A controller learns the rate Spotify
//     admits from its answers alone (no window is configured), under the
//     ceiling SPOTIFY_RATE, and a token bucket paces calls at it. A climb
//     above the rate that held is a "reach".
//   - pause.go: whether paused. A 429's Retry-After (a cooldown, or a
//     penalty when it is long or Spotify says its quota is spent) and a
//     refusal (a 403 for top-tracks, or rejected credentials) are each a
//     Pause: a reason and an end. After a pause one call leads and the
//     rest wait for its answer (lead.go).
//   - breaker.go, fault.go: whether Spotify (or the store) is down. The
//     outage breaker opens on failures that are not the artists' own across
//     several artists, and one probe at a time tests for recovery; fault.go
//     says, in one place, which outcomes count toward an outage and which
//     artists' failures are their own.
//   - lanes.go: who goes first. The chatbot's lane before the bulk lane.
//
// The protocol is one call and one report: Wait lets a call through and
// returns done, which the caller calls exactly once with the call's Outcome.
// A pause longer than the caller should wait holding its message is not
// slept through: Wait returns a *PausedError saying why and until when, and
// the caller gives its work back without spending a delivery. The pause a
// caller's calls met is also kept in its context's Verdict (WithVerdict), so
// that the work's error can carry it whatever the call returned.
package gate
