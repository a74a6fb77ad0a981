//! Time behind a trait so tests can drive it.

use std::sync::Mutex;

use chrono::{DateTime, Duration, TimeZone, Utc};

/// A source of the current UTC time.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

/// The wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that only moves when told to.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<DateTime<Utc>>,
}

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> ManualClock {
        ManualClock {
            now: Mutex::new(start),
        }
    }

    pub fn advance(&self, by: Duration) {
        let mut now = self
            .now
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *now += by;
    }

    pub fn set(&self, to: DateTime<Utc>) {
        *self
            .now
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = to;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self
            .now
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Microseconds since the Unix epoch: how every table stores instants (sortable, exact, the same on
/// SQLite and PostgreSQL).
pub fn to_micros(instant: DateTime<Utc>) -> i64 {
    instant.timestamp_micros()
}

/// The inverse of [`to_micros`]; out-of-range values clamp to the representable bounds.
pub fn from_micros(micros: i64) -> DateTime<Utc> {
    Utc.timestamp_micros(micros)
        .single()
        .unwrap_or(if micros < 0 {
            DateTime::<Utc>::MIN_UTC
        } else {
            DateTime::<Utc>::MAX_UTC
        })
}

/// A stored instant as a protobuf timestamp.
pub fn micros_to_timestamp(micros: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: micros.div_euclid(1_000_000),
        nanos: (micros.rem_euclid(1_000_000) * 1_000) as i32,
    }
}

/// A protobuf timestamp as stored microseconds; `None` when it is out of range or malformed.
pub fn timestamp_to_micros(timestamp: &prost_types::Timestamp) -> Option<i64> {
    if !(0..1_000_000_000).contains(&timestamp.nanos) {
        return None;
    }
    timestamp
        .seconds
        .checked_mul(1_000_000)?
        .checked_add(i64::from(timestamp.nanos / 1_000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_through_micros() {
        for micros in [0, 1, -1, 1_700_000_000_123_456, -1_500_000] {
            assert_eq!(
                timestamp_to_micros(&micros_to_timestamp(micros)),
                Some(micros)
            );
            assert_eq!(to_micros(from_micros(micros)), micros);
        }
        let bad = prost_types::Timestamp {
            seconds: 1,
            nanos: -5,
        };
        assert_eq!(timestamp_to_micros(&bad), None);
        let huge = prost_types::Timestamp {
            seconds: i64::MAX,
            nanos: 0,
        };
        assert_eq!(timestamp_to_micros(&huge), None);
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let start = from_micros(1_000_000);
        let clock = ManualClock::new(start);
        assert_eq!(clock.now(), start);
        clock.advance(Duration::seconds(5));
        assert_eq!(clock.now(), from_micros(6_000_000));
    }
}
