//! A command whose process has stopped making progress: noticed, so that it can end with
//! an error instead of waiting for ever.
//!
//! DataFusion 55 can deadlock while queries spill under memory pressure: every worker
//! parks and no error comes (upstream apache/datafusion#21625, #21631 and #21666 fix such
//! cases). A stalled process uses no CPU time at all, while real work, even waiting on
//! storage, does: every storage request times out and is retried within minutes. So a
//! command whose process has used almost no CPU time for [`STALL_WINDOW`] is stalled.

use std::time::Duration;

/// How long a command may go without using CPU time before it counts as stalled.
pub const STALL_WINDOW: Duration = Duration::from_secs(10 * 60);

/// How often the process's CPU time is read.
const CHECK_EVERY: Duration = Duration::from_secs(15);

/// CPU time per check below which the process did nothing: the check itself and idle
/// runtime threads use microseconds.
const IDLE: Duration = Duration::from_millis(5);

/// Resolves once the process has used no more than [`IDLE`] of CPU time per
/// [`CHECK_EVERY`] for [`STALL_WINDOW`]; never on a system whose CPU time cannot be read.
pub async fn stalled() {
    stalled_by(STALL_WINDOW, CHECK_EVERY, process_cpu_time).await
}

/// [`stalled`] with its window, period and clock of CPU time given.
async fn stalled_by(window: Duration, every: Duration, cpu_time: impl Fn() -> Option<Duration>) {
    let Some(mut last) = cpu_time() else {
        return std::future::pending().await;
    };
    let mut idle_for = Duration::ZERO;
    loop {
        tokio::time::sleep(every).await;
        let Some(now) = cpu_time() else {
            return std::future::pending().await;
        };
        if now.saturating_sub(last) > IDLE {
            idle_for = Duration::ZERO;
        } else {
            idle_for += every;
            if idle_for >= window {
                return;
            }
        }
        last = now;
    }
}

/// CPU time used so far by all of the process's threads.
#[cfg(unix)]
fn process_cpu_time() -> Option<Duration> {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::uninit();
    // SAFETY: `getrusage` only writes the struct it is given, which lives until it returns.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) } != 0 {
        return None;
    }
    // SAFETY: it returned 0, so it filled the struct.
    let usage = unsafe { usage.assume_init() };
    let time = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec.max(0) as u64) + Duration::from_micros(t.tv_usec.max(0) as u64)
    };
    Some(time(usage.ru_utime) + time(usage.ru_stime))
}

#[cfg(not(unix))]
fn process_cpu_time() -> Option<Duration> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    // The real window scaled down: 40 checks per window, as with the real one.
    const WINDOW: Duration = Duration::from_millis(400);
    const EVERY: Duration = Duration::from_millis(10);

    #[tokio::test]
    async fn a_process_that_uses_no_cpu_time_for_the_window_is_stalled() {
        let started = tokio::time::Instant::now();
        let idle = stalled_by(WINDOW, EVERY, || Some(Duration::from_secs(3)));
        tokio::time::timeout(20 * WINDOW, idle)
            .await
            .expect("never called stalled");
        let waited = started.elapsed();
        assert!(waited >= WINDOW && waited < 10 * WINDOW, "{waited:?}");
    }

    #[tokio::test]
    async fn a_process_that_keeps_working_is_never_stalled() {
        let used = AtomicU64::new(0);
        let working = || Some(Duration::from_millis(used.fetch_add(50, Ordering::Relaxed)));
        let watched = tokio::time::timeout(5 * WINDOW, stalled_by(WINDOW, EVERY, working)).await;
        assert!(watched.is_err(), "a working process was called stalled");
    }

    #[tokio::test]
    async fn work_in_the_window_starts_the_window_again() {
        // Idle for most of a window, one burst of work, then idle for good.
        let checks = AtomicU64::new(0);
        let burst_at = (WINDOW.as_millis() / EVERY.as_millis()) as u64 - 2;
        let clock = || {
            let n = checks.fetch_add(1, Ordering::Relaxed);
            Some(Duration::from_secs(if n > burst_at { 1 } else { 0 }))
        };
        let started = tokio::time::Instant::now();
        tokio::time::timeout(20 * WINDOW, stalled_by(WINDOW, EVERY, clock))
            .await
            .expect("never called stalled");
        let waited = started.elapsed();
        assert!(waited >= WINDOW + WINDOW - 3 * EVERY, "{waited:?}");
    }

    #[tokio::test]
    async fn without_a_cpu_clock_nothing_is_ever_stalled() {
        let watched = tokio::time::timeout(5 * WINDOW, stalled_by(WINDOW, EVERY, || None)).await;
        assert!(watched.is_err());
    }

    #[test]
    fn this_process_has_a_cpu_clock_that_moves_forward() {
        let before = process_cpu_time();
        if cfg!(unix) {
            let before = before.expect("getrusage");
            let mut x = 0u64;
            for i in 0..20_000_000u64 {
                x = std::hint::black_box(x.wrapping_add(i));
            }
            assert!(process_cpu_time().expect("getrusage") > before);
        }
    }
}
