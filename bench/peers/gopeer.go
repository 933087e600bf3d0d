// gopeer: the Go side of the scheduler comparison. Each scenario prints
// "bench <name> <key>=<value> ... runtime=go" like snow-bench-sched.
//
//	go build -o gopeer gopeer.go
//	GOMAXPROCS=1 ./gopeer pingpong_same_worker
//	GOMAXPROCS=2 ./gopeer pingpong_cross_worker
//	GOMAXPROCS=2 ./gopeer pingpong_unpinned
//	GOMAXPROCS=2 ./gopeer spawn
//	GOMAXPROCS=2 ./gopeer ring
//	GOMAXPROCS=1 ./gopeer gc_alloc
//
// An optional second argument "quick" divides the counts by 10.
package main

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

const (
	ppSame   = 1000000
	ppCross  = 20000
	spawns   = 1000000
	ringSize = 10000
	ringHops = 1000000
	// Children alive at once in the spawn scenario, as in snow-bench-sched.
	outstanding = 1000
)

var start = time.Now()

func nowNs() int64 { return int64(time.Since(start)) }

func emit(format string, args ...interface{}) {
	fmt.Printf("bench "+format+" runtime=go\n", args...)
}

// pingpong: a client goroutine sends a small value over an unbuffered
// channel and waits for the echo. With pin, each goroutine is locked to its
// own OS thread, the closest Go has to actors pinned to two workers.
func pingpong(name string, n int, pin bool) {
	ping := make(chan int)
	pong := make(chan int)
	done := make(chan int64)
	go func() {
		if pin {
			runtime.LockOSThread()
		}
		for x := range ping {
			pong <- x
		}
	}()
	go func() {
		if pin {
			runtime.LockOSThread()
		}
		loop := func(n int) {
			for i := 0; i < n; i++ {
				ping <- i
				if <-pong != i {
					panic("wrong echo")
				}
			}
		}
		loop(n / 10)
		t0 := nowNs()
		loop(n)
		t1 := nowNs()
		close(ping)
		done <- t1 - t0
	}()
	ns := <-done
	emit("%s rtt_ns=%.1f round_trips=%d gomaxprocs=%d locked=%t", name, float64(ns)/float64(n), n,
		runtime.GOMAXPROCS(0), pin)
}

func spawnBench(n int) {
	done := make(chan struct{}, outstanding)
	t0 := nowNs()
	out := 0
	for i := 0; i < n; i++ {
		if out == outstanding {
			<-done
			out--
		}
		go func() { done <- struct{}{} }()
		out++
	}
	for ; out > 0; out-- {
		<-done
	}
	t1 := nowNs()
	emit("spawn actors_per_s=%.0f peak_rss_kib=%d actors=%d gomaxprocs=%d",
		float64(n)/(float64(t1-t0)/1e9), vmHWMKiB(), n, runtime.GOMAXPROCS(0))
}

func vmHWMKiB() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "VmHWM:") {
			fields := strings.Fields(line[6:])
			if len(fields) > 0 {
				v, err := strconv.ParseInt(fields[0], 10, 64)
				if err == nil {
					return v
				}
			}
		}
	}
	return -1
}

// ring: each goroutine owns a one-slot channel (a mailbox); the token
// carries the hops still to go. The node that receives 0 reports, then -1
// travels once round the ring to stop every node.
func ring(size, hops int) {
	chans := make([]chan int, size)
	for i := range chans {
		chans[i] = make(chan int, 1)
	}
	done := make(chan int64)
	for i := 0; i < size; i++ {
		in, next := chans[i], chans[(i+1)%size]
		go func() {
			for k := range in {
				switch {
				case k == 0:
					done <- nowNs()
					next <- -1
					return
				case k < 0:
					select {
					case next <- -1:
					default:
					}
					return
				default:
					next <- k - 1
				}
			}
		}()
	}
	t0 := nowNs()
	chans[0] <- hops
	t1 := <-done
	emit("ring hops_per_s=%.0f actors=%d hops=%d gomaxprocs=%d", float64(hops)/(float64(t1-t0)/1e9),
		size, hops, runtime.GOMAXPROCS(0))
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: gopeer pingpong_same_worker|pingpong_cross_worker|pingpong_unpinned|spawn|ring|gc_alloc [quick]")
		os.Exit(2)
	}
	div := 1
	if len(os.Args) > 2 && os.Args[2] == "quick" {
		div = 10
	}
	switch os.Args[1] {
	case "pingpong_same_worker":
		pingpong("pingpong_same_worker", ppSame/div, false)
	case "pingpong_cross_worker":
		if runtime.GOMAXPROCS(0) < 2 {
			fmt.Fprintln(os.Stderr, "gopeer: pingpong_cross_worker needs GOMAXPROCS >= 2")
			os.Exit(1)
		}
		pingpong("pingpong_cross_worker", ppCross/div, true)
	case "pingpong_unpinned":
		// Two goroutines placed by Go's scheduler as it likes (for reference).
		pingpong("pingpong_unpinned", ppSame/div, false)
	case "spawn":
		spawnBench(spawns / div)
	case "ring":
		ring(ringSize/div, ringHops/div)
	case "gc_alloc":
		gcAlloc(gcAllocs / div)
	default:
		fmt.Fprintln(os.Stderr, "gopeer: unknown scenario", os.Args[1])
		os.Exit(2)
	}
}

// gc_alloc, as in snow-bench-gc: gcAllocs objects of 48 bytes, each stored
// in a ring of 1024 slots (the live set, about 48 KiB) that drops the
// oldest; the figure includes every collection the allocations cause.
const gcAllocs = 50000000

type small struct{ v [6]int64 }

var gcRing [1024]*small

func gcAlloc(n int) {
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	t0 := nowNs()
	for i := 0; i < n; i++ {
		s := &small{}
		s.v[0] = int64(i)
		gcRing[i%len(gcRing)] = s
	}
	t1 := nowNs()
	for i := n - len(gcRing); i < n; i++ {
		if i >= 0 && gcRing[i%len(gcRing)].v[0] != int64(i) {
			fmt.Fprintln(os.Stderr, "gopeer: gc_alloc: ring damaged")
			os.Exit(1)
		}
	}
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	emit("gc_alloc allocs_per_s=%.0f allocs=%d collections=%d", float64(n)*1e9/float64(t1-t0), n,
		after.NumGC-before.NumGC)
}
