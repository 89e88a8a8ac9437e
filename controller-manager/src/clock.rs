//! The controllers' wall clock: real time, advanced by tokio's clock so that tests which pause
//! and advance time (`tokio::time::pause`) see deadlines (minReadySeconds, progress deadlines,
//! node grace periods, toleration seconds) pass without waiting.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use tokio::time::Instant;

/// Wall time anchored at creation and advanced by `tokio::time::Instant`.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    wall: jiff::Timestamp,
    mono: Instant,
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock {
    /// A clock reading the current time.
    pub fn new() -> Self {
        Self {
            wall: jiff::Timestamp::now(),
            mono: Instant::now(),
        }
    }

    /// A clock that reads `at` now (tests).
    pub fn at(at: jiff::Timestamp) -> Self {
        Self {
            wall: at,
            mono: Instant::now(),
        }
    }

    /// The current time.
    pub fn now(&self) -> jiff::Timestamp {
        self.wall
            .checked_add(self.mono.elapsed())
            .unwrap_or(self.wall)
    }

    /// The current time as a metav1.Time.
    pub fn time(&self) -> Time {
        Time(self.now())
    }

    /// How long from now until `at` (zero if it has passed).
    pub fn until(&self, at: jiff::Timestamp) -> Duration {
        let d = at.duration_since(self.now());
        Duration::try_from(d).unwrap_or(Duration::ZERO)
    }
}

/// `t + secs` seconds.
pub fn plus_secs(t: jiff::Timestamp, secs: i64) -> jiff::Timestamp {
    t.checked_add(jiff::SignedDuration::from_secs(secs))
        .unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn advances_with_tokio_time() {
        let c = Clock::new();
        let t0 = c.now();
        tokio::time::advance(Duration::from_secs(90)).await;
        assert_eq!(c.now().duration_since(t0).as_secs(), 90);
        assert_eq!(c.until(plus_secs(t0, 100)), Duration::from_secs(10));
        assert_eq!(c.until(t0), Duration::ZERO);
    }
}
