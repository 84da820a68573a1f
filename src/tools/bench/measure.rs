//! What the benchmarks read from the operating system and how they summarise a run: the bytes a
//! process caused to be written to storage, its CPU time and peak memory, and latency
//! percentiles.
//!
//! `write_bytes` is the kernel's count of bytes a process caused to be sent to storage
//! (`/proc/<pid>/io`): it is charged when a page-cache folio becomes dirty, for the whole folio,
//! so a small write into a large folio (one filled by a large write earlier) counts the folio.

use std::time::Duration;

/// One field of `/proc/<pid>/io` (`self` for this process).
fn proc_io(pid: &str, field: &str) -> Option<u64> {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    io.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(": "))
        .and_then(|v| v.trim().parse().ok())
}

/// Bytes this process has caused to be written to storage so far (`write_bytes`), where the
/// OS tells it.
pub fn write_bytes() -> Option<u64> {
    proc_io("self", "write_bytes")
}

/// Bytes process `pid` has caused to be written to storage so far.
pub fn write_bytes_of(pid: u32) -> Option<u64> {
    proc_io(&pid.to_string(), "write_bytes")
}

/// The peak resident set size of process `pid` in MiB (`VmHWM`), where the OS tells it.
pub fn peak_rss_mb(pid: u32) -> Option<f64> {
    status_mb(&pid.to_string(), "VmHWM:")
}

/// A memory figure of `/proc/<pid>/status` (e.g. `VmRSS:`, in kB there) in MiB; `pid` may be
/// `self`.
pub fn status_mb(pid: &str, field: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

/// Bytes written per record between two readings of [`write_bytes`], or `None` when the OS
/// does not tell.
pub fn per_record(before: Option<u64>, after: Option<u64>, records: usize) -> Option<u64> {
    let written = after?.checked_sub(before?)?;
    Some(written / u64::try_from(records.max(1)).unwrap_or(u64::MAX))
}

/// `write_bytes_per_record=…` for a last line: the number, or `n/a` where the OS does not tell.
pub fn per_record_text(per_record: Option<u64>) -> String {
    per_record.map_or_else(|| "n/a".to_string(), |b| b.to_string())
}

/// The `p` quantile (0 to 1) of sorted durations, in milliseconds.
pub fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

/// The process's CPU time so far (user + system), from `/proc/self/stat` where there is one;
/// the kernel counts it in ticks of 1/100 s on the platforms this runs on.
pub fn process_cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces) start at `state`; utime and stime
    // are the 14th and 15th fields of the line.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split(' ').skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 10))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_the_nearest_rank_and_an_empty_run_is_zero() {
        let d: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile_ms(&d, 0.5), 51.0);
        assert_eq!(percentile_ms(&d, 0.99), 99.0);
        assert_eq!(percentile_ms(&[], 0.99), 0.0);
    }

    #[test]
    fn bytes_per_record_needs_both_readings() {
        assert_eq!(per_record(Some(100), Some(4_196), 2), Some(2_048));
        assert_eq!(per_record(None, Some(1), 1), None);
        assert_eq!(per_record_text(None), "n/a");
    }
}
