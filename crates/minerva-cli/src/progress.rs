//! A pull's progress in the terminal: a bar while a file downloads, its status lines otherwise.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use minerva_core::PullProgress;

/// Draws [`PullProgress`] steps on stderr.
pub struct Terminal {
    bar: ProgressBar,
    /// The status the bar is drawn for, once shown.
    shown: Option<String>,
}

impl Terminal {
    pub fn new() -> Self {
        Terminal {
            bar: ProgressBar::hidden(),
            shown: None,
        }
    }

    /// Shows one step: a bar for `pulling <digest>` with byte counts, a line for the others.
    pub fn report(&mut self, p: PullProgress) {
        if p.status.starts_with("pulling ") && p.completed.is_some() {
            if self.shown.as_ref().is_some_and(|s| *s != p.status) {
                // The next file of a model directory.
                self.end_bar();
            }
            if self.shown.is_none() {
                self.bar.set_draw_target(ProgressDrawTarget::stderr());
                self.bar.set_style(
                    ProgressStyle::with_template(
                        "{msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
                );
                self.bar.set_message(p.status.clone());
                self.shown = Some(p.status.clone());
            }
            if let Some(total) = p.total {
                self.bar.set_length(total);
            }
            self.bar.set_position(p.completed.unwrap_or(0));
        } else {
            self.end_bar();
            eprintln!("{}", p.status);
        }
    }

    fn end_bar(&mut self) {
        if self.shown.take().is_some() {
            self.bar.finish();
            self.bar = ProgressBar::hidden();
        }
    }

    /// Clears a bar still drawn (a pull that failed midway).
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
