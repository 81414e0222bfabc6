//! Ctrl-C, or a process that stopped making progress, as seen by every part of a command:
//! stop the work, but let the run history record how the command ended.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::watch;

mod stall;
use crate::error::{Result, StediError};

/// Why a command is being stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// Not stopped.
    No,
    /// The user pressed Ctrl-C.
    CtrlC,
    /// The process used no CPU time for [`stall::STALL_WINDOW`].
    Stalled,
}

/// Ctrl-C, or a stalled process, as seen by every part of a command.
///
/// One listener is installed as soon as a command starts, so no Ctrl-C is missed; a
/// watchdog notices when the process stops making progress (see [`stall`]). Either way
/// the whole command is dropped, except while a section marked with
/// [`Interrupt::recording`] runs: such a section (see [`crate::history::record`]) stops
/// its own work and still writes its row in the run history, and the command ends right
/// after.
#[derive(Debug, Clone)]
pub struct Interrupt {
    stop: watch::Receiver<Stop>,
    recording: Arc<AtomicUsize>,
}

/// While alive, a stop (Ctrl-C or a stall) is left to the section that holds it (see
/// [`Interrupt::recording`]).
#[derive(Debug)]
pub struct Recording {
    count: Arc<AtomicUsize>,
}

impl Drop for Recording {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Interrupt {
    /// Starts listening for Ctrl-C and watching for a stall. Must be called inside the
    /// Tokio runtime.
    pub fn listen() -> Interrupt {
        // Registered here, before anything else runs: a Ctrl-C that came before the
        // listening task first ran would otherwise end the process the default way.
        let sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).ok();
        Self::watching(
            async move {
                match sigint {
                    Some(mut sigint) => {
                        if sigint.recv().await.is_none() {
                            std::future::pending::<()>().await;
                        }
                    }
                    None => std::future::pending::<()>().await,
                }
            },
            stall::stalled(),
        )
    }

    /// Stops on whichever of `ctrl_c` and `stalled` resolves first.
    fn watching(
        ctrl_c: impl Future<Output = ()> + Send + 'static,
        stalled: impl Future<Output = ()> + Send + 'static,
    ) -> Interrupt {
        let (tx, stop) = watch::channel(Stop::No);
        tokio::spawn(async move {
            let why = tokio::select! {
                () = ctrl_c => Stop::CtrlC,
                () = stalled => Stop::Stalled,
            };
            let _ = tx.send(why);
            // Keep the sender alive: a closed channel would read as "never stopped".
            std::future::pending::<()>().await;
        });
        Interrupt {
            stop,
            recording: Arc::default(),
        }
    }

    /// An interrupt that never fires, for library callers that handle signals themselves.
    pub fn never() -> Interrupt {
        let (_, stop) = watch::channel(Stop::No);
        Interrupt {
            stop,
            recording: Arc::default(),
        }
    }

    /// Resolves once the command is to stop (at once if it already is), with the error
    /// it then ends with.
    async fn stopped(&self) -> StediError {
        let mut stop = self.stop.clone();
        match stop.wait_for(|s| *s != Stop::No).await.map(|s| *s) {
            Ok(Stop::Stalled) => StediError::Stalled {
                minutes: stall::STALL_WINDOW.as_secs() / 60,
            },
            Ok(_) => StediError::Interrupted,
            Err(_) => std::future::pending().await,
        }
    }

    /// Marks a section that handles a stop itself (with [`Interrupt::stop`]), until the
    /// returned guard is dropped: the command is then left to finish that section instead
    /// of being dropped on Ctrl-C or a stall.
    pub fn recording(&self) -> Recording {
        self.recording.fetch_add(1, Ordering::SeqCst);
        Recording {
            count: self.recording.clone(),
        }
    }

    /// Runs `work` until it ends or the command is to stop; then the work is dropped
    /// (Delta commits are atomic, so no table is left half-written) and the result is
    /// [`StediError::Interrupted`] on Ctrl-C, [`StediError::Stalled`] on a stall.
    pub async fn stop<T>(&self, work: impl Future<Output = Result<T>>) -> Result<T> {
        tokio::select! {
            biased;
            e = self.stopped() => Err(e),
            result = work => result,
        }
    }

    /// [`Interrupt::stop`] for a whole command: while a [`Interrupt::recording`] section
    /// runs, the stop is left to it, so that it can record how the command ended before
    /// the command ends.
    pub(super) async fn stop_command<T>(&self, work: impl Future<Output = Result<T>>) -> Result<T> {
        let mut work = std::pin::pin!(work);
        let e = tokio::select! {
            biased;
            e = self.stopped() => e,
            result = &mut work => return result,
        };
        if self.recording.load(Ordering::SeqCst) > 0 {
            return work.await;
        }
        Err(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_stalled_command_stops_with_an_error_that_says_so() {
        let interrupt = Interrupt::watching(
            std::future::pending(),
            tokio::time::sleep(Duration::from_millis(20)),
        );
        let hung = interrupt.stop(std::future::pending::<Result<()>>());
        let hung = tokio::time::timeout(Duration::from_secs(10), hung)
            .await
            .expect("the stall did not stop the work");
        assert!(matches!(hung, Err(StediError::Stalled { .. })), "{hung:?}");
    }

    #[tokio::test]
    async fn a_recording_section_records_the_stall_before_the_command_ends() {
        let interrupt = Interrupt::watching(
            std::future::pending(),
            tokio::time::sleep(Duration::from_millis(20)),
        );
        let section = async {
            let _recording = interrupt.recording();
            let stopped = interrupt.stop(std::future::pending::<Result<()>>()).await;
            // What `history::record` does: write the row, then hand the error back.
            tokio::time::sleep(Duration::from_millis(50)).await;
            stopped.map(|()| "finished").or_else(|e| match e {
                StediError::Stalled { .. } => Ok("recorded the stall"),
                e => Err(e),
            })
        };
        let ended = tokio::time::timeout(Duration::from_secs(10), interrupt.stop_command(section))
            .await
            .expect("the stall did not stop the command");
        assert_eq!(ended.unwrap(), "recorded the stall");
    }

    #[tokio::test]
    async fn work_that_ends_is_not_stopped() {
        let interrupt = Interrupt::watching(std::future::pending(), std::future::pending());
        assert_eq!(interrupt.stop(async { Ok(7) }).await.unwrap(), 7);
    }
}
