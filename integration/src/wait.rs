//! Waiting for a condition by polling it, with a deadline: the only way tests wait.

use std::future::Future;
use std::time::{Duration, Instant};

/// Calls `check` every 100 ms until it returns `Some`, or fails after `timeout`.
pub async fn poll_until<T, F, Fut>(timeout: Duration, check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    poll_every(Duration::from_millis(100), timeout, check).await
}

/// Calls `check` every `every` until it returns `Some`, or fails after `timeout` (benchmarks
/// that time a wait ask more often than tests need to).
pub async fn poll_every<T, F, Fut>(
    every: Duration,
    timeout: Duration,
    mut check: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            anyhow::bail!("condition not met within {timeout:?}");
        }
        tokio::time::sleep(every).await;
    }
}
