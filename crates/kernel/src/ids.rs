//! Parsing of identifiers and other request fields: the only way a raw string becomes a typed value.

use uuid::Uuid;

use crate::error::ServiceError;

/// Parses a required UUID field; anything else is INVALID_ARGUMENT naming the field.
pub fn parse_uuid(domain: &str, field: &str, value: &str) -> Result<Uuid, ServiceError> {
    if value.is_empty() {
        return Err(ServiceError::invalid_field(domain, field, "is required"));
    }
    parse_uuid_text(value)
        .ok_or_else(|| ServiceError::invalid_field(domain, field, "must be a UUID"))
}

/// Parses an optional UUID field: empty means `None`.
pub fn parse_optional_uuid(
    domain: &str,
    field: &str,
    value: &str,
) -> Result<Option<Uuid>, ServiceError> {
    if value.is_empty() {
        return Ok(None);
    }
    parse_uuid(domain, field, value).map(Some)
}

/// Accepts only the canonical hyphenated form, so one id has one spelling.
fn parse_uuid_text(value: &str) -> Option<Uuid> {
    if value.len() != 36 {
        return None;
    }
    Uuid::try_parse(value).ok().filter(|uuid| !uuid.is_nil())
}

/// Checks a free-text field's length in characters (1..=max unless `allow_empty`).
pub fn check_text(
    domain: &str,
    field: &str,
    value: &str,
    max_chars: usize,
    allow_empty: bool,
) -> Result<(), ServiceError> {
    if value.is_empty() && !allow_empty {
        return Err(ServiceError::invalid_field(domain, field, "is required"));
    }
    if value.chars().count() > max_chars {
        return Err(ServiceError::invalid_field(
            domain,
            field,
            format!("must be at most {max_chars} characters"),
        ));
    }
    if value.chars().any(|c| c.is_control()) {
        return Err(ServiceError::invalid_field(
            domain,
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_canonical_non_nil_uuids_parse() {
        let id = "0b7f6f3c-8b9a-4a53-9a57-8a4c5b1d2e3f";
        assert!(parse_uuid("promo.test", "id", id).is_ok());
        for bad in [
            "",
            "not-a-uuid",
            "0b7f6f3c8b9a4a539a578a4c5b1d2e3f",
            "00000000-0000-0000-0000-000000000000",
        ] {
            let error = parse_uuid("promo.test", "id", bad).expect_err(bad);
            assert_eq!(error.field_violations()[0].0, "id");
        }
        assert_eq!(parse_optional_uuid("promo.test", "id", "").ok(), Some(None));
    }

    #[test]
    fn text_checks_length_emptiness_and_control_characters() {
        assert!(check_text("d", "name", "ok", 3, false).is_ok());
        assert!(check_text("d", "name", "", 3, false).is_err());
        assert!(check_text("d", "name", "", 3, true).is_ok());
        assert!(check_text("d", "name", "four", 3, false).is_err());
        assert!(check_text("d", "name", "a\u{0}b", 3, false).is_err());
    }
}
