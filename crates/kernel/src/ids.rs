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

/// Accepts only the canonical hyphenated form and never the nil UUID, so one id has one spelling:
/// the one parser of UUIDs from requests, command lines and tokens.
pub fn parse_uuid_text(value: &str) -> Option<Uuid> {
    if value.len() != 36 {
        return None;
    }
    Uuid::try_parse(value).ok().filter(|uuid| !uuid.is_nil())
}

/// UUID version 5 is the platform's own namespace: every id the platform derives from other values
/// (system accounts, wallets, budgets, purchase, charge and refund transfers) is a version-5 UUID,
/// and no caller may create an account or transfer with one. So a caller can never occupy an id
/// the platform will need, even where it can compute that id.
pub fn is_reserved(id: &Uuid) -> bool {
    id.get_version_num() == 5
}

/// A platform-derived id: a version-5 UUID of `name` in `namespace` (see [`is_reserved`]).
pub fn derived(namespace: &Uuid, name: &str) -> Uuid {
    Uuid::new_v5(namespace, name.as_bytes())
}

/// Longest piece of caller input an error message repeats.
pub const MAX_ECHO_CHARS: usize = 40;

/// Caller input as an error message may repeat it: quoted, control characters escaped, and cut to
/// [`MAX_ECHO_CHARS`] characters, so an error never grows with what the caller sent.
pub fn echo(value: &str) -> String {
    let mut shown: String = value.chars().take(MAX_ECHO_CHARS).collect();
    if value.chars().nth(MAX_ECHO_CHARS).is_some() {
        shown.push('…');
    }
    format!("{shown:?}")
}

/// Upper-case letters and digits without the look-alikes 0/O and 1/I (32 symbols: 5 bits each),
/// for codes people read and type.
const READABLE: &[u8] = b"23456789ABCDEFGHJKLMNPQRSTUVWXYZ";
/// Symbols after a prefix: 8 × 5 = 40 random bits for people's codes.
pub const PERSON_CODE_LENGTH: usize = 8;

/// `prefix` and [`PERSON_CODE_LENGTH`] readable symbols from the thread's CSPRNG (rand's
/// ChaCha-based `ThreadRng`, seeded by the operating system): `REF7K3M9QXA`. Callers retry on
/// the rare collision with a unique key.
pub fn person_code(prefix: &str) -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    let symbols: String = (0..PERSON_CODE_LENGTH)
        .map(|_| char::from(READABLE[rng.random_range(0..READABLE.len())]))
        .collect();
    format!("{prefix}{symbols}")
}

/// A code as people type it: trimmed and upper-cased; `None` unless 3 to 32 letters or digits.
pub fn normalize_code(code: &str) -> Option<String> {
    let code = code.trim().to_ascii_uppercase();
    ((3..=32).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_alphanumeric()))
        .then_some(code)
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
    fn derived_ids_are_reserved_and_random_ones_are_not() {
        let namespace = Uuid::new_v4();
        assert!(is_reserved(&derived(&namespace, "wallet")));
        assert_eq!(derived(&namespace, "a"), derived(&namespace, "a"));
        assert!(!is_reserved(&Uuid::new_v4()));
        assert!(!is_reserved(&Uuid::now_v7()));
    }

    #[test]
    fn echoed_input_is_short_and_quoted() {
        assert_eq!(echo("steel"), "\"steel\"");
        let long = "x".repeat(100_000);
        assert!(echo(&long).chars().count() <= MAX_ECHO_CHARS + 3);
        assert_eq!(echo("a\nb"), "\"a\\nb\"");
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
