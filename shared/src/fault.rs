//! Crash points for the reliability tests, compiled in only with the `fault-injection` feature
//! (test builds; `scripts/package` never enables it).
//!
//! With `FAULT_CRASH_AFTER=N` and `FAULT_MARKER=PATH` set, the process aborts right after its
//! `N`th external call (Secrets Manager, IAM, STS, or a database statement) unless PATH exists;
//! it creates PATH first, so the retry that follows runs through. Without the feature every
//! call here is an empty inline function.

#[cfg(feature = "fault-injection")]
mod imp {
    use std::sync::atomic::{AtomicUsize, Ordering};

    static CALLS: AtomicUsize = AtomicUsize::new(0);

    pub fn after_call(what: &str) {
        let n = CALLS.fetch_add(1, Ordering::SeqCst) + 1;
        let Some(at) = std::env::var("FAULT_CRASH_AFTER")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
        else {
            return;
        };
        let Ok(marker) = std::env::var("FAULT_MARKER") else {
            return;
        };
        if n == at && std::fs::File::create_new(&marker).is_ok() {
            eprintln!("fault-injection: crashing after call {n} ({what})");
            std::process::abort();
        }
    }
}

#[cfg(not(feature = "fault-injection"))]
mod imp {
    #[inline(always)]
    pub fn after_call(_what: &str) {}
}

/// Marks the end of one external call.
pub use imp::after_call;
