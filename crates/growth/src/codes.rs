//! Codes handed to people and browsers: referral codes (`REF…`), affiliate codes (`AFF…`) and
//! link short codes. All are drawn from the thread's CSPRNG (rand's ChaCha-based `ThreadRng`,
//! seeded from the operating system), so nobody can guess the next one.

use rand::Rng;

pub use kernel::ids::{normalize_code as normalize, person_code};

/// Letters of both cases and digits (62 symbols), for short codes in URLs.
const URL_SAFE: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// 8 × log2(62) ≈ 47.6 random bits for short codes.
pub const SHORT_CODE_LENGTH: usize = 8;

fn draw(alphabet: &[u8], length: usize) -> String {
    let mut rng = rand::rng();
    (0..length)
        .map(|_| char::from(alphabet[rng.random_range(0..alphabet.len())]))
        .collect()
}

pub fn short_code() -> String {
    draw(URL_SAFE, SHORT_CODE_LENGTH)
}

/// Whether `code` could be a short code (exactly as issued; case matters).
pub fn is_short_code(code: &str) -> bool {
    code.len() == SHORT_CODE_LENGTH && code.bytes().all(|b| b.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_use_their_alphabets_and_lengths() {
        let code = person_code("REF");
        assert_eq!(code.len(), 3 + kernel::ids::PERSON_CODE_LENGTH);
        assert!(
            code[3..]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() && !b"01IO".contains(&b))
        );
        assert_eq!(normalize(&code.to_lowercase()), Some(code));
        let short = short_code();
        assert!(is_short_code(&short));
        assert!(!is_short_code("abc"));
        assert_eq!(normalize(" x "), None);
        assert_eq!(normalize("ab-c"), None);
    }

    #[test]
    fn draws_differ() {
        let drawn: std::collections::BTreeSet<String> = (0..1000).map(|_| short_code()).collect();
        assert_eq!(drawn.len(), 1000);
    }
}
