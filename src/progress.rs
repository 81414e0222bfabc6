//! Progress on long work: bars on a terminal, nothing at all when stderr is piped or
//! `--quiet` is given. Data goes to stdout; progress never does.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Where progress of one command is drawn.
#[derive(Clone)]
pub struct Progress {
    multi: Option<MultiProgress>,
}

impl Progress {
    /// Progress that draws only when stderr is a terminal and the user did not ask for quiet.
    pub fn for_terminal(quiet: bool) -> Self {
        let show = !quiet && std::io::stderr().is_terminal();
        Progress {
            multi: show.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr())),
        }
    }

    /// Progress that draws nothing (tests, library use).
    pub fn hidden() -> Self {
        Progress { multi: None }
    }

    /// A stage measured in bytes (ingesting files).
    pub fn bytes(&self, label: &str, total: u64) -> Stage {
        self.add(
            label,
            Some(total),
            "{prefix:>24} {bar:30} {bytes}/{total_bytes} {msg}",
        )
    }

    /// A stage without a known size (building a table).
    pub fn step(&self, label: &str) -> Stage {
        self.add(label, None, "{prefix:>24} {spinner} {msg}")
    }

    fn add(&self, label: &str, total: Option<u64>, template: &str) -> Stage {
        let Some(multi) = &self.multi else {
            return Stage { bar: None };
        };
        let bar = match total {
            Some(t) => ProgressBar::new(t),
            None => ProgressBar::new_spinner(),
        };
        let style = ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        let bar = multi.add(bar.with_style(style).with_prefix(label.to_string()));
        bar.enable_steady_tick(Duration::from_millis(120));
        Stage { bar: Some(bar) }
    }
}

/// One stage's bar.
#[derive(Clone)]
pub struct Stage {
    bar: Option<ProgressBar>,
}

impl Stage {
    /// Advances by `n` (bytes for a byte stage).
    pub fn inc(&self, n: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(n);
        }
    }

    /// Shows a short message beside the bar.
    pub fn message(&self, msg: impl Into<String>) {
        if let Some(bar) = &self.bar {
            bar.set_message(msg.into());
        }
    }

    /// Ends the stage, leaving its final message on screen.
    pub fn finish(&self, msg: impl Into<String>) {
        if let Some(bar) = &self.bar {
            bar.finish_with_message(msg.into());
        }
    }
}
