//! The clock of a fault that trickles: one interval per step, within a hold limit, cut short by
//! shutdown.

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::shutdown::wait_shutdown;

/// Paces a trickling fault's steps.
#[derive(Clone)]
pub(crate) struct Pace {
    interval: Duration,
    deadline: Instant,
    shutdown: watch::Receiver<bool>,
}

impl Pace {
    /// Steps `interval` apart, for at most `limit` from now.
    pub(crate) fn new(
        interval: Duration,
        limit: Duration,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        Self {
            interval,
            deadline: Instant::now() + limit,
            shutdown,
        }
    }

    /// Waits one interval (a zero interval only yields to other tasks); why the fault must end
    /// instead, once the hold limit has passed or on shutdown.
    pub(crate) async fn tick(&mut self) -> Result<(), &'static str> {
        let wait = async {
            if self.interval.is_zero() {
                tokio::task::yield_now().await;
            } else {
                tokio::time::sleep(self.interval).await;
            }
        };
        tokio::select! {
            biased;
            () = wait_shutdown(&mut self.shutdown) => Err("shutting down"),
            () = tokio::time::sleep_until(self.deadline) => Err("the fault's hold limit passed"),
            () = wait => Ok(()),
        }
    }

    /// Resolves when the fault must end (hold limit or shutdown), whatever it is doing.
    pub(crate) async fn over(&mut self) -> &'static str {
        tokio::select! {
            biased;
            () = wait_shutdown(&mut self.shutdown) => "shutting down",
            () = tokio::time::sleep_until(self.deadline) => "the fault's hold limit passed",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ticks_until_the_limit_or_shutdown() {
        let (tx, rx) = watch::channel(false);
        let mut pace = Pace::new(Duration::from_millis(5), Duration::from_millis(60), rx);
        let started = std::time::Instant::now();
        let mut ticks = 0;
        while pace.tick().await.is_ok() {
            ticks += 1;
        }
        assert!((2..=12).contains(&ticks), "{ticks}");
        assert!(started.elapsed() >= Duration::from_millis(60));
        assert_eq!(pace.over().await, "the fault's hold limit passed");

        let mut pace = Pace::new(Duration::ZERO, Duration::from_secs(60), tx.subscribe());
        assert_eq!(pace.tick().await, Ok(()));
        tx.send(true).unwrap();
        assert_eq!(pace.tick().await, Err("shutting down"));
    }
}
