//! Waiting out a service that answers "not yet" (IAM's eventual consistency, a key that takes
//! seconds to propagate, a rate limit), bounded by the Lambda invocation's deadline.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// How long a step may keep retrying: until 3 s before the invocation's deadline, or 60 s.
pub fn budget(deadline: Option<SystemTime>) -> Instant {
    let left = deadline
        .and_then(|d| d.duration_since(SystemTime::now()).ok())
        .map(|d| d.saturating_sub(Duration::from_secs(3)))
        .unwrap_or(Duration::from_secs(60));
    Instant::now() + left
}

/// What the running step is waiting for (`waiting_for`), read when its budget runs out.
type Activity = Arc<Mutex<Option<String>>>;

tokio::task_local! {
    static ACTIVITY: Activity;
}

/// Notes what the step is waiting for (`"Secrets Manager GetSecretValue"`) until the guard drops,
/// so a step that runs out of time can say what was slow. Outside `within_budget`, nothing.
pub fn waiting_for(what: impl Into<String>) -> Waiting {
    let what = what.into();
    let before = ACTIVITY
        .try_with(|a| a.lock().unwrap().replace(what))
        .ok()
        .flatten();
    Waiting { before }
}

/// Restores what the step waited for before, when the call it names has answered.
pub struct Waiting {
    before: Option<String>,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        let before = self.before.take();
        let _ = ACTIVITY.try_with(|a| *a.lock().unwrap() = before);
    }
}

/// Runs a whole step under one time budget shared by every call it makes. `Err` says the budget
/// ran out and what the step was waiting for then. The limit is `budget(deadline)` plus 500 ms:
/// bounds inside the step that end at `budget(deadline)` with their own, more precise error (a
/// database session's `Clock`, `retry_until`) answer first, and 2.5 s are still left to report.
pub async fn within_budget<T>(
    deadline: Option<SystemTime>,
    step: impl Future<Output = T>,
) -> Result<T, String> {
    let until = budget(deadline) + Duration::from_millis(500);
    let activity = Activity::default();
    let step = ACTIVITY.scope(activity.clone(), step);
    tokio::pin!(step);
    tokio::select! {
        biased;
        done = &mut step => Ok(done),
        () = tokio::time::sleep_until(until.into()) => {
            // Read before `step` drops, which runs its guards.
            let what = activity.lock().unwrap().clone();
            Err(match what {
                Some(what) => format!("{OUT_OF_TIME} while waiting for {what}"),
                None => format!("{OUT_OF_TIME}; no call had named what it was waiting for"),
            })
        }
    }
}

const OUT_OF_TIME: &str = "the step's time budget ran out (3 s before the invocation's deadline)";

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
    async fn a_step_out_of_time_names_what_it_waited_for() {
        let deadline = Some(SystemTime::now() + Duration::from_secs(8));
        let err = within_budget(deadline, async {
            let _done = waiting_for("Secrets Manager DescribeSecret");
            drop(_done);
            let _slow = waiting_for("IAM ListAccessKeys");
            std::future::pending::<()>().await
        })
        .await
        .unwrap_err();
        assert!(
            err.contains("time budget ran out") && err.ends_with("waiting for IAM ListAccessKeys"),
            "{err}"
        );
        let quick = within_budget(deadline, async { 7 }).await;
        assert_eq!(quick, Ok(7));
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
