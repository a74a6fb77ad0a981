//! The materials taxonomy of a workspace, without I/O: its material types, the synonyms that name
//! them, how a phrase is normalised, and which types a prompt mentions.
//!
//! A workspace starts with [`Taxonomy::defaults`] and admins change it through MaterialService.
//! Resolution prefers types over synonyms, so a type that exists is never renamed into another:
//! in a workspace with a `steel` type, "steel" means steel even though the defaults list it as a
//! synonym of `metal`. Matching is Unicode-aware: text is NFKC-normalised and lower-cased, and
//! words are runs of letters and digits in any script.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use unicode_normalization::UnicodeNormalization;

/// Longest material type (or synonym), in characters.
pub const MAX_TYPE_CHARS: usize = 64;
/// Most synonyms one type may have.
pub const MAX_SYNONYMS: usize = 100;

/// The taxonomy every workspace starts with: type → synonyms.
const DEFAULTS: &[(&str, &[&str])] = &[
    (
        "wood",
        &[
            "walnut", "oak", "maple", "pine", "teak", "birch", "timber", "wooden", "plywood",
            "bamboo",
        ],
    ),
    (
        "metal",
        &[
            "steel",
            "brushed steel",
            "stainless steel",
            "iron",
            "aluminium",
            "aluminum",
            "brass",
            "copper",
            "chrome",
            "metallic",
        ],
    ),
    ("stone", &["marble", "granite", "slate", "concrete"]),
    (
        "fabric",
        &["cotton", "linen", "velvet", "wool", "textile", "cloth"],
    ),
    ("leather", &["suede", "hide"]),
    ("plastic", &["acrylic", "vinyl", "nylon", "polymer"]),
    ("ceramic", &["porcelain", "clay", "terracotta", "tile"]),
    ("glass", &["glazing", "crystal", "mirror"]),
    ("rubber", &["rubberized", "latex"]),
];

/// Lower-cased, NFKC-normalised words of letters and digits (any script) joined by single spaces;
/// whitespace, `-` and `_` separate words. `None` when the text holds anything else (punctuation,
/// symbols), nothing at all, or more than [`MAX_TYPE_CHARS`] characters.
pub fn normalize_phrase(raw: &str) -> Option<String> {
    let text: String = raw.nfkc().flat_map(char::to_lowercase).collect();
    let mut words = Vec::new();
    for word in text.split(|c: char| c.is_whitespace() || c == '-' || c == '_') {
        if word.is_empty() {
            continue;
        }
        if !word.chars().all(char::is_alphanumeric) {
            return None;
        }
        words.push(word);
    }
    let joined = words.join(" ");
    (!joined.is_empty() && joined.chars().count() <= MAX_TYPE_CHARS).then_some(joined)
}

/// A workspace's material types and their synonyms.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Taxonomy {
    /// Every type with its synonyms (normalised, sorted).
    types: BTreeMap<String, Vec<String>>,
    /// Every synonym with the type it names.
    synonyms: HashMap<String, String>,
}

impl Taxonomy {
    /// The taxonomy a workspace starts with.
    pub fn defaults() -> Taxonomy {
        Taxonomy::from_types(DEFAULTS.iter().map(|(name, synonyms)| {
            (
                (*name).to_owned(),
                synonyms.iter().map(|s| (*s).to_owned()).collect(),
            )
        }))
    }

    /// Builds a taxonomy from `(type, synonyms)` rows, already normalised.
    pub fn from_types(rows: impl IntoIterator<Item = (String, Vec<String>)>) -> Taxonomy {
        let mut taxonomy = Taxonomy::default();
        for (name, mut synonyms) in rows {
            synonyms.sort();
            synonyms.dedup();
            for synonym in &synonyms {
                taxonomy.synonyms.insert(synonym.clone(), name.clone());
            }
            taxonomy.types.insert(name, synonyms);
        }
        taxonomy
    }

    /// Every type with its synonyms, by name.
    pub fn types(&self) -> &BTreeMap<String, Vec<String>> {
        &self.types
    }

    pub fn has_type(&self, name: &str) -> bool {
        self.types.contains_key(name)
    }

    /// The type a synonym names, if `phrase` is a synonym.
    pub fn type_of_synonym(&self, phrase: &str) -> Option<&str> {
        self.synonyms.get(phrase).map(String::as_str)
    }

    /// The type a normalised phrase names: itself when it is a type, else the type it is a
    /// synonym of; `None` when it is neither.
    pub fn resolve<'a>(&'a self, phrase: &'a str) -> Option<&'a str> {
        if self.types.contains_key(phrase) {
            return Some(phrase);
        }
        self.type_of_synonym(phrase)
    }

    /// The type a material named with `phrase` belongs to: [`Taxonomy::resolve`], or the phrase
    /// itself as a new type.
    pub fn canonical(&self, phrase: &str) -> String {
        self.resolve(phrase).unwrap_or(phrase).to_owned()
    }

    /// The types of `known` that a prompt names, in order of first mention, without repeats.
    /// Two-word phrases win over their words ("stainless steel"), synonyms map to their type, and
    /// a plural ending in "s" of a known word counts.
    pub fn types_in_prompt(&self, prompt: &str, known: &BTreeSet<String>) -> Vec<String> {
        let text: String = prompt.nfkc().flat_map(char::to_lowercase).collect();
        let words: Vec<&str> = text
            .split(|c: char| !c.is_alphanumeric())
            .filter(|word| !word.is_empty())
            .collect();
        let mut found: Vec<String> = Vec::new();
        let mut index = 0;
        while index < words.len() {
            let pair = words
                .get(index + 1)
                .map(|next| format!("{} {next}", words[index]));
            let (matched, width) = match pair.as_deref().and_then(|pair| self.lookup(pair, known)) {
                Some(found) => (Some(found), 2),
                None => (self.lookup(words[index], known), 1),
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

    fn lookup(&self, phrase: &str, known: &BTreeSet<String>) -> Option<String> {
        let direct = self.resolve(phrase).unwrap_or(phrase);
        if known.contains(direct) {
            return Some(direct.to_owned());
        }
        let singular = phrase.strip_suffix('s')?;
        let candidate = self.resolve(singular).unwrap_or(singular);
        known.contains(candidate).then(|| candidate.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(types: &[&str]) -> BTreeSet<String> {
        types.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn phrases_normalise_case_spacing_and_unicode() {
        assert_eq!(
            normalize_phrase("  Brushed   STEEL ").as_deref(),
            Some("brushed steel")
        );
        assert_eq!(
            normalize_phrase("carbon-fibre").as_deref(),
            Some("carbon fibre")
        );
        assert_eq!(normalize_phrase("ÉRABLE").as_deref(), Some("érable"));
        assert_eq!(
            normalize_phrase("ｓｔｅｅｌ").as_deref(),
            Some("steel"),
            "full-width letters fold"
        );
        assert_eq!(normalize_phrase("木材").as_deref(), Some("木材"));
        assert_eq!(normalize_phrase("   "), None);
        assert_eq!(normalize_phrase("wood; DROP TABLE"), None);
        assert_eq!(normalize_phrase(&"a".repeat(65)), None);
    }

    #[test]
    fn the_defaults_map_synonyms_to_their_type() {
        let taxonomy = Taxonomy::defaults();
        assert_eq!(taxonomy.canonical("walnut"), "wood");
        assert_eq!(taxonomy.canonical("brushed steel"), "metal");
        assert_eq!(taxonomy.canonical("carbon fibre"), "carbon fibre");
        assert_eq!(
            taxonomy.types_in_prompt(
                "a walnut desk with brushed steel legs",
                &known(&["wood", "metal"])
            ),
            ["wood", "metal"]
        );
        assert_eq!(
            taxonomy.types_in_prompt(
                "Glass table, OAK frame, more glass",
                &known(&["wood", "glass"])
            ),
            ["glass", "wood"]
        );
        assert_eq!(
            taxonomy.types_in_prompt("stone bench with metals", &known(&["metal"])),
            ["metal"]
        );
        assert!(
            taxonomy
                .types_in_prompt("a cat", &known(&["wood"]))
                .is_empty()
        );
    }

    #[test]
    fn a_type_that_exists_is_never_renamed_into_another() {
        let mut rows: Vec<(String, Vec<String>)> = Taxonomy::defaults()
            .types()
            .iter()
            .map(|(name, synonyms)| (name.clone(), synonyms.clone()))
            .collect();
        rows.push(("steel".to_owned(), Vec::new()));
        let taxonomy = Taxonomy::from_types(rows);
        assert_eq!(taxonomy.canonical("steel"), "steel");
        assert_eq!(
            taxonomy.types_in_prompt("a steel chair", &known(&["steel", "metal"])),
            ["steel"]
        );
        assert_eq!(taxonomy.canonical("iron"), "metal");
    }

    #[test]
    fn prompts_in_other_scripts_and_cases_match() {
        let taxonomy = Taxonomy::from_types([
            (
                "madera".to_owned(),
                vec!["roble".to_owned(), "érable".to_owned()],
            ),
            ("木材".to_owned(), Vec::new()),
        ]);
        let known = known(&["madera", "木材"]);
        assert_eq!(
            taxonomy.types_in_prompt("UNA MESA DE ROBLE", &known),
            ["madera"]
        );
        assert_eq!(
            taxonomy.types_in_prompt("un bureau en ÉRABLE", &known),
            ["madera"]
        );
        assert_eq!(
            taxonomy.types_in_prompt("E\u{301}RABLE", &known),
            ["madera"],
            "a decomposed accent matches the composed synonym"
        );
        assert_eq!(taxonomy.types_in_prompt("木材 の 机", &known), ["木材"]);
    }
}
