//! Coupon codes: how they are written, compared and generated.
//!
//! A code is compared case-insensitively: it is stored and looked up in its normal form (trimmed,
//! ASCII upper case). Generated codes follow a pattern — `#` a digit, `?` a letter, `*` a letter or
//! a digit, anything else literal (`SUMMER-####-??`) — after an optional prefix, drawing every
//! random position from a CSPRNG. By default the alphabets leave out characters people misread:
//! `0 1 I L O` (so `#` is one of 8 digits, `?` one of 23 letters, `*` one of 31).

use std::collections::HashSet;

use rand::Rng;

/// Longest code, prefix included.
pub const MAX_CODE_CHARS: usize = 64;
/// A batch may use at most this share of its pattern's space (1 / 4), so that drawing unique codes
/// stays fast and a guessed code is rarely valid.
pub const CAPACITY_FACTOR: u128 = 4;

const DIGITS: &[u8] = b"23456789";
const LETTERS: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ";
const EITHER: &[u8] = b"23456789ABCDEFGHJKMNPQRSTUVWXYZ";
const ALL_DIGITS: &[u8] = b"0123456789";
const ALL_LETTERS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const ALL_EITHER: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// The normal form of a code a person typed; `None` when it cannot be a code (empty, too long,
/// or anything but letters, digits, `-` and `_`).
pub fn normalize(code: &str) -> Option<String> {
    let code = code.trim().to_ascii_uppercase();
    let valid = !code.is_empty()
        && code.len() <= MAX_CODE_CHARS
        && code
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    valid.then_some(code)
}

/// A checked pattern with its prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern {
    prefix: String,
    pattern: Vec<u8>,
    unambiguous: bool,
}

impl Pattern {
    /// Checks a pattern and prefix: the whole code fits [`MAX_CODE_CHARS`], literals are code
    /// characters, and at least one position is random. `Err` says what is wrong.
    pub fn new(prefix: &str, pattern: &str, unambiguous: bool) -> Result<Pattern, String> {
        let prefix = prefix.trim().to_ascii_uppercase();
        let pattern = pattern.trim().to_ascii_uppercase();
        if prefix.len() + pattern.len() > MAX_CODE_CHARS {
            return Err(format!(
                "prefix and pattern together must be at most {MAX_CODE_CHARS} characters"
            ));
        }
        let literal_ok =
            |b: u8| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-' || b == b'_';
        if !prefix.bytes().all(literal_ok) {
            return Err("the prefix may hold letters, digits, '-' and '_' only".to_owned());
        }
        if !pattern
            .bytes()
            .all(|b| matches!(b, b'#' | b'?' | b'*') || literal_ok(b))
        {
            return Err(
                "the pattern may hold '#', '?', '*', letters, digits, '-' and '_' only".to_owned(),
            );
        }
        if !pattern.bytes().any(|b| matches!(b, b'#' | b'?' | b'*')) {
            return Err(
                "the pattern has no random position: use # (digit), ? (letter) or * (either)"
                    .to_owned(),
            );
        }
        Ok(Pattern {
            prefix,
            pattern: pattern.into_bytes(),
            unambiguous,
        })
    }

    fn alphabet(&self, position: u8) -> Option<&'static [u8]> {
        match (position, self.unambiguous) {
            (b'#', true) => Some(DIGITS),
            (b'?', true) => Some(LETTERS),
            (b'*', true) => Some(EITHER),
            (b'#', false) => Some(ALL_DIGITS),
            (b'?', false) => Some(ALL_LETTERS),
            (b'*', false) => Some(ALL_EITHER),
            _ => None,
        }
    }

    /// How many different codes the pattern can make (saturating at `u128::MAX`).
    pub fn space(&self) -> u128 {
        self.pattern
            .iter()
            .filter_map(|&b| self.alphabet(b))
            .fold(1u128, |space, alphabet| {
                space.saturating_mul(alphabet.len() as u128)
            })
    }

    /// `Err` when `count` codes would use more than 1 / [`CAPACITY_FACTOR`] of the space.
    pub fn check_capacity(&self, count: u64) -> Result<(), String> {
        if u128::from(count).saturating_mul(CAPACITY_FACTOR) > self.space() {
            return Err(format!(
                "the pattern makes {} codes; {count} may use at most a quarter of them: add random positions",
                self.space()
            ));
        }
        Ok(())
    }

    /// One code, every random position drawn from `rng` (give it a CSPRNG: `rand::rng()`).
    pub fn generate<R: Rng + rand::CryptoRng>(&self, rng: &mut R) -> String {
        let mut code = String::with_capacity(self.prefix.len() + self.pattern.len());
        code.push_str(&self.prefix);
        for &position in &self.pattern {
            match self.alphabet(position) {
                Some(alphabet) => code.push(alphabet[rng.random_range(0..alphabet.len())] as char),
                None => code.push(position as char),
            }
        }
        code
    }

    /// `count` codes, all different from each other and from every code `taken` reports as
    /// existing; `Err` when the pattern is too small for the count.
    pub fn generate_unique<R: Rng + rand::CryptoRng>(
        &self,
        rng: &mut R,
        count: usize,
        taken: impl Fn(&str) -> bool,
    ) -> Result<Vec<String>, String> {
        self.check_capacity(count as u64)?;
        let mut seen = HashSet::with_capacity(count);
        let mut codes = Vec::with_capacity(count);
        while codes.len() < count {
            let code = self.generate(rng);
            if !taken(&code) && seen.insert(code.clone()) {
                codes.push(code);
            }
        }
        Ok(codes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_compare_case_insensitively_and_refuse_junk() {
        assert_eq!(normalize("  summer-10 ").as_deref(), Some("SUMMER-10"));
        assert_eq!(normalize("Summer-10"), normalize("SUMMER-10"));
        for junk in ["", "   ", "a b", "ümlaut", "x;drop", &"A".repeat(65)] {
            assert_eq!(normalize(junk), None, "{junk:?}");
        }
    }

    #[test]
    fn patterns_need_a_random_position_and_room_for_the_count() {
        assert!(Pattern::new("", "SUMMER-2024", true).is_err());
        assert!(Pattern::new("", "AB%#", true).is_err());
        assert!(Pattern::new("X Y", "#", true).is_err());
        let pattern = Pattern::new("shop-", "##-??", true).expect("valid");
        assert_eq!(pattern.space(), 8 * 8 * 23 * 23);
        assert!(pattern.check_capacity(8 * 8 * 23 * 23 / 4).is_ok());
        assert!(pattern.check_capacity(8 * 8 * 23 * 23 / 4 + 1).is_err());
        let full = Pattern::new("", "#", false).expect("valid");
        assert_eq!(full.space(), 10);
    }

    #[test]
    fn generated_codes_follow_the_pattern_are_unique_and_avoid_ambiguous_characters() {
        let pattern = Pattern::new("vip-", "####-??**", true).expect("valid");
        let mut rng = rand::rng();
        let existing = "VIP-2345-ABCD";
        let codes = pattern
            .generate_unique(&mut rng, 50_000, |code| code == existing)
            .expect("room enough");
        assert_eq!(codes.len(), 50_000);
        assert_eq!(codes.iter().collect::<HashSet<_>>().len(), 50_000);
        for code in &codes {
            assert_ne!(code, existing);
            let bytes = code.as_bytes();
            assert_eq!(&bytes[..4], b"VIP-");
            assert!(bytes[4..8].iter().all(|b| DIGITS.contains(b)), "{code}");
            assert_eq!(bytes[8], b'-');
            assert!(bytes[9..11].iter().all(|b| LETTERS.contains(b)), "{code}");
            assert!(bytes[11..].iter().all(|b| EITHER.contains(b)), "{code}");
            assert!(!code[4..].contains(['0', '1', 'I', 'L', 'O']), "{code}");
            assert_eq!(normalize(code).as_deref(), Some(code.as_str()));
        }
        // Every character of an alphabet turns up (the draw is not stuck on a subset).
        let letters: HashSet<u8> = codes
            .iter()
            .flat_map(|c| c.as_bytes()[9..11].to_vec())
            .collect();
        assert_eq!(letters.len(), LETTERS.len());
        assert!(
            pattern
                .generate_unique(&mut rng, usize::MAX / 2, |_| false)
                .is_err(),
            "refused before any work"
        );
    }
}
