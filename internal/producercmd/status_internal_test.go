package producercmd

import (
	"testing"
	"time"
)

func TestDrainMeter(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	m := &drainMeter{window: time.Minute}
	if _, ok := m.rate(); ok {
		t.Error("rate with no sample: ok")
	}
	m.add(t0, 1000)
	if _, ok := m.rate(); ok {
		t.Error("rate with one sample: ok")
	}
	// 10 a second for 90s: the rate spans the last minute (and the sample
	// just before it).
	for s := 5; s <= 90; s += 5 {
		m.add(t0.Add(time.Duration(s)*time.Second), 1000-10*s)
	}
	r, ok := m.rate()
	if !ok || r != 10 {
		t.Errorf("rate = %v, %v; want 10, true", r, ok)
	}
	if first := m.samples[0].at; first.Before(t0.Add(30*time.Second)) || first.After(t0.Add(30*time.Second)) {
		t.Errorf("oldest sample kept at %v; want the one a minute before the newest", first.Sub(t0))
	}
	// It stops: the rate over the last minute falls.
	for s := 95; s <= 150; s += 5 {
		m.add(t0.Add(time.Duration(s)*time.Second), 100)
	}
	if r, ok := m.rate(); !ok || r != 0 {
		t.Errorf("rate after a minute with no drain = %v, %v; want 0, true", r, ok)
	}
	if _, ok := etaSeconds(100, 0); ok {
		t.Error("an estimate with no drain")
	}
	if eta, ok := etaSeconds(100, 4); !ok || eta != 25 {
		t.Errorf("etaSeconds(100, 4) = %v, %v; want 25, true", eta, ok)
	}
	if eta, ok := etaSeconds(0, 0); !ok || eta != 0 {
		t.Errorf("etaSeconds(0, 0) = %v, %v; want 0, true", eta, ok)
	}
}

func TestStatusLineAndBar(t *testing.T) {
	r, eta := 12.5, 8.0
	rep := statusReport{Time: time.Date(2026, 12, 7, 11, 0, 0, 0, time.UTC), Backlog: 100, DrainPerSecond: &r, ETASeconds: &eta}
	if got, want := progressBar(rep, 400), "[######################........] 300 of 400 drained, 100 left  12.5/s  empty in about 8s"; got != want {
		t.Errorf("progressBar = %q, want %q", got, want)
	}
	if got, want := statusLine(rep), "2026-12-07T11:00:00Z backlog 100, drain 12.5/s, empty in about 8s"; got != want {
		t.Errorf("statusLine = %q, want %q", got, want)
	}
}
