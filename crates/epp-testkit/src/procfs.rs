//! What Linux's `/proc` says about a process or thread: CPU time and resident memory. The
//! parsers take a file's text and return `None` when it is not what they expect; the
//! `*_of` readers are for tests and panic instead.

/// CPU time (user + system) in clock ticks (1/100 s on Linux) from the text of a `stat`
/// file (`/proc/<pid>/stat`, `/proc/self/task/<tid>/stat`).
pub fn cpu_ticks(stat: &str) -> Option<u64> {
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after ')'.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// A `kB` field of the text of a `status` file (`VmHWM`, `VmRSS`, named without the
/// colon), in KiB.
pub fn status_kib(status: &str, field: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// CPU time the process `pid` has used, in clock ticks.
pub fn cpu_ticks_of(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read stat");
    cpu_ticks(&stat).expect("utime and stime in stat")
}

/// Peak resident set size (`VmHWM`) of the process `pid`, in KiB.
pub fn peak_rss_kib_of(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    status_kib(&status, "VmHWM").expect("VmHWM")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cpu_time_after_a_command_name_with_spaces() {
        let stat = "42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 7 5 0 0 20 0 1 0";
        assert_eq!(cpu_ticks(stat), Some(12));
        assert_eq!(cpu_ticks("42 (x) S 1"), None);
    }

    #[test]
    fn reads_kib_fields() {
        let status = "Name:\tepp\nVmHWM:\t  10240 kB\nVmRSS:\t   8192 kB\n";
        assert_eq!(status_kib(status, "VmHWM"), Some(10_240));
        assert_eq!(status_kib(status, "VmRSS"), Some(8_192));
        assert_eq!(status_kib(status, "VmSwap"), None);
    }
}
