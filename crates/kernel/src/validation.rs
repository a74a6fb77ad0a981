//! Collecting every bad field of a request into one `BadRequest`.
//!
//! A request with three bad fields answers all three at once, so a client fixes them in one round
//! trip. Field paths are proto field names (`transfers[2].amount`, `settings.time_zone`).

use uuid::Uuid;

use crate::error::ServiceError;
use crate::ids;

/// Most violations one error carries; more are dropped (the client learns of them next time).
const MAX_VIOLATIONS: usize = 100;

/// The field violations of one request, under an optional path prefix.
#[derive(Debug)]
pub struct Violations {
    domain: String,
    prefix: String,
    list: Vec<(String, String)>,
}

impl Violations {
    pub fn new(domain: &str) -> Violations {
        Violations::under(domain, "")
    }

    /// Violations whose fields are all written below `prefix` (for example `"materials[3]."`).
    pub fn under(domain: &str, prefix: &str) -> Violations {
        Violations {
            domain: domain.to_owned(),
            prefix: prefix.to_owned(),
            list: Vec::new(),
        }
    }

    /// Records that `field` (below the prefix) is bad, and why.
    pub fn add(&mut self, field: &str, description: impl Into<String>) {
        if self.list.len() < MAX_VIOLATIONS {
            self.list
                .push((format!("{}{field}", self.prefix), description.into()));
        }
    }

    /// Keeps the value of a check that passed; records the field violations of one that failed
    /// (under the prefix) and gives `None`. A failure that names no field is recorded under
    /// `field`.
    pub fn take<T>(&mut self, field: &str, result: Result<T, ServiceError>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(error) => {
                if error.field_violations().is_empty() {
                    self.add(field, error.message().to_owned());
                }
                for (name, description) in error.field_violations() {
                    self.add(name, description.clone());
                }
                None
            }
        }
    }

    /// A required canonical UUID (see [`ids::parse_uuid`]); `None` after recording a violation.
    pub fn uuid(&mut self, field: &str, value: &str) -> Option<Uuid> {
        let result = ids::parse_uuid(&self.domain, field, value);
        self.take(field, result)
    }

    /// An optional canonical UUID: `None` when empty, and `None` after recording a violation
    /// when it is not a UUID.
    pub fn optional_uuid(&mut self, field: &str, value: &str) -> Option<Uuid> {
        let result = ids::parse_optional_uuid(&self.domain, field, value);
        self.take(field, result).flatten()
    }

    /// Records a violation of `field` when `ok` is false.
    pub fn check(&mut self, ok: bool, field: &str, description: impl Into<String>) {
        if !ok {
            self.add(field, description);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Moves another collector's violations into this one (a nested message validated apart).
    pub fn extend(&mut self, other: Violations) {
        for (field, description) in other.list {
            if self.list.len() < MAX_VIOLATIONS {
                self.list.push((field, description));
            }
        }
    }

    /// The violations as fields and descriptions, in the order they were found.
    pub fn as_slice(&self) -> &[(String, String)] {
        &self.list
    }

    /// `Ok(())` when nothing was recorded, else one INVALID_ARGUMENT naming every bad field.
    pub fn finish(self) -> Result<(), ServiceError> {
        let mut list = self.list.into_iter();
        let Some((field, description)) = list.next() else {
            return Ok(());
        };
        Err(list.fold(
            ServiceError::invalid_field(&self.domain, &field, description),
            |error, (field, description)| error.with_field(&field, description),
        ))
    }

    /// The error of these violations, for a caller that knows there are some (a generic one for
    /// the request when there are none).
    pub fn into_error(self) -> ServiceError {
        let domain = self.domain.clone();
        match self.finish() {
            Err(error) => error,
            Ok(()) => ServiceError::invalid_field(&domain, "request", "is invalid"),
        }
    }

    /// `Ok(value)` when nothing was recorded, else the error of [`Violations::finish`].
    pub fn result<T>(self, value: T) -> Result<T, ServiceError> {
        self.finish().map(|()| value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bad_field_is_reported_once_in_order() {
        let mut violations = Violations::under("promo.test", "items[2].");
        assert_eq!(violations.uuid("id", ""), None);
        assert_eq!(violations.uuid("owner_id", "not-a-uuid"), None);
        let id = "0191f2a0-7b1c-7d4e-8f00-000000000001";
        assert_eq!(violations.uuid("other_id", id), Uuid::try_parse(id).ok());
        assert_eq!(violations.optional_uuid("parent_id", ""), None);
        assert_eq!(
            violations.optional_uuid("parent_id", "00000000-0000-0000-0000-000000000000"),
            None
        );
        violations.check(1 + 1 == 3, "count", "must be odd");
        let error = violations.finish().expect_err("four violations");
        let fields: Vec<&str> = error
            .field_violations()
            .iter()
            .map(|(field, _)| field.as_str())
            .collect();
        assert_eq!(
            fields,
            [
                "items[2].id",
                "items[2].owner_id",
                "items[2].parent_id",
                "items[2].count"
            ]
        );
        assert_eq!(error.domain(), "promo.test");
    }

    #[test]
    fn nothing_recorded_is_ok_and_the_count_is_capped() {
        assert_eq!(Violations::new("promo.test").result(7).ok(), Some(7));
        let mut violations = Violations::new("promo.test");
        for index in 0..500 {
            violations.add(&format!("f{index}"), "bad");
        }
        let error = violations.finish().expect_err("violations");
        assert_eq!(error.field_violations().len(), MAX_VIOLATIONS);
    }
}
