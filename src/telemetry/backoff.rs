//! Retry delays: exponential, capped, jittered. The jitter is derived from a
//! seed (the message id), so a given delivery's delay is reproducible in tests
//! while different messages spread out.

use std::hash::{Hash, Hasher};
use std::time::Duration;

/// An exponential backoff schedule.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct Backoff {
    /// The delay after the first failure.
    pub initial: Duration,
    /// The longest delay.
    pub max: Duration,
    /// Growth per attempt.
    pub multiplier: f64,
    /// Fraction of the delay randomised (0.0 = none, 0.2 = ±20 %).
    pub jitter: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_secs(10),
            max: Duration::from_secs(15 * 60),
            multiplier: 2.0,
            jitter: 0.2,
        }
    }
}

impl Backoff {
    /// A schedule from `initial` doubling up to `max`, ±20 % jitter.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max,
            ..Self::default()
        }
    }

    /// Sets the jitter fraction (clamped to 0..=1).
    pub fn with_jitter(mut self, jitter: f64) -> Self {
        self.jitter = jitter.clamp(0.0, 1.0);
        self
    }

    /// The delay before attempt `attempt + 1`, given `attempt` failures so far
    /// (1 = first failure), jittered by `seed`.
    pub fn delay(&self, attempt: u32, seed: impl Hash) -> Duration {
        let exp = self
            .multiplier
            .max(1.0)
            .powi(attempt.saturating_sub(1).min(64) as i32);
        let base = (self.initial.as_secs_f64() * exp).min(self.max.as_secs_f64());
        let mut h = std::collections::hash_map::DefaultHasher::new();
        seed.hash(&mut h);
        attempt.hash(&mut h);
        // Map the hash to [-1, 1).
        let unit = (h.finish() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0;
        let jittered = base * (1.0 + self.jitter.clamp(0.0, 1.0) * unit);
        Duration::from_secs_f64(jittered.clamp(0.0, self.max.as_secs_f64()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_and_caps() {
        let b = Backoff::new(Duration::from_secs(1), Duration::from_secs(8)).with_jitter(0.0);
        let d: Vec<u64> = (1..=6).map(|a| b.delay(a, "m").as_secs()).collect();
        assert_eq!(d, vec![1, 2, 4, 8, 8, 8]);
    }

    #[test]
    fn jitter_stays_in_band_and_is_reproducible() {
        let b = Backoff::new(Duration::from_secs(10), Duration::from_secs(100));
        for seed in 0..200 {
            let d = b.delay(1, seed).as_secs_f64();
            assert!((8.0..=12.0).contains(&d), "{d}");
            assert_eq!(b.delay(1, seed), b.delay(1, seed));
        }
        assert_ne!(b.delay(1, "a"), b.delay(1, "b"));
    }
}
