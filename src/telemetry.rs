//! Logging: readable for people, JSON for log pipelines; `RUST_LOG` overrides the level.

use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LogSettings};

pub fn init(settings: &LogSettings) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a terminal, never into a log file or pipeline.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    // try_init: a second call (tests) keeps the first subscriber
    let _ = match settings.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
}

/// At most one log line a second for a failure that repeats with every request (the
/// database down, the queue full): the first is logged, the rest counted into the next.
pub struct Throttle {
    last_second: std::sync::atomic::AtomicI64,
    suppressed: std::sync::atomic::AtomicU64,
}

impl Throttle {
    pub const fn new() -> Self {
        Throttle {
            last_second: std::sync::atomic::AtomicI64::new(i64::MIN),
            suppressed: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// `Some(n)` when a line may be logged now, `n` being how many were held back since
    /// the last one; `None` when this one is to be counted instead.
    pub fn allow(&self, now_second: i64) -> Option<u64> {
        use std::sync::atomic::Ordering;
        let last = self.last_second.load(Ordering::Relaxed);
        if now_second > last
            && self
                .last_second
                .compare_exchange(last, now_second, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            return Some(self.suppressed.swap(0, Ordering::Relaxed));
        }
        self.suppressed.fetch_add(1, Ordering::Relaxed);
        None
    }
}

impl Default for Throttle {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::Throttle;

    #[test]
    fn one_line_a_second_and_the_rest_counted_into_the_next() {
        let t = Throttle::new();
        assert_eq!(t.allow(10), Some(0));
        assert_eq!(t.allow(10), None);
        assert_eq!(t.allow(10), None);
        assert_eq!(t.allow(11), Some(2));
        assert_eq!(t.allow(11), None);
        assert_eq!(t.allow(13), Some(1));
    }
}
