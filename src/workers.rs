//! Work spread over the runtime's threads, and stopped with the command that started it.

use std::future::Future;

use tokio::task::JoinSet;

use crate::error::{Result, StediError};

/// Runs each piece of work as a task of its own (so that every core works) and returns
/// their results in the order given, or the first error.
///
/// The tasks belong to the returned future: when it is dropped (Ctrl-C drops the
/// command) or returns an error, every task still running is aborted, so that no writer
/// keeps going behind a command that has ended.
pub async fn run_all<T, F>(work: Vec<F>) -> Result<Vec<T>>
where
    T: Send + 'static,
    F: Future<Output = Result<T>> + Send + 'static,
{
    let n = work.len();
    let mut tasks = JoinSet::new();
    for (i, piece) in work.into_iter().enumerate() {
        tasks.spawn(async move { (i, piece.await) });
    }
    let mut results: Vec<Option<T>> = (0..n).map(|_| None).collect();
    while let Some(joined) = tasks.join_next().await {
        let (i, result) = joined.map_err(|e| StediError::Output(e.to_string()))?;
        results[i] = Some(result?);
    }
    Ok(results.into_iter().flatten().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread")]
    async fn results_keep_their_order_and_an_error_stops_the_rest() {
        let work: Vec<_> = (0..4u64)
            .map(|i| async move {
                tokio::time::sleep(std::time::Duration::from_millis(40 - 10 * i)).await;
                Ok(i)
            })
            .collect();
        assert_eq!(run_all(work).await.unwrap(), vec![0, 1, 2, 3]);

        let finished = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = finished.clone();
        let slow = Box::pin(async move {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
            Ok(())
        }) as std::pin::Pin<Box<dyn Future<Output = Result<()>> + Send>>;
        let failing = Box::pin(async { Err(StediError::Interrupted) })
            as std::pin::Pin<Box<dyn Future<Output = Result<()>> + Send>>;
        assert!(run_all(vec![slow, failing]).await.is_err());
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
        assert!(
            !finished.load(std::sync::atomic::Ordering::SeqCst),
            "the slow task was not aborted"
        );
    }
}
