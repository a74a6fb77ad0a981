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

/// 0001-01-01T00:00:00Z, the earliest instant a request may carry (RFC 3339 and
/// `google.protobuf.Timestamp` stop there).
pub const MIN_TIMESTAMP_SECONDS: i64 = -62_135_596_800;
/// 9999-12-31T23:59:59Z, the latest instant a request may carry.
pub const MAX_TIMESTAMP_SECONDS: i64 = 253_402_300_799;

/// A protobuf timestamp as stored microseconds; `None` when it is malformed or outside
/// 0001-01-01..9999-12-31 (what JSON clients can print).
pub fn timestamp_to_micros(timestamp: &prost_types::Timestamp) -> Option<i64> {
    if !(0..1_000_000_000).contains(&timestamp.nanos)
        || !(MIN_TIMESTAMP_SECONDS..=MAX_TIMESTAMP_SECONDS).contains(&timestamp.seconds)
    {
        return None;
    }
    timestamp
        .seconds
        .checked_mul(1_000_000)?
        .checked_add(i64::from(timestamp.nanos / 1_000))
}

/// Parses an optional timestamp field of a request: absent is `None`; malformed or out of range
/// is INVALID_ARGUMENT naming the field.
pub fn parse_timestamp(
    domain: &str,
    field: &str,
    value: Option<&prost_types::Timestamp>,
) -> Result<Option<i64>, crate::ServiceError> {
    value
        .map(|timestamp| {
            timestamp_to_micros(timestamp).ok_or_else(|| {
                crate::ServiceError::invalid_field(
                    domain,
                    field,
                    "must be a valid time between 0001-01-01 and 9999-12-31",
                )
            })
        })
        .transpose()
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
        let year_10000 = prost_types::Timestamp {
            seconds: MAX_TIMESTAMP_SECONDS + 1,
            nanos: 0,
        };
        assert_eq!(timestamp_to_micros(&year_10000), None);
        let last = prost_types::Timestamp {
            seconds: MAX_TIMESTAMP_SECONDS,
            nanos: 999_999_999,
        };
        assert!(timestamp_to_micros(&last).is_some());
        let error = parse_timestamp("d", "end_time", Some(&year_10000)).expect_err("too late");
        assert_eq!(error.field_violations()[0].0, "end_time");
        assert_eq!(parse_timestamp("d", "end_time", None).ok(), Some(None));
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
