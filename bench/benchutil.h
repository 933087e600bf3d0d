/*
 * benchutil.h: measuring helpers shared by the benchmark programs: resident
 * memory from procfs, process CPU time, the kernel's mapping limit, and
 * percentiles. Nothing here touches the runtime.
 */
#ifndef SNOW_BENCHUTIL_H
#define SNOW_BENCHUTIL_H

#include <stddef.h>
#include <stdint.h>

/* Resident set size now, in KiB (/proc/self/statm). -1 on failure. */
long bench_rss_kib(void);
/* Peak resident set size, in KiB (VmHWM in /proc/self/status). -1 on failure. */
long bench_peak_rss_kib(void);
/* Resets the peak RSS to the current RSS (writes "5" to
 * /proc/self/clear_refs). Returns 0 or a negative errno. */
int bench_reset_peak_rss(void);
/* User plus system CPU time of the whole process, in seconds. */
double bench_cpu_seconds(void);

/* Number of memory mappings of this process (lines of /proc/self/maps). */
long bench_map_count(void);
/* vm.max_map_count, or -1 when it cannot be read. */
long bench_max_map_count(void);
/* Tries to set vm.max_map_count. Returns 0 or a negative errno. */
int bench_set_max_map_count(long value);

/* Sorts v and returns the value at fraction p (0..1) of the way through,
 * nearest rank. n must be > 0. */
int64_t bench_percentile(int64_t *v, size_t n, double p);

#endif
