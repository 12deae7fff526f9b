//! Choosing the first target of a request.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use rand::Rng;
use tollgate_config::Strategy;

use super::targets::{TargetStats, Targets};

/// Share of lowest-latency decisions that explore a random target, so a
/// target that was slow once gets measured again.
const EXPLORE: f64 = 0.05;

/// A target available for selection.
pub struct Choice<'a> {
    pub weight: u32,
    pub stats: &'a Arc<TargetStats>,
}

/// Index into `choices` of the target to try first. `choices` is non-empty.
pub fn select(strategy: Strategy, route: &str, choices: &[Choice<'_>], targets: &Targets) -> usize {
    debug_assert!(!choices.is_empty());
    if choices.len() == 1 {
        return 0;
    }
    let mut rng = rand::rng();
    match strategy {
        Strategy::Weighted => weighted(choices, rng.random_range(0..total(choices))),
        Strategy::RoundRobin => {
            let n = targets.cursor(route).fetch_add(1, Ordering::Relaxed) as u64;
            weighted(choices, n % total(choices))
        }
        Strategy::LeastOutstanding => {
            let min = choices
                .iter()
                .map(|c| c.stats.outstanding())
                .min()
                .unwrap_or(0);
            let tied: Vec<usize> = (0..choices.len())
                .filter(|&i| choices[i].stats.outstanding() == min)
                .collect();
            tied[rng.random_range(0..tied.len())]
        }
        Strategy::LowestLatency => {
            // Unmeasured targets first, then a little exploration, then the fastest.
            if let Some(i) = choices.iter().position(|c| c.stats.ewma().is_none()) {
                return i;
            }
            if rng.random_bool(EXPLORE) {
                return rng.random_range(0..choices.len());
            }
            (0..choices.len())
                .min_by_key(|&i| choices[i].stats.ewma())
                .unwrap_or(0)
        }
    }
}

fn total(choices: &[Choice<'_>]) -> u64 {
    choices.iter().map(|c| c.weight.max(1) as u64).sum()
}

fn weighted(choices: &[Choice<'_>], mut point: u64) -> usize {
    for (i, c) in choices.iter().enumerate() {
        let w = c.weight.max(1) as u64;
        if point < w {
            return i;
        }
        point -= w;
    }
    choices.len() - 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn stats(targets: &Targets, keys: &[&str]) -> Vec<Arc<TargetStats>> {
        keys.iter().map(|k| targets.get(k)).collect()
    }

    #[test]
    fn weighted_follows_weights_within_bounds() {
        let t = Targets::default();
        let s = stats(&t, &["a", "b"]);
        let choices = [
            Choice {
                weight: 3,
                stats: &s[0],
            },
            Choice {
                weight: 1,
                stats: &s[1],
            },
        ];
        let n = 20_000;
        let a = (0..n)
            .filter(|_| select(Strategy::Weighted, "r", &choices, &t) == 0)
            .count();
        // Expected 15,000; 5 standard deviations is about ±306.
        assert!((14_700..=15_300).contains(&a), "a chosen {a} times of {n}");
    }

    #[test]
    fn round_robin_cycles_by_weight() {
        let t = Targets::default();
        let s = stats(&t, &["a", "b"]);
        let choices = [
            Choice {
                weight: 2,
                stats: &s[0],
            },
            Choice {
                weight: 1,
                stats: &s[1],
            },
        ];
        let picks: Vec<usize> = (0..6)
            .map(|_| select(Strategy::RoundRobin, "r", &choices, &t))
            .collect();
        assert_eq!(picks, [0, 0, 1, 0, 0, 1]);
    }

    #[test]
    fn least_outstanding_avoids_busy_targets() {
        let t = Targets::default();
        let s = stats(&t, &["a", "b", "c"]);
        let _busy = [s[0].start(), s[0].start(), s[2].start()];
        let choices: Vec<Choice> = s
            .iter()
            .map(|s| Choice {
                weight: 1,
                stats: s,
            })
            .collect();
        for _ in 0..50 {
            assert_eq!(select(Strategy::LeastOutstanding, "r", &choices, &t), 1);
        }
    }

    #[test]
    fn lowest_latency_measures_then_prefers_the_fastest() {
        let t = Targets::default();
        let s = stats(&t, &["a", "b"]);
        let choices: Vec<Choice> = s
            .iter()
            .map(|s| Choice {
                weight: 1,
                stats: s,
            })
            .collect();
        s[0].observe_latency(Duration::from_millis(50));
        assert_eq!(
            select(Strategy::LowestLatency, "r", &choices, &t),
            1,
            "unmeasured first"
        );
        s[1].observe_latency(Duration::from_millis(5));
        let fast = (0..2000)
            .filter(|_| select(Strategy::LowestLatency, "r", &choices, &t) == 1)
            .count();
        // 95% exploit + half of the 5% exploration.
        assert!(fast > 1850 && fast < 2000, "{fast}");
    }

    #[test]
    fn ewma_moves_toward_new_samples() {
        let t = Targets::default();
        let s = t.get("x");
        s.observe_latency(Duration::from_millis(100));
        s.observe_latency(Duration::from_millis(0));
        assert_eq!(s.ewma(), Some(Duration::from_micros(70_000)));
    }
}
