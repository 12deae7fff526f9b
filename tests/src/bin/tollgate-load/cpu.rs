//! CPU seconds used by the processes behind a target, per phase, and the
//! seconds their threads waited for a CPU.
//!
//! Read from `/proc/PID/stat` (user + system time, all threads) just before
//! and after each phase, so the harness gets CPU per request at the load it
//! asked for, with no clock of its own to line up with the driver's phases.
//! The wait is the run-queue time of `/proc/PID/task/*/schedstat`: how long
//! threads were runnable but not running (on a busy machine, the part of
//! the latency the scheduler adds).

use anyhow::Context as _;
use http::Uri;

/// `/proc` reports times in USER_HZ ticks, which Linux fixes at 100 for
/// userspace on every architecture.
const USER_HZ: f64 = 100.0;

/// The pids to watch for each target, by target index.
pub(crate) struct CpuWatch {
    pids: Vec<Vec<u32>>,
}

impl CpuWatch {
    /// `specs` are `NAME=PID[,PID…]`; names must be targets.
    pub(crate) fn new(specs: &[String], targets: &[(String, Uri)]) -> anyhow::Result<CpuWatch> {
        let mut pids = vec![Vec::new(); targets.len()];
        for spec in specs {
            let (name, list) = spec
                .split_once('=')
                .with_context(|| format!("--pid {spec:?}: want NAME=PID[,PID...]"))?;
            let i = targets
                .iter()
                .position(|(n, _)| n == name)
                .with_context(|| format!("--pid {spec:?}: no target named {name:?}"))?;
            for p in list.split(',') {
                pids[i].push(
                    p.trim()
                        .parse()
                        .with_context(|| format!("--pid {spec:?}"))?,
                );
            }
        }
        Ok(CpuWatch { pids })
    }

    /// CPU seconds used so far by target `i`'s processes.
    pub(crate) fn read(&self, i: usize) -> f64 {
        self.pids[i].iter().map(|&p| cpu_secs(p)).sum()
    }

    /// CPU seconds since `before` (from [`CpuWatch::read`]), or `None` when
    /// no process is watched for target `i`.
    pub(crate) fn since(&self, i: usize, before: f64) -> Option<f64> {
        (!self.pids[i].is_empty()).then(|| self.read(i) - before)
    }

    /// Seconds target `i`'s threads have waited on a run queue so far.
    pub(crate) fn read_wait(&self, i: usize) -> f64 {
        self.pids[i].iter().map(|&p| run_queue_secs(p)).sum()
    }

    /// Run-queue seconds since `before` (from [`CpuWatch::read_wait`]).
    pub(crate) fn wait_since(&self, i: usize, before: f64) -> Option<f64> {
        (!self.pids[i].is_empty()).then(|| self.read_wait(i) - before)
    }
}

/// The run-queue wait of every thread of one process, in seconds (the
/// second field of each `schedstat`, nanoseconds); threads that exited
/// take theirs with them.
fn run_queue_secs(pid: u32) -> f64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0.0;
    };
    let ns: u64 = tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .sum();
    ns as f64 / 1e9
}

/// utime + stime of one process, in seconds; 0 if it is gone.
fn cpu_secs(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // The command name may hold spaces; the fields after its ')' are fixed.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    (ticks(11) + ticks(12)) as f64 / USER_HZ
}
