//! The download and upload progress bars: on stderr, and only when stderr is a terminal that
//! can draw them (none when piped or redirected, so logs and scripts stay clean, nor with
//! `TERM=dumb`).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use nx_blocking::{DownloadOptions, UploadSource};

/// A progress bar for one download, or nothing when stderr is not a terminal.
pub(crate) struct Bar(Option<ProgressBar>);

impl Bar {
    /// A bar if stderr is a terminal that can draw one.
    pub(crate) fn for_stderr() -> Self {
        if !crate::terminal::stderr_draws_progress() {
            return Self(None);
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template(
            "{bar:30} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        Self(Some(bar))
    }

    /// `options` reporting to this bar.
    pub(crate) fn attach(&self, options: DownloadOptions) -> DownloadOptions {
        let Some(bar) = self.0.clone() else {
            return options;
        };
        options.progress(move |done, total| {
            if let Some(total) = total
                && bar.length() != Some(total)
            {
                bar.set_length(total);
            }
            bar.set_position(done);
        })
    }

    /// `source` reporting to this bar as its bytes are sent (a retried upload starts it again).
    pub(crate) fn attach_upload(&self, source: UploadSource) -> UploadSource {
        let Some(bar) = self.0.clone() else {
            return source;
        };
        source.progress(move |done, total| {
            if bar.length() != Some(total) {
                bar.set_length(total);
            }
            bar.set_position(done);
        })
    }

    /// Removes the bar from the terminal.
    pub(crate) fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}
