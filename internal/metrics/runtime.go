package metrics

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	rtmetrics "runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"time"
)

// GoCollector exports the Go runtime's metrics under client_golang's
// names: go_goroutines, go_threads, go_info, go_gc_duration_seconds, the
// go_memstats_* of runtime.MemStats, go_gc_gogc_percent,
// go_gc_gomemlimit_bytes and go_sched_gomaxprocs_threads.
func GoCollector() Collector {
	info := Family{Name: "go_info", Help: "Information about the Go environment.", Type: TypeGauge,
		Samples: []Sample{{Labels: []Label{{"version", runtime.Version()}}, Value: 1}}}
	settings := []rtmetrics.Sample{{Name: "/gc/gogc:percent"}, {Name: "/gc/gomemlimit:bytes"}}
	return CollectorFunc(func() []Family {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		threads, _ := runtime.ThreadCreateProfile(nil)
		rtmetrics.Read(settings)
		gauge := func(name, help string, v float64) Family {
			return Family{Name: name, Help: help, Type: TypeGauge, Samples: []Sample{{Value: v}}}
		}
		counter := func(name, help string, v float64) Family {
			return Family{Name: name, Help: help, Type: TypeCounter, Samples: []Sample{{Value: v}}}
		}
		return []Family{
			gauge("go_goroutines", "Number of goroutines that currently exist.", float64(runtime.NumGoroutine())),
			gauge("go_threads", "Number of OS threads created.", float64(threads)),
			info,
			gcDurations(),
			gauge("go_gc_gogc_percent", "Heap size target percentage configured by the user, otherwise 100.", settingValue(settings[0])),
			gauge("go_gc_gomemlimit_bytes", "Go runtime memory limit configured by the user, otherwise math.MaxInt64.", settingValue(settings[1])),
			gauge("go_sched_gomaxprocs_threads", "The current runtime.GOMAXPROCS setting.", float64(runtime.GOMAXPROCS(0))),
			gauge("go_memstats_alloc_bytes", "Number of bytes allocated in heap and currently in use.", float64(ms.Alloc)),
			counter("go_memstats_alloc_bytes_total", "Total number of bytes allocated in heap until now, even if released already.", float64(ms.TotalAlloc)),
			gauge("go_memstats_buck_hash_sys_bytes", "Number of bytes used by the profiling bucket hash table.", float64(ms.BuckHashSys)),
			counter("go_memstats_frees_total", "Total number of heap objects frees.", float64(ms.Frees)),
			gauge("go_memstats_gc_sys_bytes", "Number of bytes used for garbage collection system metadata.", float64(ms.GCSys)),
			gauge("go_memstats_heap_alloc_bytes", "Number of heap bytes allocated and currently in use.", float64(ms.HeapAlloc)),
			gauge("go_memstats_heap_idle_bytes", "Number of heap bytes waiting to be used.", float64(ms.HeapIdle)),
			gauge("go_memstats_heap_inuse_bytes", "Number of heap bytes that are in use.", float64(ms.HeapInuse)),
			gauge("go_memstats_heap_objects", "Number of currently allocated objects.", float64(ms.HeapObjects)),
			gauge("go_memstats_heap_released_bytes", "Number of heap bytes released to OS.", float64(ms.HeapReleased)),
			gauge("go_memstats_heap_sys_bytes", "Number of heap bytes obtained from system.", float64(ms.HeapSys)),
			gauge("go_memstats_last_gc_time_seconds", "Number of seconds since 1970 of last garbage collection.", float64(ms.LastGC)/1e9),
			counter("go_memstats_mallocs_total", "Total number of heap objects allocated.", float64(ms.Mallocs)),
			gauge("go_memstats_mcache_inuse_bytes", "Number of bytes in use by mcache structures.", float64(ms.MCacheInuse)),
			gauge("go_memstats_mcache_sys_bytes", "Number of bytes used for mcache structures obtained from system.", float64(ms.MCacheSys)),
			gauge("go_memstats_mspan_inuse_bytes", "Number of bytes in use by mspan structures.", float64(ms.MSpanInuse)),
			gauge("go_memstats_mspan_sys_bytes", "Number of bytes used for mspan structures obtained from system.", float64(ms.MSpanSys)),
			gauge("go_memstats_next_gc_bytes", "Number of heap bytes when next garbage collection will take place.", float64(ms.NextGC)),
			gauge("go_memstats_other_sys_bytes", "Number of bytes used for other system allocations.", float64(ms.OtherSys)),
			gauge("go_memstats_stack_inuse_bytes", "Number of bytes obtained from system for stack allocator in non-CGO environments.", float64(ms.StackInuse)),
			gauge("go_memstats_stack_sys_bytes", "Number of bytes obtained from system for stack allocator.", float64(ms.StackSys)),
			gauge("go_memstats_sys_bytes", "Number of bytes obtained from system.", float64(ms.Sys)),
		}
	})
}

func settingValue(s rtmetrics.Sample) float64 {
	if s.Value.Kind() == rtmetrics.KindUint64 {
		return float64(s.Value.Uint64())
	}
	return 0
}

// gcDurations is the summary of the recent stop-the-world pauses.
func gcDurations() Family {
	var st debug.GCStats
	st.PauseQuantiles = make([]time.Duration, 5)
	debug.ReadGCStats(&st)
	f := Family{Name: "go_gc_duration_seconds", Help: "A summary of the wall-time pause (stop-the-world) duration in garbage collection cycles.", Type: TypeSummary}
	for i, q := range []string{"0", "0.25", "0.5", "0.75", "1"} {
		f.Samples = append(f.Samples, Sample{Labels: []Label{{"quantile", q}}, Value: st.PauseQuantiles[i].Seconds()})
	}
	f.Samples = append(f.Samples,
		Sample{Suffix: "_sum", Value: st.PauseTotal.Seconds()},
		Sample{Suffix: "_count", Value: float64(st.NumGC)})
	return f
}

// ProcessCollector exports the process's own metrics from /proc/self
// under client_golang's names: process_cpu_seconds_total,
// process_open_fds, process_max_fds, process_virtual_memory_bytes,
// process_virtual_memory_max_bytes, process_resident_memory_bytes and
// process_start_time_seconds. A file it cannot read leaves its metrics
// out.
func ProcessCollector() Collector {
	return newProcessCollector("/proc")
}

type processCollector struct {
	proc  string
	btime func() (uint64, error) // the boot time, read once: it does not change
}

func newProcessCollector(proc string) *processCollector {
	return &processCollector{proc: proc, btime: sync.OnceValues(func() (uint64, error) { return bootTime(proc + "/stat") })}
}

// clockTicks is USER_HZ, which /proc/PID/stat counts in: 100 on every
// Linux port Go supports.
const clockTicks = 100

func (c *processCollector) Collect() []Family {
	fams := []Family{
		{Name: "process_cpu_seconds_total", Help: "Total user and system CPU time spent in seconds.", Type: TypeCounter},
		{Name: "process_open_fds", Help: "Number of open file descriptors.", Type: TypeGauge},
		{Name: "process_max_fds", Help: "Maximum number of open file descriptors.", Type: TypeGauge},
		{Name: "process_virtual_memory_bytes", Help: "Virtual memory size in bytes.", Type: TypeGauge},
		{Name: "process_virtual_memory_max_bytes", Help: "Maximum amount of virtual memory available in bytes.", Type: TypeGauge},
		{Name: "process_resident_memory_bytes", Help: "Resident memory size in bytes.", Type: TypeGauge},
		{Name: "process_start_time_seconds", Help: "Start time of the process since unix epoch in seconds.", Type: TypeGauge},
	}
	set := func(name string, v float64) {
		for i := range fams {
			if fams[i].Name == name {
				fams[i].Samples = []Sample{{Value: v}}
			}
		}
	}
	if st, err := os.ReadFile(c.proc + "/self/stat"); err == nil {
		if s, err := parseStat(st); err == nil {
			set("process_cpu_seconds_total", float64(s.utime+s.stime)/clockTicks)
			set("process_virtual_memory_bytes", float64(s.vsize))
			set("process_resident_memory_bytes", float64(s.rss*uint64(os.Getpagesize())))
			if btime, err := c.btime(); err == nil {
				set("process_start_time_seconds", float64(btime)+float64(s.starttime)/clockTicks)
			}
		}
	}
	if des, err := os.ReadDir(c.proc + "/self/fd"); err == nil {
		set("process_open_fds", float64(len(des)))
	}
	if l, err := os.ReadFile(c.proc + "/self/limits"); err == nil {
		if v, ok := limit(l, "Max open files"); ok {
			set("process_max_fds", v)
		}
		if v, ok := limit(l, "Max address space"); ok {
			set("process_virtual_memory_max_bytes", v)
		}
	}
	return fams
}

type stat struct {
	utime, stime, starttime, vsize, rss uint64
}

// parseStat reads /proc/PID/stat (proc(5)): the fields after the command
// name, which is in parentheses and may hold anything.
func parseStat(b []byte) (stat, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return stat{}, fmt.Errorf("stat: no command name")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state): field n is f[n-3].
	if len(f) < 22 {
		return stat{}, fmt.Errorf("stat: %d fields after the command name, want at least 22", len(f))
	}
	var s stat
	for _, x := range []struct {
		field int
		v     *uint64
	}{{14, &s.utime}, {15, &s.stime}, {22, &s.starttime}, {23, &s.vsize}, {24, &s.rss}} {
		v, err := strconv.ParseUint(f[x.field-3], 10, 64)
		if err != nil {
			return stat{}, fmt.Errorf("stat: field %d: %v", x.field, err)
		}
		*x.v = v
	}
	return s, nil
}

// bootTime reads btime of /proc/stat.
func bootTime(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "btime "); ok {
			return strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, fmt.Errorf("%s: no btime", path)
}

// limit reads a soft limit of /proc/PID/limits ("unlimited": +Inf).
func limit(b []byte, name string) (float64, bool) {
	for _, l := range strings.Split(string(b), "\n") {
		rest, ok := strings.CutPrefix(l, name)
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			return 0, false
		}
		if f[0] == "unlimited" {
			return float64(1<<64 - 1), true
		}
		v, err := strconv.ParseFloat(f[0], 64)
		return v, err == nil
	}
	return 0, false
}
