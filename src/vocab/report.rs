//! What a matching did, for people: counts per kind, the tokenizer families and the first
//! examples of each kind (in `inspect` and `clp_transfer.json`).

use super::matching::{MatchMode, Matching};
use super::read::Vocab;
use super::roles::SpecialRole;
use crate::tokenizer::TokenFamily;
use std::collections::HashSet;

/// How many target tokens got their row which way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct MatchCounts {
    /// The rule used.
    pub mode: MatchMode,
    /// Target ids (largest id + 1).
    pub target_tokens: usize,
    /// Copied: the same string is in the source.
    pub exact: usize,
    /// Copied: only the canonical form is in the source.
    pub canonical: usize,
    /// Missing special tokens given the source row of the same role.
    pub special_by_role: usize,
    /// Computed from the overlap.
    pub missing: usize,
    /// Source tokens that lost a canonical form to another source token.
    pub source_collisions: usize,
}

/// A target token and the source token whose row it takes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PairExample {
    /// Target id.
    pub target_id: u32,
    /// Target token string.
    pub target_token: Option<String>,
    /// Source id.
    pub source_id: u32,
    /// Source token string.
    pub source_token: Option<String>,
    /// The shared canonical form as text (canonical matches; a leading space is a word start).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub canonical: Option<String>,
    /// The shared role (special-by-role matches).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<SpecialRole>,
}

/// A target token without a source row.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MissingExample {
    /// Target id.
    pub target_id: u32,
    /// Target token string.
    pub target_token: Option<String>,
}

/// The first examples of each kind, by target id.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct MatchExamples {
    /// Exact matches.
    pub exact: Vec<PairExample>,
    /// Canonical-only matches.
    pub canonical: Vec<PairExample>,
    /// Special tokens by role.
    pub special_by_role: Vec<PairExample>,
    /// Missing tokens.
    pub missing: Vec<MissingExample>,
}

/// Counts, families and examples of a matching (in `inspect` and `clp_transfer.json`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MatchReport {
    /// The source tokenizer's family.
    pub source_family: TokenFamily,
    /// The target tokenizer's family.
    pub target_family: TokenFamily,
    /// How many of each kind.
    pub counts: MatchCounts,
    /// The first examples of each kind.
    pub examples: MatchExamples,
    /// Why the matching is not the one asked for, if it is not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notice: Option<String>,
}

impl Matching {
    /// How many target tokens got their row which way.
    pub fn counts(&self) -> MatchCounts {
        MatchCounts {
            mode: self.mode,
            target_tokens: self.overlap.len() + self.by_role.len() + self.missing.len(),
            exact: self.overlap.len() - self.canonical.len(),
            canonical: self.canonical.len(),
            special_by_role: self.by_role.len(),
            missing: self.missing.len(),
            source_collisions: self.source_collisions,
        }
    }

    /// Counts plus the first `examples` of each kind (by target id), with token strings.
    pub fn report(&self, source: &Vocab, target: &Vocab, examples: usize) -> MatchReport {
        let owned = |t: Option<&str>| t.map(str::to_owned);
        let pair = |t: u32, s: u32| PairExample {
            target_id: t,
            target_token: owned(target.token(t)),
            source_id: s,
            source_token: owned(source.token(s)),
            canonical: None,
            role: None,
        };
        let canonical: HashSet<u32> = self.canonical.iter().copied().collect();
        let (by_form, exact): (Vec<_>, Vec<_>) = self
            .overlap
            .iter()
            .copied()
            .partition(|p| canonical.contains(&p.0));
        MatchReport {
            source_family: source.family.clone(),
            target_family: target.family.clone(),
            counts: self.counts(),
            examples: MatchExamples {
                exact: exact
                    .iter()
                    .take(examples)
                    .map(|&(t, s)| pair(t, s))
                    .collect(),
                canonical: by_form
                    .iter()
                    .take(examples)
                    .map(|&(t, s)| PairExample {
                        canonical: target.canonical(t).map(|f| f.text()),
                        ..pair(t, s)
                    })
                    .collect(),
                special_by_role: self
                    .by_role
                    .iter()
                    .take(examples)
                    .map(|r| PairExample {
                        role: Some(r.role),
                        ..pair(r.target_id, r.source_id)
                    })
                    .collect(),
                missing: self
                    .missing
                    .iter()
                    .take(examples)
                    .map(|&t| MissingExample {
                        target_id: t,
                        target_token: owned(target.token(t)),
                    })
                    .collect(),
            },
            notice: self.notice.clone(),
        }
    }
}
