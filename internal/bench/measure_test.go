package bench_test

// What the benchmarks measure of the processes: this one's CPU time and
// memory, and the emulators' CPU time and resident memory.

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cpuTime is the CPU time (user and system) of this process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// emulatorProcs calls fn for every process this one started but the child
// stand-ins, that is for the emulators, with the fields of its
// /proc/PID/stat after the command name and whether it is dynalite (else
// SQS's). It reads /proc: where there is none, it calls fn for none.
func emulatorProcs(fn func(pid int, stat []string, dynalite bool)) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return
	}
	self := strconv.Itoa(os.Getpid())
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || isStandInPID(pid) {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// pid (comm) state ppid … utime stime: after the command name,
		// which may hold spaces, ppid is the 2nd field, utime the 12th and
		// stime the 13th.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 13 || f[1] != self {
			continue
		}
		cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		fn(pid, f, bytes.Contains(cmd, []byte("dynalite")))
	}
}

// emulatorCPU is the CPU time (user and system) so far of the emulators
// this process started, SQS's and dynalite's: 0 where there is no /proc.
func emulatorCPU() (sqsCPU, dynamoCPU time.Duration) {
	const ticksPerSecond = 100 // USER_HZ, 100 on every Linux this runs on
	emulatorProcs(func(_ int, stat []string, dynalite bool) {
		utime, _ := strconv.ParseInt(stat[11], 10, 64)
		stime, _ := strconv.ParseInt(stat[12], 10, 64)
		d := time.Duration(utime+stime) * time.Second / ticksPerSecond
		if dynalite {
			dynamoCPU += d
		} else {
			sqsCPU += d
		}
	})
	return sqsCPU, dynamoCPU
}

// emulatorRSS is the resident memory (VmRSS) of the emulators this process
// started: 0 where there is no /proc.
func emulatorRSS() (sqsRSS, dynamoRSS uint64) {
	emulatorProcs(func(pid int, _ []string, dynalite bool) {
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			return
		}
		var rss uint64
		for line := range strings.Lines(string(status)) {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
				kb, _ := strconv.ParseUint(f[1], 10, 64)
				rss = kb << 10
			}
		}
		if dynalite {
			dynamoRSS += rss
		} else {
			sqsRSS += rss
		}
	})
	return sqsRSS, dynamoRSS
}

// memMetrics are the runtime metrics readMem reads.
var memMetrics = []string{
	"/memory/classes/total:bytes",
	"/memory/classes/heap/released:bytes",
	"/memory/classes/heap/objects:bytes",
	"/memory/classes/heap/unused:bytes",
}

// memSamples returns the samples of memMetrics, for readMem.
func memSamples() []metrics.Sample {
	samples := make([]metrics.Sample, len(memMetrics))
	for i, name := range memMetrics {
		samples[i].Name = name
	}
	return samples
}

// readMem reads samples (memSamples) and returns the Go heap in use
// (objects and unused span space) and the memory the Go runtime holds from
// the OS (mapped, minus what it released).
func readMem(samples []metrics.Sample) (heap, runtimeMem uint64) {
	metrics.Read(samples)
	v := func(i int) uint64 {
		if samples[i].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return samples[i].Value.Uint64()
	}
	return v(2) + v(3), v(0) - v(1)
}

// memNow collects garbage and returns what memSampler samples: the heap
// in use and the memory the Go runtime holds.
func memNow() (heap, runtimeMem uint64) {
	runtime.GC()
	return readMem(memSamples())
}

// memSampler records, every 10ms, the peak of the Go heap in use and of the
// memory the Go runtime holds from the OS.
type memSampler struct {
	stop    chan struct{}
	done    chan struct{}
	heap    uint64 // peak heap in use: objects and unused span space
	runtime uint64 // peak memory mapped by the runtime, minus what it released
}

// startMemSampler collects garbage and returns free memory to the OS, so
// that the peak is this run's, then starts sampling.
func startMemSampler() *memSampler {
	runtime.GC()
	debug.FreeOSMemory()
	m := &memSampler{stop: make(chan struct{}), done: make(chan struct{})}
	samples := memSamples()
	read := func() {
		heap, rt := readMem(samples)
		m.heap, m.runtime = max(m.heap, heap), max(m.runtime, rt)
	}
	read()
	go func() {
		defer close(m.done)
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-m.stop:
				read()
				return
			case <-t.C:
				read()
			}
		}
	}()
	return m
}

// Stop ends the sampling and returns the peaks in bytes.
func (m *memSampler) Stop() (heap, runtime uint64) {
	close(m.stop)
	<-m.done
	return m.heap, m.runtime
}
