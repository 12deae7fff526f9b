//! The proxy's footprint over the run: resident memory and open file
//! descriptors sampled from `/proc`, and their trend after warm-up as a
//! least-squares slope.

use std::time::{Duration, Instant};

use super::procs::{self, Sample};

/// Samples `pid` every `every` until `until` (or until it exits).
pub(crate) async fn watch(
    pid: u32,
    started: Instant,
    every: Duration,
    until: Instant,
) -> Vec<Sample> {
    let mut out = Vec::new();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while Instant::now() < until {
        tick.tick().await;
        match procs::sample(pid, started.elapsed().as_secs_f64()) {
            Some(s) => out.push(s),
            None => break,
        }
    }
    out
}

/// What the report says about memory and descriptors.
#[derive(Debug, Clone)]
pub(crate) struct Footprint {
    /// Before any traffic.
    pub start: Sample,
    /// The first sample after warm-up.
    pub after_warmup: Option<Sample>,
    /// The last sample under traffic.
    pub end: Option<Sample>,
    /// After traffic stopped and idle connections closed.
    pub quiesced: Option<Sample>,
    /// MiB per 10 minutes, fitted over the samples after warm-up.
    pub rss_slope: Option<f64>,
    /// Descriptors per 10 minutes, likewise.
    pub fd_slope: Option<f64>,
    /// Samples the slopes were fitted over, and the seconds they span.
    pub fitted: usize,
    pub fitted_s: f64,
}

impl Footprint {
    /// `samples` from [`watch`]; warm-up ends `warmup_s` into the run.
    pub(crate) fn of(
        start: Sample,
        samples: &[Sample],
        warmup_s: f64,
        quiesced: Option<Sample>,
    ) -> Footprint {
        let after: Vec<Sample> = samples
            .iter()
            .copied()
            .filter(|s| s.at >= warmup_s)
            .collect();
        Footprint {
            start,
            after_warmup: after.first().copied(),
            end: samples.last().copied(),
            quiesced,
            rss_slope: slope(&after, Sample::rss_mib).map(per_10_min),
            fd_slope: slope(&after, |s| s.fds as f64).map(per_10_min),
            fitted: after.len(),
            fitted_s: match (after.first(), after.last()) {
                (Some(a), Some(b)) => b.at - a.at,
                _ => 0.0,
            },
        }
    }
}

fn per_10_min(per_second: f64) -> f64 {
    per_second * 600.0
}

/// The least-squares slope of `y` over the samples' times (per second);
/// `None` with fewer than two distinct times.
pub(crate) fn slope(samples: &[Sample], y: impl Fn(&Sample) -> f64) -> Option<f64> {
    let n = samples.len() as f64;
    let mean_t = samples.iter().map(|s| s.at).sum::<f64>() / n;
    let mean_y = samples.iter().map(&y).sum::<f64>() / n;
    let (mut num, mut den) = (0.0, 0.0);
    for s in samples {
        num += (s.at - mean_t) * (y(s) - mean_y);
        den += (s.at - mean_t).powi(2);
    }
    (den > 0.0).then(|| num / den)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t: f64, rss_kib: u64) -> Sample {
        Sample {
            at: t,
            rss_kib,
            fds: 10,
        }
    }

    #[test]
    fn slope_of_a_line_and_of_noise_around_a_level() {
        let line: Vec<_> = (0..100).map(|t| at(t as f64, 1000 + 3 * t)).collect();
        assert!((slope(&line, |s| s.rss_kib as f64).unwrap() - 3.0).abs() < 1e-9);
        let flat: Vec<_> = (0..100)
            .map(|t| at(t as f64, if t % 2 == 0 { 990 } else { 1010 }))
            .collect();
        assert!(slope(&flat, |s| s.rss_kib as f64).unwrap().abs() < 0.01);
        assert_eq!(slope(&[at(1.0, 5)], |s| s.rss_kib as f64), None);
    }
}
