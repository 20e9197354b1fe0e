package gate

import (
	"math"
	"time"
)

// quota learns the rate Spotify admits from its answers alone: no window,
// no quota and no share of other tasks is configured, since Spotify
// publishes none and each changes without notice.
//
// Spotify counts an app's calls over a rolling window and answers 429, with
// a Retry-After, to calls beyond it. Whatever the window, the long-run rate
// a rolling window admits is its quota, and the Retry-After says how long
// the window stays full. So each 429 episode (the first 429 after calls
// flowed) teaches two rates:
//
//   - hi, the paced rate that drew it: known to be too high;
//   - the episode's goodput, the calls admitted since the last episode
//     divided by the time they took at their paced rates plus the
//     Retry-After: a rate known to have been admitted, pauses included. It
//     is the quota itself when a volley filled the window (any window
//     length), and below it when a penalty closed the API.
//
// The rate resumes at the lower of the goodput and cut×hi, then climbs by a
// share each step while the process uses it, up to a plateau of
// plateauShare×hi, where it holds: a 429 costs a pause of at least a second
// of the whole process, so the rate settles just under the lowest rate that
// drew one instead of sawing through it as TCP does. After a quiet spell at
// the plateau it probes above (the quota may have grown, or another task
// left), each failed probe doubling the spell.
//
// A penalty (a Retry-After far longer than the calls that drew it took, or
// Spotify's QUOTA_EXCEEDED) is costly, so the climb after one is careful:
// each step lasts a quarter of the penalty cycle, and after a second
// penalty within penaltyMemory the rate never again exceeds the last rate
// that held a whole step without a 429, until the memory passes.
//
// Several processes sharing one app's quota each run this on their own
// 429s. The process whose call finds the window full is the one that backs
// off, and a process's chance of that is its share of the calls, so the
// larger shares shrink more often and the fleet drifts towards equal
// shares; the probes, which raise every rate by the same absolute step,
// push the same way (the additive increase that makes TCP fair).
//
// quota is not safe for concurrent use: the Gate holds its lock.
type quota struct {
	ceiling float64 // SPOTIFY_RATE: never above it
	floor   float64 // never below it

	rate float64 // the paced rate now
	hi   float64 // the lowest rate that drew a 429 lately (0: none)
	cap  float64 // after two penalties: never above it (0: no cap)

	// The current cycle: since the last pause ended.
	cycleStart time.Time
	paced      time.Duration // Σ 1/rate over the cycle's sends
	sent       int           // calls let through in the cycle
	recent     [4]time.Time  // the last calls let through, a ring
	recentI    int           // the oldest of recent (the next to overwrite)
	recentN    int
	rejected   int // of which answered 429

	step      time.Duration // how long each climb step lasts
	stepStart time.Time
	stepSent  int     // calls let through in this step
	stepRate  float64 // the rate when this step started
	heldRate  float64 // the last rate that held a whole step without a 429

	lastEpisode    time.Time
	lastEpisodeEnd time.Time     // when its pause ended
	streak         int           // episodes in a row with no step held between them
	probeAfter     time.Duration // quiet spell at the plateau before a probe
	probed         time.Time     // when the plateau was last raised by a probe

	penalties   int // costly episodes within penaltyMemory
	lastPenalty time.Time
}

const (
	cutShare      = 0.9  // of hi, the most the rate resumes at
	plateauShare  = 0.97 // of hi, where the climb stops
	climbStep     = 0.25 // the rate grows by this share each step...
	penaltyClimb  = 0.5  // ...or this one after a penalty, with longer steps
	minStep       = time.Second
	maxStep       = 15 * time.Second
	probeFirst    = 30 * time.Second // quiet spell before the first probe
	probeMax      = 10 * time.Minute
	probeShare    = 0.03 // a probe raises hi by this share...
	probeCeiling  = 0.01 // ...or this share of the ceiling, whichever is more
	penaltyMemory = 10 * time.Minute
	// A Retry-After at least this long is costly: a penalty, or a volley
	// into a long window.
	penaltyMin = 10 * time.Second
	// goodputMin: the shortest cycle, pause included, whose goodput is
	// trusted.
	goodputMin = 2 * time.Second
	// busyShare: a step or a cycle in which the process sent less than this
	// share of its rate proves nothing about the quota.
	busyShare = 0.8
)

// traceQuota, when set (by tests), sees every episode.
var traceQuota func(q *quota, now time.Time, drew, goodput float64, cycle, retryAfter time.Duration, costly bool)

func newQuota(ceiling float64, now time.Time) *quota {
	q := &quota{
		ceiling: ceiling, floor: max(ceiling/1000, 0.01),
		rate: ceiling, step: minStep, probeAfter: probeFirst,
	}
	q.restart(now)
	return q
}

// restart begins a cycle and a step at now.
func (q *quota) restart(now time.Time) {
	q.cycleStart, q.paced, q.sent, q.rejected = now, 0, 0, 0
	q.stepStart, q.stepSent, q.stepRate = now, 0, q.rate
}

// onSend records a call let through at now and returns the rate to pace at
// from now on.
func (q *quota) onSend(now time.Time) float64 {
	q.recent[q.recentI] = now
	q.recentI = (q.recentI + 1) % len(q.recent)
	q.recentN = min(q.recentN+1, len(q.recent))
	q.sent++
	q.stepSent++
	q.paced += time.Duration(float64(time.Second) / q.rate)
	if el := now.Sub(q.stepStart); el >= q.step {
		q.endStep(now, el)
	}
	return q.rate
}

// endStep closes a climb step: a step the process used fully and without a
// 429 proves its rate, and the rate climbs towards the plateau.
func (q *quota) endStep(now time.Time, el time.Duration) {
	busy := float64(q.stepSent) >= busyShare*q.stepRate*el.Seconds()
	if busy {
		q.heldRate = q.stepRate
		q.climb(now)
	}
	q.stepStart, q.stepSent, q.stepRate = now, 0, q.rate
}

func (q *quota) climb(now time.Time) {
	top := q.ceiling
	if q.hi > 0 {
		plateau := plateauShare * q.hi
		if q.rate >= plateau*0.999 && now.Sub(q.lastEpisode) >= q.probeAfter && now.Sub(q.probed) >= q.probeAfter {
			// A quiet spell at the plateau: perhaps the quota grew. Probe
			// one step above; a 429 teaches the truth again.
			q.hi += max(probeShare*q.hi, probeCeiling*q.ceiling)
			q.probed = now
			plateau = plateauShare * q.hi
		}
		top = min(top, plateau)
	}
	if q.cap > 0 {
		if now.Sub(q.lastPenalty) >= penaltyMemory {
			q.cap, q.penalties = 0, 0
		} else {
			top = min(top, q.cap)
		}
	}
	g := climbStep
	if q.penalties > 0 {
		g = penaltyClimb
	}
	if r := min(top, q.rate*(1+g)); r > q.rate {
		q.set(r)
	}
}

// on429 records a 429 to a call sent in this cycle. first is whether it
// starts an episode (no pause was running); retryAfter is the pause it
// starts, reason Spotify's reason for it. It returns the rate to pace at
// once the pause ends.
func (q *quota) on429(now time.Time, first bool, retryAfter time.Duration, reason string) float64 {
	q.rejected++
	if !first {
		return q.rate
	}
	cycle := q.paced
	// Busy: its last calls came about as fast as its rate allowed.
	busy := q.recentN == len(q.recent) &&
		now.Sub(q.recent[q.recentI]) <= time.Duration(float64(len(q.recent))/(busyShare*q.rate)*float64(time.Second))+100*time.Millisecond
	if !busy {
		// A 429 to a process that hardly sends (other tasks spent the
		// app's quota, or a restart inside a penalty) teaches nothing
		// about this process's share: it only pauses.
		q.restart(now.Add(retryAfter)) // the next cycle starts when the pause ends
		return q.rate
	}
	accepted := max(q.sent-q.rejected, 1)
	goodput := float64(accepted) / (cycle + retryAfter).Seconds()
	drew := q.stepRate // the rate the calls of this step were paced at
	if q.hi == 0 || drew < q.hi || now.Sub(q.lastEpisode) > q.probeAfter {
		q.hi = drew
	} else {
		q.hi = min(q.hi, drew)
	}
	if q.probed.After(q.lastEpisode) && now.Sub(q.probed) < q.probeAfter {
		q.probeAfter = min(2*q.probeAfter, probeMax) // the probe failed
	} else if now.Sub(q.lastEpisode) > 2*q.probeAfter {
		q.probeAfter = probeFirst
	}
	q.lastEpisode = now
	q.lastEpisodeEnd = now.Add(retryAfter)

	// A long pause is costly whatever drew it (a penalty, or a volley into a
	// long window): the climb after it is careful.
	costly := reason == "QUOTA_EXCEEDED" || retryAfter >= penaltyMin
	// Episodes that follow each other without a step held in between say
	// the last cut was not enough: each cuts deeper (0.9, 0.81, 0.66, 0.5).
	if q.heldRate == 0 && now.Sub(q.lastEpisodeEnd) < 10*q.step {
		q.streak = min(q.streak+1, 3)
	} else {
		q.streak = 0
	}
	next := drew * max(math.Pow(cutShare, float64(int(1)<<q.streak)), 0.5)
	if cycle+retryAfter >= goodputMin {
		// The cycle's goodput, pause included, is a rate the quota admits:
		// when a volley filled the window or a penalty closed the API, it is
		// far below the rate that drew the 429, and the better measure. (Over
		// shorter cycles Retry-After's rounding up to whole seconds makes it
		// too low to use.)
		next = min(next, goodput)
	}
	q.step = minStep
	if costly {
		if now.Sub(q.lastPenalty) >= penaltyMemory {
			q.penalties = 0
		}
		q.penalties++
		q.lastPenalty = now
		if q.penalties >= 2 && q.heldRate > 0 {
			// A second penalty: stay at what is known to have been
			// admitted for as long as penalties are remembered.
			q.cap = cutShare * min(q.heldRate, q.hi)
			next = min(next, q.cap)
		}
		q.step = min(max((cycle+retryAfter)/4, minStep), maxStep)
	}
	q.set(max(next, q.floor))
	if traceQuota != nil {
		traceQuota(q, now, drew, goodput, cycle, retryAfter, costly)
	}
	q.heldRate = 0
	q.restart(now.Add(retryAfter)) // the next cycle starts when the pause ends
	return q.rate
}

func (q *quota) set(r float64) {
	if math.IsNaN(r) || r <= 0 {
		r = q.floor
	}
	q.rate = min(max(r, q.floor), q.ceiling)
}
