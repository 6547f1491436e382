//! [`Every`]: a gate that opens at most once per period for any number of concurrent callers,
//! for upkeep that many hot paths may trigger but one should run (the daemons' metrics fold
//! their histogram samples with it).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Opens for one caller at most once per `period` (whole seconds).
#[derive(Debug)]
pub struct Every {
    period: Duration,
    started: Instant,
    /// Seconds since `started` when the gate last opened.
    last: AtomicU64,
}

impl Every {
    pub fn new(period: Duration) -> Every {
        Every {
            period,
            started: Instant::now(),
            last: AtomicU64::new(0),
        }
    }

    /// True for exactly one caller once `period` has passed since the gate last opened.
    pub fn due(&self) -> bool {
        let now = self.started.elapsed().as_secs();
        let last = self.last.load(Ordering::Relaxed);
        now >= last + self.period.as_secs()
            && self
                .last
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_once_per_period() {
        let gate = Every::new(Duration::from_secs(3600));
        // Not before the first period has passed, and never twice within one.
        assert!(!gate.due());
        let open = Every::new(Duration::ZERO);
        assert!(open.due());
    }
}
