//! Progress while a benchmark works: a bar (count, rate, time left) for each phase with a
//! known size, on standard error, drawn only when it is a terminal (indicatif hides it
//! otherwise, so logs and CI output stay clean).

use std::borrow::Cow;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// The bar of one phase; finished (and cleared) when dropped.
pub struct Progress(ProgressBar);

impl Progress {
    /// A bar for `len` steps of `what` (e.g. `pods Running`).
    pub fn new(len: usize, what: impl Into<Cow<'static, str>>) -> Self {
        let bar = ProgressBar::new(len as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} {msg:<28} [{bar:30}] {pos}/{len} {per_sec:>10} ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_message(what);
        bar.enable_steady_tick(Duration::from_millis(200));
        Self(bar)
    }

    /// One more step done.
    pub fn inc(&self) {
        self.0.inc(1);
    }

    /// `pos` steps done in all.
    pub fn set(&self, pos: usize) {
        self.0.set_position(pos as u64);
    }

    /// Steps done so far.
    pub fn position(&self) -> usize {
        self.0.position() as usize
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_steps() {
        let p = Progress::new(10, "steps");
        p.inc();
        p.inc();
        assert_eq!(p.position(), 2);
        p.set(7);
        assert_eq!(p.position(), 7);
    }
}
