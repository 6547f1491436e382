//! A byte-rate limit shared by the threads that move data in the background (replication copies,
//! the scrubber): each caller reserves time for its bytes on one schedule and sleeps until its
//! turn, so together they stay under the rate however many run at once. Called from blocking
//! threads only (it sleeps the thread).

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How far ahead of the schedule a caller may run (a burst allowance), so short pauses between
/// chunks do not waste bandwidth.
const BURST: Duration = Duration::from_millis(100);

#[derive(Debug)]
pub struct Throttle {
    /// Bytes per second; 0 means no limit.
    rate: u64,
    /// When the bytes reserved so far are all "paid for".
    next_free: Mutex<Instant>,
}

impl Throttle {
    pub fn new(rate: u64) -> Throttle {
        Throttle {
            rate,
            next_free: Mutex::new(Instant::now()),
        }
    }

    /// How long the caller must wait before moving `bytes`, reserving their time.
    fn reserve(&self, bytes: u64, now: Instant) -> Duration {
        if self.rate == 0 {
            return Duration::ZERO;
        }
        let cost = Duration::from_secs_f64(bytes as f64 / self.rate as f64);
        let mut next = self.next_free.lock().unwrap_or_else(|p| p.into_inner());
        let start = (*next).max(now.checked_sub(BURST).unwrap_or(now));
        *next = start + cost;
        next.saturating_duration_since(now + BURST)
    }

    /// Blocks the calling thread until `bytes` may move.
    pub fn take_blocking(&self, bytes: u64) {
        let wait = self.reserve(bytes, Instant::now());
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callers_share_one_schedule() {
        let t = Throttle::new(1000);
        let now = Instant::now();
        // The burst allowance covers the first 100 ms of bytes.
        assert_eq!(t.reserve(100, now), Duration::ZERO);
        // The next second's worth waits about a second.
        let wait = t.reserve(1000, now);
        assert!(wait >= Duration::from_millis(900) && wait <= Duration::from_millis(1000));
        assert_eq!(Throttle::new(0).reserve(u64::MAX, now), Duration::ZERO);
    }
}
