//! The processes under test: the mock provider as a child process, and
//! what `/proc` says about the proxy (resident memory, open descriptors,
//! whether it still runs).

use std::io::BufRead as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context as _};

use crate::harness::{ANTHROPIC_KEY, OPENAI_KEY};

/// A `tollgate-mock` process that checks the harness's provider keys and
/// keeps no request records (a long run would fill its memory); killed on
/// drop.
pub(crate) struct MockProc {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub url: String,
}

impl MockProc {
    pub(crate) async fn start(bin: &Path) -> anyhow::Result<MockProc> {
        let mut child = Command::new(bin)
            .args(["--listen", "127.0.0.1:0", "--no-record"])
            .args(["--openai-key", OPENAI_KEY, "--anthropic-key", ANTHROPIC_KEY])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        // The mock prints one line once it accepts connections.
        let first = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            std::io::BufReader::new(stdout)
                .read_line(&mut line)
                .map(|_| line)
        });
        let line = match tokio::time::timeout(Duration::from_secs(30), first).await {
            Ok(Ok(Ok(line))) => line,
            _ => {
                let _ = child.kill();
                bail!("{} printed no listening line within 30 s", bin.display());
            }
        };
        let Some(url) = line.trim().strip_prefix("tollgate-mock listening on ") else {
            let _ = child.kill();
            bail!("unexpected first line from the mock: {line:?}");
        };
        Ok(MockProc {
            url: url.to_string(),
            child,
        })
    }
}

impl Drop for MockProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One look at a process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Sample {
    /// Seconds since the run started.
    pub at: f64,
    pub rss_kib: u64,
    pub fds: u64,
}

impl Sample {
    pub(crate) fn rss_mib(&self) -> f64 {
        self.rss_kib as f64 / 1024.0
    }
}

/// `VmRSS` from `/proc/PID/status` and the entries of `/proc/PID/fd`;
/// `None` once the process is gone.
pub(crate) fn sample(pid: u32, at: f64) -> Option<Sample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64;
    Some(Sample { at, rss_kib, fds })
}

/// True while the process runs (an exited child not yet reaped is a zombie,
/// state `Z`, and does not count).
pub(crate) fn alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The command name may hold spaces; the state follows its ')'.
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .is_some_and(|state| state != "Z" && state != "X")
}
