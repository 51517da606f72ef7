//! What a user sees while a job runs: one progress line (maps done, reduces done, bytes) on a
//! terminal, and nothing when stderr is not a terminal.

use std::sync::atomic::{AtomicU64, Ordering};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Job progress, safe to update from every task thread.
#[derive(Debug)]
pub struct Progress {
    bar: ProgressBar,
    maps_total: u64,
    reduces_total: u64,
    maps_done: AtomicU64,
    reduces_done: AtomicU64,
}

impl Progress {
    /// A progress line drawn on stderr when it is a terminal (`visible` false hides it always).
    pub fn new(job: &str, input_bytes: u64, maps: u64, reduces: u64, visible: bool) -> Progress {
        let target = if visible {
            // indicatif draws nothing when stderr is not a terminal.
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(Some(input_bytes.max(1)), target);
        let style = ProgressStyle::with_template(
            "{prefix} [{elapsed_precise}] [{bar:30}] {bytes}/{total_bytes} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        bar.set_prefix(job.to_owned());
        let p = Progress {
            bar,
            maps_total: maps,
            reduces_total: reduces,
            maps_done: AtomicU64::new(0),
            reduces_done: AtomicU64::new(0),
        };
        p.redraw();
        p
    }

    fn redraw(&self) {
        self.bar.set_message(format!(
            "maps {}/{} reduces {}/{}",
            self.maps_done.load(Ordering::Relaxed),
            self.maps_total,
            self.reduces_done.load(Ordering::Relaxed),
            self.reduces_total
        ));
    }

    /// A map task finished after reading `bytes`.
    pub fn map_done(&self, bytes: u64) {
        self.maps_done.fetch_add(1, Ordering::Relaxed);
        self.bar.inc(bytes);
        self.redraw();
    }

    /// A reduce task finished.
    pub fn reduce_done(&self) {
        self.reduces_done.fetch_add(1, Ordering::Relaxed);
        self.redraw();
    }

    /// Removes the line.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
