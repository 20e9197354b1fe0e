package gate

import (
	"math"
	"math/rand/v2"
	"time"
)

// quota learns the rate Spotify admits from its answers alone: no window,
// no quota and no share of other tasks is configured, since Spotify
// publishes none and each changes without notice.
//
// Spotify counts an app's calls over a rolling window and answers 429, with
// a Retry-After, to calls beyond it. Whatever the window, the long-run rate
// it admits is a sharp line: a process paced at or under it never draws a
// 429; one paced above it draws one within a window. So the controller
// searches for that line between two bounds:
//
//   - lo, a rate that held a whole step without a 429 while the process
//     used it fully: known to be admitted;
//   - hi, the rate that drew the latest 429: known to be too high.
//
// Each step it moves to the middle of the two (never more than half above
// lo), and stops once they are within tolerance (5%) of each other, at lo:
// a bisection, so that it settles close under the admitted rate in a
// handful of steps from any starting SPOTIFY_RATE, where a climb of a fixed
// share would saw through the line and pay a pause of a second or more for
// each 429. The tolerance is wide because every step that finds the line
// costs such a pause (Retry-After counts whole seconds: half of a 2s
// window), and the narrower the tolerance the more steps above the line;
// the reaches below close what is left. A step lasts at least as long as the longest window the answers
// have shown (the first volley into an empty window fills it exactly: its
// duration plus the Retry-After is the window), so that a step that held
// proves its rate. The first volley also gives lo at once: the calls it got
// through divided by that window.
//
// Quotas move: the app's quota, and the share other tasks leave. A 429 to a
// rate at or under lo means lo no longer holds, and the search starts again
// below it: a little below for the first such 429 in a while, which is most
// often calls that bunched on their way at the edge, and by a tenth for
// another soon after. After a quiet spell at lo the controller reaches a
// little above it (the quota may have grown, or another task left); a reach
// that holds climbs on, a little higher each step, until a 429, and each
// reach that fails doubles the spell, up to reachMax.
//
// A penalty (a Retry-After far longer than the calls that drew it took, or
// Spotify's QUOTA_EXCEEDED) is costly, so the climb after one is careful:
// steps of a quarter of the penalty cycle, each at most half above lo; after
// a second penalty within penaltyMemory the rate never again exceeds what
// was admitted before it, until the memory passes.
//
// Several processes sharing one app's quota each run this on their own
// 429s. The process whose call finds the window full is the one that backs
// off, and a process's chance of that is its share of the calls, so the
// larger shares shrink more often and the fleet drifts towards equal
// shares; the reaches, which raise every rate by the same absolute step,
// push the same way (the additive increase that makes TCP fair).
//
// quota is not safe for concurrent use: the Gate holds its lock.
type quota struct {
	ceiling float64 // SPOTIFY_RATE: never above it
	floor   float64 // never below it

	rate float64       // the paced rate now
	lo   float64       // a rate that held a whole step lately (0: none)
	hi   float64       // the rate that drew the latest 429 (0: none)
	cap  float64       // after two penalties: never above it (0: no cap)
	win  time.Duration // the longest window the answers have shown
	span time.Duration // the same, penalties included: how long a reach lasts

	// The current cycle: since the last pause ended.
	cycleStart time.Time
	fresh      bool // the cycle began with the window empty: at the start
	shared     bool // a newcomer: its first call met a window other tasks had filled
	lastSend   time.Time
	sent       int          // calls let through in the cycle
	recent     [4]time.Time // the last calls let through, a ring
	recentI    int          // the oldest of recent (the next to overwrite)
	recentN    int
	rejected   int     // of which answered 429
	failed     int     // of which failed for another reason (a 5xx, a reset)
	cycleLo    float64 // lo when the cycle began: what held before it

	step       time.Duration // how long each step lasts
	stepStart  time.Time
	stepSent   int     // calls let through in this step
	stepFailed int     // of which failed for another reason
	busySteps  int     // steps of the cycle the process used fully
	stepRate   float64 // the rate when this step started

	streak      int           // episodes in a row with no step held between them
	lastEpisode time.Time     // the latest 429 episode
	pauseEnd    time.Time     // when its pause ended
	reachAfter  time.Duration // quiet spell at lo before a reach
	reached     time.Time     // when the last reach began
	reachHi     float64       // hi when it began
	nextSpell   time.Duration // the quiet spell before the next reach (0: not drawn yet)

	lastYield   time.Time // the latest 429 to a rate at or under lo
	penalties   int       // costly episodes within penaltyMemory
	lastPenalty time.Time // when the latest penalty ended: calls resumed

	// noReach: once the line is found, look no higher, while the chatbot's
	// lane is served beside a backfill: a reach finds the line with a 429,
	// which pauses the user's call too (see lanes.go).
	noReach bool

	rng *rand.Rand // spreads the reaches of a fleet's processes apart
}

const (
	cutShare      = 0.9  // with no lo, the rate resumes at this share of what drew a 429
	tolerance     = 0.05 // the search stops when hi−lo is this share of hi
	yieldShare    = 0.05 // a rate that stopped holding settles this much lower...
	edgeYield     = 0.03 // ...or this much, the first time in yieldMemory
	yieldMemory   = 30 * time.Second
	climbStep     = 0.25 // a step is at most this share above lo...
	penaltyClimb  = 0.5  // ...or this one after a penalty, with longer steps
	minStep       = time.Second
	maxStep       = 15 * time.Second
	maxSpan       = time.Minute      // the longest a reach lasts
	reachFirst    = 30 * time.Second // quiet spell before the first reach
	reachMax      = 10 * time.Minute
	reachShare    = 0.03  // a reach is this share above lo...
	reachCeiling  = 0.005 // ...or this share of the ceiling, whichever is more
	penaltyMemory = 10 * time.Minute
	// A Retry-After at least this long is costly: a penalty, or a volley
	// into a long window.
	penaltyMin = 10 * time.Second
	// busyShare: a step or a cycle in which the process sent less than this
	// share of its rate proves nothing about the quota.
	busyShare = 0.8
	// idleFresh: after this long without a call, any window is empty again.
	idleFresh = 2 * time.Minute
)

// traceQuota, when set (by tests), sees every episode.
var traceQuota func(q *quota, now time.Time, drew float64, retryAfter time.Duration, costly bool)

func newQuota(ceiling float64, now time.Time) *quota {
	q := &quota{
		ceiling: ceiling, floor: max(ceiling/1000, 0.01),
		rate: ceiling, step: minStep, reachAfter: reachFirst,
		rng: rand.New(rand.NewPCG(uint64(now.UnixNano()), 0x5eed)),
	}
	q.restart(now)
	q.fresh = true
	return q
}

// restart begins a cycle and a step at now.
func (q *quota) restart(now time.Time) {
	q.cycleStart, q.sent, q.rejected, q.failed, q.fresh, q.cycleLo = now, 0, 0, 0, false, q.lo
	q.stepStart, q.stepSent, q.stepFailed, q.busySteps, q.stepRate = now, 0, 0, 0, q.rate
}

// onFailed records that a call let through in this cycle got no usable
// answer (a 5xx, a reset, a timeout): it says nothing about the quota. Its
// step proves nothing by it, and the cycle's volley no longer measures the
// window, since the calls that failed may not have counted in it.
func (q *quota) onFailed() {
	q.failed++
	q.stepFailed++
	q.fresh = false
}

// onSend records a call let through at now and returns the rate to pace at
// from now on.
func (q *quota) onSend(now time.Time) float64 {
	if !q.lastSend.IsZero() && now.Sub(q.lastSend) >= max(idleFresh, 2*q.win) {
		q.restart(now)
		q.fresh, q.shared = true, false
	}
	q.lastSend = now
	q.recent[q.recentI] = now
	q.recentI = (q.recentI + 1) % len(q.recent)
	q.recentN = min(q.recentN+1, len(q.recent))
	q.sent++
	q.stepSent++
	if el := now.Sub(q.stepStart); el >= q.step && (!q.reaching() || el >= q.span) {
		q.endStep(now, el)
	}
	return q.rate
}

// probing reports whether the step now is a reach: it lasts a whole span,
// so that holding proves its rate even in a window longer than a step.
func (q *quota) reaching() bool { return !q.reached.Before(q.stepStart) }

// endStep closes a step that drew no 429: one the process used fully proves
// its rate, and the search moves on.
func (q *quota) endStep(now time.Time, el time.Duration) {
	busy := float64(q.stepSent-q.stepFailed) >= busyShare*q.stepRate*el.Seconds()
	if busy {
		q.busySteps++
		q.held(now, q.stepRate)
	}
	q.stepStart, q.stepSent, q.stepFailed, q.stepRate = now, 0, 0, q.rate
}

// held takes a rate that held a whole step and chooses the next one.
func (q *quota) held(now time.Time, r float64) {
	q.streak = 0
	// A step above lo that holds after a reach began (no 429 since) is
	// the reach's climb: the reach itself, or a step after it.
	reach := q.reached.After(q.lastEpisode) && r > q.lo
	q.lo = max(q.lo, r)
	if q.hi > 0 && q.lo >= q.hi {
		q.hi = 0 // the quota grew: search upwards again
	}
	if reach {
		// A reach held: the quota grew, or another task left or yielded.
		// Search a little higher, and no further than that from each step
		// that holds: so the rate climbs reachShare a step until a 429,
		// the slow increase of TCP's congestion avoidance, never the
		// search's leaps. In a fleet a reach holds whenever the 429 it
		// causes falls on another task; a task that then leapt would take
		// the larger share, while this climb lets a small share catch up
		// (stopping it at the first step took the virtual sweep from 10
		// cases missing a goal to 13, all fairness but one).
		q.hi = q.lo * (1 + 2*reachShare)
		if q.noReach {
			// The chatbot's lane is served beside a backfill: the climb
			// stops here, at a rate that held (see noReach).
			q.hi = q.lo * (1 + reachShare)
		}
		q.reachAfter = reachFirst
	}
	if q.penalties > 0 && now.Sub(q.lastPenalty) >= penaltyMemory {
		// The penalties are forgotten: the climb is an ordinary one again,
		// with ordinary steps, and nothing caps it.
		q.cap, q.penalties = 0, 0
		q.step = min(max(q.win, minStep), maxStep)
	}
	g := climbStep
	if q.penalties > 0 {
		g = penaltyClimb
	}
	next := q.lo * (1 + g)
	switch {
	case q.hi == 0:
	case q.hi-q.lo > tolerance*q.hi:
		if q.penalties == 0 {
			next = q.lo * (1 + 2*g) // a known hi bounds the overshoot
		}
		next = min(next, (q.lo+q.hi)/2)
	default:
		// Found: stay at lo. After a quiet spell, reach a little above it.
		next = q.lo
		if spell := q.spell(); !q.noReach && now.Sub(q.pauseEnd) >= spell && now.Sub(q.reached) >= spell {
			next = q.lo + max(reachShare*q.lo, reachCeiling*q.ceiling)
			q.reached, q.reachHi, q.nextSpell = now, q.hi, 0
		}
	}
	if q.cap > 0 {
		next = min(next, q.cap)
	}
	q.set(next)
}

// spell is the quiet spell before the next reach: reachAfter, stretched by
// up to half at random so that processes which paused together do not reach
// together.
func (q *quota) spell() time.Duration {
	if q.nextSpell == 0 {
		q.nextSpell = q.reachAfter + time.Duration(q.rng.Int64N(int64(q.reachAfter/2)+1))
	}
	return q.nextSpell
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
	// Busy: its last calls came about as fast as its rate allowed.
	busy := q.recentN == len(q.recent) &&
		now.Sub(q.recent[q.recentI]) <= time.Duration(float64(len(q.recent))/(busyShare*q.rate)*float64(time.Second))+100*time.Millisecond
	if !busy {
		// A 429 to a process that hardly sends (other tasks spent the
		// app's quota, or a restart inside a penalty) teaches nothing
		// about this process's share: it only pauses.
		// A newcomer's first call, sent alone, can meet a window that
		// other tasks filled; its first busy volley after the pause still
		// shows the share they leave it, so it still counts as the first
		// (but see shared below).
		fresh := q.fresh
		q.restart(now.Add(retryAfter)) // the next cycle starts when the pause ends
		q.fresh = fresh
		if fresh && !isCostly(retryAfter, reason) {
			q.shared = true
		}
		return q.rate
	}
	drew := q.stepRate // the rate the calls of this step were paced at
	accepted := max(q.sent-q.rejected-q.failed, 1)
	cycle := now.Sub(q.cycleStart)
	// A long pause is costly whatever drew it (a penalty, or a volley into a
	// long window): the climb after it is careful.
	costly := isCostly(retryAfter, reason)

	// The first volley into an empty window filled it: it ran for the
	// window less the Retry-After, and what it got through is the window's
	// quota (Retry-After rounds up to whole seconds, so this is a little
	// long and the rate a little low: safe). A penalty looks the same, so
	// the window it shows is used only to pace the careful climb.
	// Only a volley with nothing known before it: a rate that held before
	// this cycle is not given up for one volley (a pause erases nothing,
	// and one 429 costs at most a yield, below).
	var volley float64
	if q.fresh && q.cycleLo == 0 {
		volley = float64(accepted) / (cycle + retryAfter).Seconds()
		if q.shared {
			// A newcomer's volley is biased high: the tasks whose calls
			// filled the window when its first call came were answered
			// 429 then too, and paused, and its volley took the room
			// their pauses left. It counts what it saw as shared with
			// one other task at least; if it is alone after all, the
			// steps that hold find the rest (hi is not halved).
			// In the simulator's fleet of four at a 2s window this took
			// the 429 share from 2.9% to 2.2% and Jain from 0.85 to 0.92.
			volley /= 2
			q.shared = false
		}
	}
	if !costly {
		q.win = max(q.win, retryAfter)
		if q.fresh {
			q.win = max(q.win, cycle+retryAfter)
		}
	}
	q.span = max(q.span, q.win)
	if q.fresh {
		q.span = min(max(q.span, cycle+retryAfter), maxSpan)
	}

	q.hi = drew
	if q.lo >= drew {
		// What held no longer does: the quota shrank, or another task took
		// a share. Yield a share of the rate, as a TCP flow does on a loss:
		// the larger the rate, the more often it meets a full window and
		// the more it yields, so that the fleet's shares even out.
		//
		// But the first such 429 after a quiet spell is most likely the
		// edge, not a new share: calls paced just under the quota that
		// bunched on their way (a busy core, a collection) and put one
		// call too many in a window. It yields edgeYield, and searches no
		// higher than a third of that under what drew it. Only another
		// within yieldMemory yields the full share.
		if now.Sub(q.lastYield) > yieldMemory {
			q.lo, q.hi = (1-edgeYield)*drew, drew*(1-edgeYield/3)
		} else {
			q.lo, q.hi = cutShare*drew, drew*(1-yieldShare)
		}
		q.lastYield = now
	}
	if q.reached.After(q.lastEpisode) && now.Sub(q.reached) <= max(q.span, q.step)+q.step {
		// The reach failed: what was known before it still holds.
		q.reachAfter = min(2*q.reachAfter, reachMax)
		if q.reachHi > q.lo {
			q.hi = min(q.hi, q.reachHi)
		}
	}
	// Episodes that follow each other with no step held between them say
	// the cut was not enough: each cuts deeper (0.9, 0.81, 0.66, 0.5). But
	// only when the process used its rate since the last one: a process
	// that cannot use its rate (its slots are busy elsewhere, or others
	// take the window) holds no step whatever its rate, and deepening its
	// cuts would take it to a few percent of its share; it cuts a tenth.
	if q.lo == 0 {
		if q.busySteps > 0 || q.streak == 0 {
			q.streak = min(q.streak+1, 3)
		}
	}
	next := q.lo
	if next == 0 {
		next = drew * max(math.Pow(cutShare, float64(int(1)<<(q.streak-1))), 0.5)
	}
	if volley > 0 && volley < drew {
		// (Steps that held before the window first filled proved nothing.)
		q.lo, next = volley, volley
		// Retry-After is at most a second long, so the window is at most a
		// second shorter and the rate at most this high. (Another task's
		// calls in the window would make it higher: a step that holds above
		// it sends the search upwards again.)
		// A penalty closes the API for far longer than the volley that drew
		// it took; so does a volley far above the quota into a long window.
		// Either way the window is unknown and the careful climb finds it.
		if short := cycle + retryAfter - time.Second; short > 0 && (!costly || cycle >= (cycle+retryAfter)/20) {
			q.hi = max(min(drew, float64(accepted)/short.Seconds()), q.lo)
		}
	}
	q.step = min(max(q.win, minStep), maxStep)
	if costly {
		if now.Sub(q.lastPenalty) >= penaltyMemory {
			q.penalties, q.cap = 0, 0
		}
		q.penalties++
		q.lastPenalty = now.Add(retryAfter) // remembered from its end, however long it lasts
		if q.penalties >= 2 {
			// A second penalty: stay at what is known to have been
			// admitted for as long as penalties are remembered.
			q.cap = min(next, cutShare*drew)
			next = q.cap
		}
		q.step = min(max((cycle+retryAfter)/4, q.step), maxStep)
	}
	q.lastEpisode, q.pauseEnd, q.nextSpell = now, now.Add(retryAfter), 0
	q.set(next)
	if traceQuota != nil {
		traceQuota(q, now, drew, retryAfter, costly)
	}
	q.restart(now.Add(retryAfter)) // the next cycle starts when the pause ends
	return q.rate
}

// isCostly reports whether a pause is costly: a penalty (Spotify's
// QUOTA_EXCEEDED, or a Retry-After of penaltyMin or more), or a volley into
// a long window.
func isCostly(retryAfter time.Duration, reason string) bool {
	return reason == "QUOTA_EXCEEDED" || retryAfter >= penaltyMin
}

// found reports whether the search has found the line: the rate is lo,
// within tolerance of a rate that drew a 429.
func (q *quota) found() bool {
	return q.hi > 0 && q.hi-q.lo <= tolerance*q.hi && q.rate <= q.lo
}

func (q *quota) set(r float64) {
	if math.IsNaN(r) || r <= 0 {
		r = q.floor
	}
	q.rate = min(max(r, q.floor), q.ceiling)
}
