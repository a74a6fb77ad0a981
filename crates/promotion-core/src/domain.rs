//! The rules of material promotion, without I/O: material types and their synonyms, finding types
//! in a prompt, weighted sampling, promotion status over time, and signed decision ids.

use std::collections::BTreeSet;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Words (and two-word phrases) that name a material type, mapped to the canonical type.
const SYNONYMS: &[(&str, &str)] = &[
    ("walnut", "wood"),
    ("oak", "wood"),
    ("maple", "wood"),
    ("pine", "wood"),
    ("teak", "wood"),
    ("birch", "wood"),
    ("timber", "wood"),
    ("wooden", "wood"),
    ("plywood", "wood"),
    ("bamboo", "wood"),
    ("steel", "metal"),
    ("brushed steel", "metal"),
    ("stainless steel", "metal"),
    ("iron", "metal"),
    ("aluminium", "metal"),
    ("aluminum", "metal"),
    ("brass", "metal"),
    ("copper", "metal"),
    ("chrome", "metal"),
    ("metallic", "metal"),
    ("marble", "stone"),
    ("granite", "stone"),
    ("slate", "stone"),
    ("concrete", "stone"),
    ("cotton", "fabric"),
    ("linen", "fabric"),
    ("velvet", "fabric"),
    ("wool", "fabric"),
    ("textile", "fabric"),
    ("cloth", "fabric"),
    ("suede", "leather"),
    ("hide", "leather"),
    ("acrylic", "plastic"),
    ("vinyl", "plastic"),
    ("nylon", "plastic"),
    ("polymer", "plastic"),
    ("porcelain", "ceramic"),
    ("clay", "ceramic"),
    ("terracotta", "ceramic"),
    ("tile", "ceramic"),
    ("glazing", "glass"),
    ("crystal", "glass"),
    ("mirror", "glass"),
    ("rubberized", "rubber"),
    ("latex", "rubber"),
];

/// Longest material type name, in characters.
pub const MAX_TYPE_CHARS: usize = 64;

/// Lower case, ASCII letters, digits and single spaces ('-' and '_' count as spaces), then a
/// synonym is replaced by its canonical type. `None` when nothing valid remains.
pub fn normalize_type(raw: &str) -> Option<String> {
    let mut words = Vec::new();
    for word in raw.split(|c: char| c.is_whitespace() || c == '-' || c == '_') {
        if word.is_empty() {
            continue;
        }
        if !word.chars().all(|c| c.is_ascii_alphanumeric()) {
            return None;
        }
        words.push(word.to_ascii_lowercase());
    }
    let joined = words.join(" ");
    if joined.is_empty() || joined.len() > MAX_TYPE_CHARS {
        return None;
    }
    Some(canonical(&joined).unwrap_or(&joined).to_owned())
}

fn canonical(phrase: &str) -> Option<&'static str> {
    SYNONYMS
        .iter()
        .find(|(word, _)| *word == phrase)
        .map(|(_, canonical)| *canonical)
}

/// The known material types a prompt names, in order of first mention, without repeats. Two-word
/// phrases win over their words ("stainless steel"), and synonyms map to their type ("walnut" →
/// "wood"); only types in `known` are returned.
pub fn types_in_prompt(prompt: &str, known: &BTreeSet<String>) -> Vec<String> {
    let words: Vec<String> = prompt
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(|word| word.to_ascii_lowercase())
        .collect();
    let mut found: Vec<String> = Vec::new();
    let mut index = 0;
    while index < words.len() {
        let pair = words
            .get(index + 1)
            .map(|next| format!("{} {next}", words[index]));
        let (matched, width) = match pair.as_deref().and_then(|pair| resolve(pair, known)) {
            Some(found) => (Some(found), 2),
            None => (resolve(&words[index], known), 1),
        };
        if let Some(material_type) = matched {
            if !found.contains(&material_type) {
                found.push(material_type);
            }
            index += width;
        } else {
            index += 1;
        }
    }
    found
}

fn resolve(phrase: &str, known: &BTreeSet<String>) -> Option<String> {
    let candidate = canonical(phrase).unwrap_or(phrase);
    if known.contains(candidate) {
        return Some(candidate.to_owned());
    }
    // A plural of a known type ("tiles", "glasses" are rare, "metals", "woods" are not).
    phrase.strip_suffix('s').and_then(|singular| {
        let candidate = canonical(singular).unwrap_or(singular);
        known.contains(candidate).then(|| candidate.to_owned())
    })
}

/// Picks items with probability proportional to integer weights: prefix sums and a binary search.
#[derive(Clone, Debug)]
pub struct WeightedSampler<T> {
    items: Vec<T>,
    /// `prefix[i]` = sum of the weights of items `0..=i`.
    prefix: Vec<u64>,
}

impl<T> WeightedSampler<T> {
    /// Items with weight 0 can never be picked and are left out.
    pub fn new(weighted: impl IntoIterator<Item = (T, u64)>) -> WeightedSampler<T> {
        let mut items = Vec::new();
        let mut prefix = Vec::new();
        let mut total: u64 = 0;
        for (item, weight) in weighted {
            if weight == 0 {
                continue;
            }
            total = total.saturating_add(weight);
            items.push(item);
            prefix.push(total);
        }
        WeightedSampler { items, prefix }
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn pick<R: Rng + ?Sized>(&self, rng: &mut R) -> Option<&T> {
        let total = *self.prefix.last()?;
        let ticket = rng.random_range(0..total);
        let index = self.prefix.partition_point(|&sum| sum <= ticket);
        self.items.get(index)
    }
}

/// True with probability `numerator / denominator`, exactly.
pub fn draw<R: Rng + ?Sized>(rng: &mut R, numerator: i64, denominator: i64) -> bool {
    if denominator <= 0 || numerator <= 0 {
        return false;
    }
    if numerator >= denominator {
        return true;
    }
    rng.random_range(0..denominator as u64) < numerator as u64
}

/// A promotion's lifecycle as stored; `Pending` and `Active` also depend on the clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum Status {
    Pending = 1,
    Active = 2,
    Inactive = 3,
    Completed = 4,
}

impl Status {
    pub fn from_i32(value: i32) -> Option<Status> {
        match value {
            1 => Some(Status::Pending),
            2 => Some(Status::Active),
            3 => Some(Status::Inactive),
            4 => Some(Status::Completed),
            _ => None,
        }
    }
}

/// The status at `now`: scheduled promotions start at `start`, and every running one ends at `end`.
pub fn effective_status(stored: Status, start: Option<i64>, end: Option<i64>, now: i64) -> Status {
    match stored {
        Status::Completed => Status::Completed,
        _ if end.is_some_and(|end| now >= end) => Status::Completed,
        Status::Inactive => Status::Inactive,
        Status::Pending | Status::Active if start.is_some_and(|start| now < start) => {
            Status::Pending
        }
        Status::Pending | Status::Active => Status::Active,
    }
}

/// What a decision id carries. It is signed so the generator can neither forge nor alter it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub material_id: Uuid,
    /// Nil for a non-promoted pick.
    pub promotion_id: Uuid,
    /// Microseconds since the epoch.
    pub issued_at: i64,
}

const DECISION_BYTES: usize = 16 * 4 + 8;
const TAG_BYTES: usize = 16;

/// Signs and checks decision ids with a server key (HMAC-SHA256 truncated to 128 bits, checked in
/// constant time).
#[derive(Clone)]
pub struct DecisionSigner {
    key: [u8; 32],
}

impl DecisionSigner {
    pub fn new(secret: &[u8]) -> DecisionSigner {
        let mut hasher = Sha256::new();
        hasher.update(b"promo decision key\0");
        hasher.update(secret);
        DecisionSigner {
            key: hasher.finalize().into(),
        }
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC accepts keys of any length; a 32-byte key cannot fail.
        <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("hmac takes any key length"))
    }

    fn tag(&self, payload: &[u8]) -> [u8; TAG_BYTES] {
        let mut mac = self.mac();
        mac.update(payload);
        let full = mac.finalize().into_bytes();
        let mut tag = [0u8; TAG_BYTES];
        tag.copy_from_slice(&full[..TAG_BYTES]);
        tag
    }

    pub fn encode(&self, decision: &Decision) -> String {
        let mut bytes = Vec::with_capacity(DECISION_BYTES + TAG_BYTES);
        bytes.extend_from_slice(decision.id.as_bytes());
        bytes.extend_from_slice(decision.workspace_id.as_bytes());
        bytes.extend_from_slice(decision.material_id.as_bytes());
        bytes.extend_from_slice(decision.promotion_id.as_bytes());
        bytes.extend_from_slice(&decision.issued_at.to_be_bytes());
        let tag = self.tag(&bytes);
        bytes.extend_from_slice(&tag);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// The decision, if `text` is exactly what [`DecisionSigner::encode`] produced with this key.
    pub fn decode(&self, text: &str) -> Option<Decision> {
        let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
        if bytes.len() != DECISION_BYTES + TAG_BYTES {
            return None;
        }
        let (payload, tag) = bytes.split_at(DECISION_BYTES);
        let mut mac = self.mac();
        mac.update(payload);
        mac.verify_truncated_left(tag).ok()?;
        let uuid_at = |offset: usize| Uuid::from_slice(&payload[offset..offset + 16]).ok();
        let mut issued = [0u8; 8];
        issued.copy_from_slice(&payload[64..72]);
        Some(Decision {
            id: uuid_at(0)?,
            workspace_id: uuid_at(16)?,
            material_id: uuid_at(32)?,
            promotion_id: uuid_at(48)?,
            issued_at: i64::from_be_bytes(issued),
        })
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    #[test]
    fn types_normalise_case_spacing_and_synonyms() {
        assert_eq!(
            normalize_type("  Brushed   STEEL ").as_deref(),
            Some("metal")
        );
        assert_eq!(normalize_type("Walnut").as_deref(), Some("wood"));
        assert_eq!(
            normalize_type("carbon-fibre").as_deref(),
            Some("carbon fibre")
        );
        assert_eq!(normalize_type("   "), None);
        assert_eq!(normalize_type("wood; DROP TABLE"), None);
        assert_eq!(normalize_type(&"a".repeat(65)), None);
    }

    #[test]
    fn a_prompt_yields_the_known_types_it_names_in_order() {
        let known: BTreeSet<String> = ["wood", "metal", "glass", "fabric"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            types_in_prompt("a walnut desk with brushed steel legs", &known),
            ["wood", "metal"]
        );
        assert_eq!(
            types_in_prompt("Glass table, OAK frame, more glass", &known),
            ["glass", "wood"]
        );
        assert_eq!(
            types_in_prompt("stone bench with metals", &known),
            ["metal"]
        );
        assert!(types_in_prompt("a cat", &known).is_empty());
    }

    #[test]
    fn the_sampler_never_picks_zero_weights_and_covers_every_item() {
        let sampler = WeightedSampler::new([("a", 0), ("b", 1), ("c", 3)]);
        assert_eq!(sampler.len(), 2);
        let mut rng = StdRng::seed_from_u64(7);
        let mut counts = [0usize; 2];
        for _ in 0..4000 {
            match sampler.pick(&mut rng) {
                Some(&"b") => counts[0] += 1,
                Some(&"c") => counts[1] += 1,
                other => panic!("picked {other:?}"),
            }
        }
        assert!(counts[0] > 800 && counts[1] > 2700, "{counts:?}");
        assert!(WeightedSampler::<u8>::new([]).pick(&mut rng).is_none());
    }

    #[test]
    fn status_follows_the_schedule() {
        assert_eq!(
            effective_status(Status::Active, Some(10), Some(20), 5),
            Status::Pending
        );
        assert_eq!(
            effective_status(Status::Pending, Some(10), Some(20), 10),
            Status::Active
        );
        assert_eq!(
            effective_status(Status::Active, Some(10), Some(20), 20),
            Status::Completed
        );
        assert_eq!(
            effective_status(Status::Inactive, None, Some(20), 15),
            Status::Inactive
        );
        assert_eq!(
            effective_status(Status::Inactive, None, Some(20), 25),
            Status::Completed
        );
        assert_eq!(
            effective_status(Status::Completed, None, None, 0),
            Status::Completed
        );
    }

    #[test]
    fn decision_ids_round_trip_and_refuse_tampering_or_another_key() {
        let signer = DecisionSigner::new(b"secret");
        let decision = Decision {
            id: Uuid::new_v4(),
            workspace_id: Uuid::new_v4(),
            material_id: Uuid::new_v4(),
            promotion_id: Uuid::nil(),
            issued_at: 1_700_000_000_000_000,
        };
        let text = signer.encode(&decision);
        assert_eq!(signer.decode(&text), Some(decision.clone()));
        let mut bytes = URL_SAFE_NO_PAD.decode(&text).expect("base64");
        bytes[60] ^= 1;
        assert_eq!(
            signer.decode(&URL_SAFE_NO_PAD.encode(&bytes)),
            None,
            "altered"
        );
        assert_eq!(
            DecisionSigner::new(b"other").decode(&text),
            None,
            "forged with another key"
        );
        assert_eq!(signer.decode("garbage"), None);
    }
}
