//! Ctrl-C, as seen by every part of a command: stop the work, but let the run history
//! record that it was interrupted.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::watch;

use crate::error::{Result, StediError};

/// Ctrl-C, as seen by every part of a command.
///
/// One listener is installed as soon as a command starts, so no Ctrl-C is missed. The
/// whole command is dropped on Ctrl-C, except while a
/// section marked with [`Interrupt::recording`] runs: such a section (see
/// [`crate::history::record`]) stops its own work and still writes its row in the run
/// history, and the command ends right after.
#[derive(Debug, Clone)]
pub struct Interrupt {
    pressed: watch::Receiver<bool>,
    recording: Arc<AtomicUsize>,
}

/// While alive, Ctrl-C is left to the section that holds it (see [`Interrupt::recording`]).
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
    /// Starts listening for Ctrl-C. Must be called inside the Tokio runtime.
    pub fn listen() -> Interrupt {
        let (tx, pressed) = watch::channel(false);
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                let _ = tx.send(true);
            }
            // Keep the sender alive: a closed channel would read as "never pressed".
            std::future::pending::<()>().await;
        });
        Interrupt {
            pressed,
            recording: Arc::default(),
        }
    }

    /// An interrupt that never fires, for library callers that handle signals themselves.
    pub fn never() -> Interrupt {
        let (_, pressed) = watch::channel(false);
        Interrupt {
            pressed,
            recording: Arc::default(),
        }
    }

    /// Resolves once Ctrl-C was pressed (at once if it already was).
    pub async fn pressed(&self) {
        let mut pressed = self.pressed.clone();
        if pressed.wait_for(|p| *p).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Marks a section that handles Ctrl-C itself (with [`Interrupt::stop`]), until the
    /// returned guard is dropped: the command is then left to finish that section instead
    /// of being dropped on Ctrl-C.
    pub fn recording(&self) -> Recording {
        self.recording.fetch_add(1, Ordering::SeqCst);
        Recording {
            count: self.recording.clone(),
        }
    }

    /// Runs `work` until it ends or Ctrl-C is pressed; on Ctrl-C the work is dropped
    /// (Delta commits are atomic, so no table is left half-written) and the result is
    /// [`StediError::Interrupted`].
    pub async fn stop<T>(&self, work: impl Future<Output = Result<T>>) -> Result<T> {
        tokio::select! {
            biased;
            _ = self.pressed() => Err(StediError::Interrupted),
            result = work => result,
        }
    }

    /// [`Interrupt::stop`] for a whole command: while a [`Interrupt::recording`] section
    /// runs, Ctrl-C is left to it, so that it can record the interruption before the
    /// command ends.
    pub(super) async fn stop_command<T>(&self, work: impl Future<Output = Result<T>>) -> Result<T> {
        let mut work = std::pin::pin!(work);
        tokio::select! {
            biased;
            _ = self.pressed() => {}
            result = &mut work => return result,
        }
        if self.recording.load(Ordering::SeqCst) > 0 {
            return work.await;
        }
        Err(StediError::Interrupted)
    }
}
