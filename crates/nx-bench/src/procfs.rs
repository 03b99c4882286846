//! What the kernel says about this process and the machine: peak resident memory, CPU time,
//! context switches and load average (Linux `/proc`, `getrusage`).

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

/// What `getrusage(RUSAGE_SELF)` counts for this process, all its threads (those that ended
/// too): CPU time in µs, split into user and system (the kernel measures the sum to the
/// nanosecond and splits it by its tick samples), and context switches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// CPU time in user space.
    pub user: Duration,
    /// CPU time in the kernel, on this process's behalf.
    pub system: Duration,
    /// Context switches because a thread waited (a read that blocked, a lock, a sleep).
    pub voluntary: u64,
    /// Context switches because a thread was preempted (its time slice ended, a woken task
    /// took the CPU).
    pub involuntary: u64,
}

impl Usage {
    /// What was counted between `earlier` and `self`.
    pub fn since(&self, earlier: &Usage) -> Usage {
        Usage {
            user: self.user.saturating_sub(earlier.user),
            system: self.system.saturating_sub(earlier.system),
            voluntary: self.voluntary.saturating_sub(earlier.voluntary),
            involuntary: self.involuntary.saturating_sub(earlier.involuntary),
        }
    }
}

/// This process's [`Usage`] so far.
pub fn usage() -> io::Result<Usage> {
    use nix::sys::resource::{UsageWho, getrusage};
    let usage = getrusage(UsageWho::RUSAGE_SELF).map_err(io::Error::from)?;
    let time = |t: nix::sys::time::TimeVal| {
        Duration::from_secs(t.tv_sec().max(0) as u64)
            + Duration::from_micros(t.tv_usec().max(0) as u64)
    };
    Ok(Usage {
        user: time(usage.user_time()),
        system: time(usage.system_time()),
        voluntary: usage.voluntary_context_switches().max(0) as u64,
        involuntary: usage.involuntary_context_switches().max(0) as u64,
    })
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
        assert!(peak_rss_kib().unwrap() > 0);
        let before = usage().unwrap();
        let mut spin = 0u64;
        for i in 0..5_000_000u64 {
            spin = std::hint::black_box(spin.wrapping_mul(31).wrapping_add(i));
        }
        std::thread::sleep(Duration::from_millis(2));
        let spent = usage().unwrap().since(&before);
        assert!(spent.user + spent.system > Duration::ZERO, "{spent:?}");
        assert!(
            spent.voluntary >= 1,
            "a sleep is a voluntary switch: {spent:?}"
        );
        assert_eq!(before.since(&usage().unwrap()), Usage::default());
        assert_eq!(load_average_of("3.02 2.57 1.65 2/345 6789\n"), Some(3.02));
        assert_eq!(load_average_of(""), None);
        assert!(load_average().unwrap() >= 0.0);
        assert!(load_since(Some(1.0)).is_some_and(|(start, _)| start == 1.0));
        assert_eq!(load_since(None), None);
    }
}
