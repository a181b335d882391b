//! Waiting out a service that answers "not yet" (IAM's eventual consistency, a key that takes
//! seconds to propagate, a rate limit), bounded by the Lambda invocation's deadline.

use std::future::Future;
use std::time::{Duration, Instant, SystemTime};

/// How long a step may keep retrying: until 3 s before the invocation's deadline, or 60 s.
pub fn budget(deadline: Option<SystemTime>) -> Instant {
    let left = deadline
        .and_then(|d| d.duration_since(SystemTime::now()).ok())
        .map(|d| d.saturating_sub(Duration::from_secs(3)))
        .unwrap_or(Duration::from_secs(60));
    Instant::now() + left
}

/// Retries `op` with doubling pauses (250 ms up to 4 s) until it succeeds or `until` passes;
/// the error names the attempts and the last failure.
pub async fn retry_until<T, F, Fut>(until: Instant, mut op: F) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let mut pause = Duration::from_millis(250);
    let mut attempts = 0;
    loop {
        attempts += 1;
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) if Instant::now() + pause >= until => {
                return Err(format!("gave up after {attempts} attempts; last: {e}"));
            }
            Err(_) => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(4));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[tokio::test(start_paused = true)]
    async fn retries_until_the_key_works() {
        let calls = Cell::new(0);
        let r = retry_until(Instant::now() + Duration::from_secs(30), || {
            calls.set(calls.get() + 1);
            let n = calls.get();
            async move {
                if n < 4 {
                    Err("InvalidClientTokenId".to_string())
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!(r, Ok(4));
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_at_the_deadline_naming_the_last_error() {
        let r: Result<(), String> =
            retry_until(Instant::now() + Duration::from_secs(2), || async {
                Err("InvalidClientTokenId".to_string())
            })
            .await;
        let err = r.unwrap_err();
        assert!(
            err.contains("gave up after") && err.contains("InvalidClientTokenId"),
            "{err}"
        );
    }
}
