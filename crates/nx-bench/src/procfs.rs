//! What the kernel says about this process and the machine: peak resident memory, CPU time and
//! load average (Linux `/proc`).

use std::io;
use std::time::Duration;

/// Peak resident set size of this process in KiB (`VmHWM` of `/proc/self/status`).
pub fn peak_rss_kib() -> io::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status_field_kib(&status, "VmHWM:")
        .ok_or_else(|| io::Error::other("no VmHWM line in /proc/self/status"))
}

fn status_field_kib(status: &str, name: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(name))?;
    line[name.len()..]
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
}

/// User plus system CPU time of this process, all threads (`/proc/self/stat`; 10 ms ticks).
pub fn cpu_time() -> io::Result<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    cpu_time_of(&stat).ok_or_else(|| io::Error::other("unreadable /proc/self/stat"))
}

/// Clock ticks per second of `/proc` times (`CLK_TCK`, 100 on every Linux this runs on).
const TICKS_PER_SEC: u64 = 100;

fn cpu_time_of(stat: &str) -> Option<Duration> {
    // Fields after the command name (which may hold spaces) start at field 3 (state).
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_millis(
        (utime + stime) * 1000 / TICKS_PER_SEC,
    ))
}

/// The machine's load average over the last minute (first field of `/proc/loadavg`).
pub fn load_average() -> io::Result<f64> {
    let loadavg = std::fs::read_to_string("/proc/loadavg")?;
    load_average_of(&loadavg).ok_or_else(|| io::Error::other("unreadable /proc/loadavg"))
}

fn load_average_of(loadavg: &str) -> Option<f64> {
    loadavg.split_whitespace().next()?.parse().ok()
}

/// The load average at the start of a run (`start`, from [`load_average`]) and now, when both
/// could be read.
pub fn load_since(start: Option<f64>) -> Option<(f64, f64)> {
    start.zip(load_average().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_lines() {
        let status = "Name:\tx\nVmPeak:\t  9000 kB\nVmHWM:\t    4321 kB\nVmRSS:\t 100 kB\n";
        assert_eq!(status_field_kib(status, "VmHWM:"), Some(4321));
        let stat = "12 (a b) S 1 12 12 0 -1 4194304 100 0 0 0 250 50 0 0 20 0 1 0";
        assert_eq!(cpu_time_of(stat), Some(Duration::from_millis(3000)));
        assert!(peak_rss_kib().unwrap() > 0);
        assert!(cpu_time().is_ok());
        assert_eq!(load_average_of("3.02 2.57 1.65 2/345 6789\n"), Some(3.02));
        assert_eq!(load_average_of(""), None);
        assert!(load_average().unwrap() >= 0.0);
        assert!(load_since(Some(1.0)).is_some_and(|(start, _)| start == 1.0));
        assert_eq!(load_since(None), None);
    }
}
