//! The rules of material promotion, without I/O: weighted sampling, promotion status over time,
//! when a budget is exhausted, and signed decision ids derived from the request that asked.
//! (Material types and synonyms are in `taxonomy`.)

use crate::settings::PromotionSettings;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use rand::Rng;
use rand::SeedableRng;
use rand::rngs::StdRng;
use sha2::{Digest, Sha256};
use uuid::Uuid;

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

/// The least a promotion's budget must hold to be selected: one charge of the larger kind (and at
/// least one credit). The one exhaustion rule: selection skips a promotion below it, and every
/// charge that leaves a budget below it completes the promotion and refunds the rest.
pub fn charge_threshold(settings: &PromotionSettings) -> i64 {
    settings
        .cost_per_use
        .max(settings.cost_per_impression)
        .max(1)
}

/// Whether a budget holding `remaining` credits can no longer pay for a selection.
pub fn is_exhausted(remaining: i64, settings: &PromotionSettings) -> bool {
    remaining < charge_threshold(settings)
}

/// What a decision id carries. It is signed so the generator can neither forge nor alter it, and
/// derived from the request, so a retried selection carries the same decision ids.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub material_id: Uuid,
    /// Nil for a non-promoted pick.
    pub promotion_id: Uuid,
}

const DECISION_BYTES: usize = 16 * 4;
const TAG_BYTES: usize = 16;

/// Signs and checks decision ids with a server key (HMAC-SHA256 truncated to 128 bits, checked in
/// constant time), and derives a selection's randomness and decision ids from the request, so every
/// replica sharing the key answers a retried request the same way without a database.
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

    fn digest(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = self.mac();
        for part in parts {
            mac.update(&(part.len() as u64).to_le_bytes());
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }

    fn tag(&self, payload: &[u8]) -> [u8; TAG_BYTES] {
        let mut mac = self.mac();
        mac.update(payload);
        let full = mac.finalize().into_bytes();
        let mut tag = [0u8; TAG_BYTES];
        tag.copy_from_slice(&full[..TAG_BYTES]);
        tag
    }

    /// The random number generator of one selection request: the same for every attempt of the
    /// request, unpredictable to anyone without the key. `seed` (tests only) varies it further.
    pub fn selection_rng(&self, workspace_id: Uuid, request_id: Uuid, seed: Option<u64>) -> StdRng {
        let seed = seed.unwrap_or_default().to_le_bytes();
        StdRng::from_seed(self.digest(&[
            b"selection",
            workspace_id.as_bytes(),
            request_id.as_bytes(),
            &seed,
        ]))
    }

    /// The id of the `index`-th decision of a selection request.
    pub fn decision_id(&self, workspace_id: Uuid, request_id: Uuid, index: usize) -> Uuid {
        let digest = self.digest(&[
            b"decision",
            workspace_id.as_bytes(),
            request_id.as_bytes(),
            &(index as u64).to_le_bytes(),
        ]);
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        uuid::Builder::from_custom_bytes(bytes).into_uuid()
    }

    pub fn encode(&self, decision: &Decision) -> String {
        let mut bytes = Vec::with_capacity(DECISION_BYTES + TAG_BYTES);
        bytes.extend_from_slice(decision.id.as_bytes());
        bytes.extend_from_slice(decision.workspace_id.as_bytes());
        bytes.extend_from_slice(decision.material_id.as_bytes());
        bytes.extend_from_slice(decision.promotion_id.as_bytes());
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
        Some(Decision {
            id: uuid_at(0)?,
            workspace_id: uuid_at(16)?,
            material_id: uuid_at(32)?,
            promotion_id: uuid_at(48)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

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

    #[test]
    fn a_requests_randomness_and_decision_ids_are_its_own_and_repeat() {
        let signer = DecisionSigner::new(b"secret");
        let (workspace, request) = (Uuid::new_v4(), Uuid::new_v4());
        let draw = |signer: &DecisionSigner, request| {
            let mut rng = signer.selection_rng(workspace, request, None);
            (0..8).map(|_| rng.random::<u64>()).collect::<Vec<_>>()
        };
        assert_eq!(draw(&signer, request), draw(&signer, request));
        assert_ne!(draw(&signer, request), draw(&signer, Uuid::new_v4()));
        assert_ne!(
            draw(&signer, request),
            draw(&DecisionSigner::new(b"other"), request),
            "another key draws otherwise"
        );
        assert_eq!(
            signer.decision_id(workspace, request, 0),
            signer.decision_id(workspace, request, 0)
        );
        assert_ne!(
            signer.decision_id(workspace, request, 0),
            signer.decision_id(workspace, request, 1)
        );
    }

    #[test]
    fn one_threshold_decides_exhaustion() {
        let mut settings = PromotionSettings {
            cost_per_use: 1,
            cost_per_impression: 0,
            ..PromotionSettings::default()
        };
        assert_eq!(charge_threshold(&settings), 1);
        assert!(is_exhausted(0, &settings));
        assert!(!is_exhausted(1, &settings));
        settings.cost_per_impression = 3;
        assert!(is_exhausted(2, &settings), "cannot pay one impression");
        settings.cost_per_use = 0;
        settings.cost_per_impression = 0;
        assert!(is_exhausted(0, &settings) && !is_exhausted(1, &settings));
    }
}
