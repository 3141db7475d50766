//! Matching a target vocabulary against a source vocabulary: by exact token string, or by
//! canonical form with the source's preferred token of each form (see the module docs of
//! [`crate::vocab`]).

use super::canonical::CanonicalToken;
use super::read::Vocab;
use super::roles::SpecialRole;
use crate::error::Result;
use crate::tokenizer::bytes::parse_byte_token;
use crate::tokenizer::TokenFamily;
use std::collections::HashMap;

/// A target special token that takes the source row of the same role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct RoleMapping {
    /// The target id.
    pub target_id: u32,
    /// The source id whose row it takes.
    pub source_id: u32,
    /// The shared role.
    pub role: SpecialRole,
}

/// How target tokens are matched with source tokens (`--match`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchMode {
    /// Same token string (CLP-Transfer's rule; `--preset original`).
    Exact,
    /// Same canonical form (bytes + word start; see [`canonical`]), whatever the spelling: the
    /// product default.
    #[default]
    Canonical,
}

impl MatchMode {
    /// Name as on the command line.
    pub fn name(self) -> &'static str {
        match self {
            MatchMode::Exact => "exact",
            MatchMode::Canonical => "canonical",
        }
    }

    /// One-line description of the rule (for reports).
    pub fn rule(self) -> &'static str {
        match self {
            MatchMode::Exact => "exact token string; rows copied bit-exactly from the source",
            MatchMode::Canonical => {
                "the same canonical form (bytes + word start, whatever the spelling: byte-level BPE / SentencePiece / WordPiece), exact token string for tokens without one; rows copied bit-exactly from the source"
            }
        }
    }
}

impl std::fmt::Display for MatchMode {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for MatchMode {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "exact" => Ok(MatchMode::Exact),
            "canonical" => Ok(MatchMode::Canonical),
            _ => Err(format!("`{s}`: write exact or canonical")),
        }
    }
}

/// How every target id gets its row.
#[derive(Debug, Clone, Default)]
pub struct Matching {
    /// The rule used.
    pub mode: MatchMode,
    /// `(target id, source id)` of tokens in both vocabularies (by exact string or canonical
    /// form), ascending by target id.
    pub overlap: Vec<(u32, u32)>,
    /// The target ids of `overlap` matched by canonical form to a differently spelled source
    /// token, ascending.
    pub canonical: Vec<u32>,
    /// Missing special tokens mapped by role, ascending by target id.
    pub by_role: Vec<RoleMapping>,
    /// Target ids computed from the overlap, ascending.
    pub missing: Vec<u32>,
    /// Source tokens whose canonical form a preferred source token already has (canonical
    /// mode; they can never be matched canonically).
    pub source_collisions: usize,
    /// Why the matching is not the one asked for (canonical mode on a tokenizer family it
    /// does not know falls back to exact matching), for the user to see.
    pub notice: Option<String>,
}

/// Matches `target` against `source` by exact token string (see the module docs).
pub fn match_vocabularies(source: &Vocab, target: &Vocab) -> Matching {
    match_with(source, target, None)
}

/// Matches `target` against `source` with `mode` (see the module docs). Canonical mode needs
/// the family of both tokenizers: when either is unknown it falls back to exact matching and
/// says why in [`Matching::notice`].
pub fn match_tokens(source: &Vocab, target: &Vocab, mode: MatchMode) -> Result<Matching> {
    if mode == MatchMode::Exact {
        return Ok(match_vocabularies(source, target));
    }
    for (v, which) in [(source, "source"), (target, "target")] {
        if let TokenFamily::Unknown { reason } = &v.family {
            let mut m = match_vocabularies(source, target);
            m.notice = Some(format!(
                "--match canonical: cannot tell how the {which} tokenizer {} spells tokens ({reason}); matched by exact token string instead",
                v.path.display()
            ));
            return Ok(m);
        }
    }
    let (index, collisions) = canonical_index(source);
    let mut m = match_with(source, target, Some(&index));
    m.source_collisions = collisions;
    Ok(m)
}

/// Canonical form → the preferred source id of that form, and the number of source tokens
/// that lost to another of the same form. Of several source tokens with one form, the one the
/// source tokenizer produces for that text wins (Gemma's added `"\n"` over its byte piece
/// `<0x0A>`); failing that, an ordinary token beats a byte-fallback token (which is only used
/// when nothing else spells the byte), then the lower id wins.
fn canonical_index(source: &Vocab) -> (HashMap<CanonicalToken, u32>, usize) {
    let rank = |id: u32| {
        let byte_token = source
            .token(id)
            .is_some_and(|t| parse_byte_token(t).is_some());
        (byte_token, id)
    };
    let groups = source.form_groups();
    let collisions = groups.values().map(|ids| ids.len() - 1).sum();
    let index = groups
        .into_iter()
        .map(|(form, ids)| {
            let winner = match ids.as_slice() {
                [only] => *only,
                _ => (source.produced(&form))
                    .filter(|p| ids.contains(p))
                    .unwrap_or_else(|| {
                        ids.iter()
                            .copied()
                            .min_by_key(|&id| rank(id))
                            .unwrap_or(ids[0])
                    }),
            };
            (form, winner)
        })
        .collect();
    (index, collisions)
}

/// Canonical mode: the source token that stands for what target token `t` stands for. A token
/// with a canonical form matches by that form, whatever the spelling (the byte-level `Ċ` is a
/// newline, the SentencePiece letter `Ċ` is U+010A: they do not match); the source token of the
/// same spelling wins when it has the same form. A token without a form (special tokens)
/// matches by exact string a source token that has no form either: ordinary text spelled
/// `<unk>` and a special `<unk>` are different tokens, whichever side each is on.
fn by_meaning(
    source: &Vocab,
    target: &Vocab,
    t: u32,
    index: &HashMap<CanonicalToken, u32>,
) -> Option<u32> {
    let same_spelling = target.token(t).and_then(|tok| source.id(tok));
    let Some(form) = target.canonical(t) else {
        return same_spelling.filter(|&s| source.canonical(s).is_none());
    };
    if let Some(s) = same_spelling {
        if source.canonical(s).as_ref() == Some(&form) {
            return Some(s);
        }
    }
    index.get(&form).copied()
}

fn match_with(
    source: &Vocab,
    target: &Vocab,
    index: Option<&HashMap<CanonicalToken, u32>>,
) -> Matching {
    let mut m = Matching {
        mode: if index.is_some() {
            MatchMode::Canonical
        } else {
            MatchMode::Exact
        },
        ..Matching::default()
    };
    for t in 0..target.len() as u32 {
        let matched = match index {
            None => target.token(t).and_then(|tok| source.id(tok)),
            Some(index) => by_meaning(source, target, t, index),
        };
        if let Some(s) = matched {
            m.overlap.push((t, s));
            if target.token(t) != source.token(s) {
                m.canonical.push(t);
            }
            continue;
        }
        let by_role = target.roles_of(t).find_map(|role| {
            source.special.get(&role).map(|&s| RoleMapping {
                target_id: t,
                source_id: s,
                role,
            })
        });
        match by_role {
            Some(r) => m.by_role.push(r),
            None => m.missing.push(t),
        }
    }
    m
}

#[cfg(test)]
#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn vocab(tokens: &[&str]) -> Vocab {
        let ids = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.to_string(), i as u32))
            .collect();
        Vocab::from_ids(PathBuf::from("t"), ids).unwrap()
    }

    #[test]
    fn overlap_missing_and_roles() {
        let mut s = vocab(&["<|endoftext|>", "a", "b", "c"]);
        s.special.insert(SpecialRole::Eos, 0);
        let mut t = vocab(&["</s>", "<pad>", "c", "x", "a"]);
        t.special.insert(SpecialRole::Eos, 0);
        t.special.insert(SpecialRole::Pad, 1);
        let m = match_vocabularies(&s, &t);
        assert_eq!(m.overlap, vec![(2, 3), (4, 1)]);
        assert_eq!(
            m.by_role,
            vec![RoleMapping {
                target_id: 0,
                source_id: 0,
                role: SpecialRole::Eos
            }]
        );
        assert_eq!(m.missing, vec![1, 3]);
    }

    fn family_vocab(tokens: &[&str], family: TokenFamily, added: &[u32]) -> Vocab {
        vocab(tokens).with_family(family, added.iter().copied())
    }

    #[test]
    fn canonical_matching_across_families() {
        // Source: byte-level BPE (GPT-2 style); id 0 is an added special token.
        let mut s = family_vocab(
            &[
                "<|endoftext|>",
                "a",
                "Ġhello",
                "hello",
                "Ċ",
                "ĠfÃ¼r",
                "Ã",
                "Ġ",
                "<unk>",
            ],
            TokenFamily::ByteLevel,
            &[0],
        );
        s.special.insert(SpecialRole::Eos, 0);
        // Target: SentencePiece with byte fallback (Llama style); 0..2 are added specials.
        let sp = TokenFamily::SentencePiece {
            replacement: '▁',
            byte_fallback: true,
        };
        let mut t = family_vocab(
            &[
                "<unk>", "<s>", "</s>", "<0x0A>", "<0xC3>", "▁hello", "hello", "a", "▁für", "▁",
                "▁world", "<0x61>",
            ],
            sp,
            &[0, 1, 2],
        );
        t.special.insert(SpecialRole::Unk, 0);
        t.special.insert(SpecialRole::Bos, 1);
        t.special.insert(SpecialRole::Eos, 2);

        let exact = match_tokens(&s, &t, MatchMode::Exact).unwrap();
        assert_eq!(exact.mode, MatchMode::Exact);
        // `<unk>` is a plain source token with the same string: exact wins over roles.
        assert_eq!(exact.overlap, vec![(0, 8), (6, 3), (7, 1)]);
        assert!(exact.canonical.is_empty());

        let m = match_tokens(&s, &t, MatchMode::Canonical).unwrap();
        // The target's special `<unk>` is not the source's ordinary text `<unk>`: by role only.
        assert_eq!(
            m.overlap,
            vec![
                (3, 4),
                (4, 6),
                (5, 2),
                (6, 3),
                (7, 1),
                (8, 5),
                (9, 7),
                (11, 1)
            ]
        );
        assert_eq!(m.canonical, vec![3, 4, 5, 8, 9, 11]);
        assert_eq!(
            m.by_role,
            vec![RoleMapping {
                target_id: 2,
                source_id: 0,
                role: SpecialRole::Eos
            }]
        );
        // `<unk>` and `<s>` have roles the source lacks; `▁world` is not in the source.
        assert_eq!(m.missing, vec![0, 1, 10]);
        assert_eq!(m.source_collisions, 0);
        let c = m.counts();
        assert_eq!(
            (
                c.exact,
                c.canonical,
                c.special_by_role,
                c.missing,
                c.target_tokens
            ),
            (2, 6, 1, 3, 12)
        );

        let r = m.report(&s, &t, 2);
        assert_eq!(r.examples.exact.len(), 2);
        assert_eq!(
            r.examples.canonical[0].target_token.as_deref(),
            Some("<0x0A>")
        );
        assert_eq!(r.examples.canonical[0].source_token.as_deref(), Some("Ċ"));
        assert_eq!(r.examples.canonical[0].canonical.as_deref(), Some("\n"));
        assert_eq!(r.examples.canonical[1].canonical.as_deref(), Some("\\xC3"));
        assert_eq!(r.examples.special_by_role[0].role, Some(SpecialRole::Eos));
        assert_eq!(r.examples.missing[0].target_token.as_deref(), Some("<unk>"));
        assert_eq!(r.examples.missing[1].target_token.as_deref(), Some("<s>"));
    }

    #[test]
    fn canonical_matches_by_meaning_not_spelling() {
        // Source: SentencePiece with byte fallback whose vocabulary also holds the *letters*
        // Ċ (U+010A), Ġ (U+0120) and â (U+00E2), a literal newline and its byte token.
        let sp = TokenFamily::SentencePiece {
            replacement: '▁',
            byte_fallback: true,
        };
        let s = family_vocab(
            &[
                "Ċ", "Ġ", "â", "<0x0A>", "\n", "<0xE2>", "<0x20>", "▁", "▁hello", "hello",
            ],
            sp,
            &[],
        );
        // Target: byte-level BPE, where Ċ is "\n", Ġ is " " and â is the lone byte 0xE2.
        let t = family_vocab(
            &["Ċ", "Ġ", "â", "Ġhello", "hello", "ÃĪ"],
            TokenFamily::ByteLevel,
            &[],
        );
        let m = match_tokens(&s, &t, MatchMode::Canonical).unwrap();
        // Ċ → the newline the source tokenizer produces ("\n", not <0x0A>, not the letter);
        // Ġ → "▁" (a lone word start; <0x20> is a byte piece); â → <0xE2>; Ġhello → ▁hello;
        // hello → hello (same spelling, same form); ÃĪ (bytes C3 88 = "È") has no source token.
        assert_eq!(m.overlap, vec![(0, 4), (1, 7), (2, 5), (3, 8), (4, 9)]);
        assert_eq!(m.canonical, vec![0, 1, 2, 3]);
        assert_eq!(m.missing, vec![5]);
        assert_eq!(m.notice, None);
        // Exact matching would take the letters: the bug canonical mode must not have.
        let exact = match_tokens(&s, &t, MatchMode::Exact).unwrap();
        assert_eq!(exact.overlap, vec![(0, 0), (1, 1), (2, 2), (4, 9)]);
    }

    #[test]
    fn collisions_prefer_ordinary_tokens_then_lowest_id() {
        // A SentencePiece source spells "a" twice (byte fallback first) and " b" twice.
        let sp = TokenFamily::SentencePiece {
            replacement: '▁',
            byte_fallback: true,
        };
        let s = family_vocab(&["<0x61>", "x", "a", "▁b", "▁b▁", "<0x20>", "▁"], sp, &[]);
        let t = family_vocab(
            &["##a", "b", "##▁"],
            TokenFamily::WordPiece {
                prefix: "##".into(),
            },
            &[],
        );
        let m = match_tokens(&s, &t, MatchMode::Canonical).unwrap();
        // "##a" → "a" (id 2) beats "<0x61>" (id 0); "b" → "▁b"; "##▁" is "▁" as text, no form
        // in the source. "<0x61>" lost to "a" and "<0x20>" to "▁" (both a lone word start).
        assert_eq!(m.overlap, vec![(0, 2), (1, 3)]);
        assert_eq!(m.source_collisions, 2);
    }

    #[test]
    fn canonical_falls_back_to_exact_on_unknown_families() {
        let s = vocab(&["a", "Ġb"]);
        let t = family_vocab(&["a", "Ġb"], TokenFamily::ByteLevel, &[]);
        let m = match_tokens(&s, &t, MatchMode::Canonical).unwrap();
        assert_eq!(m.mode, MatchMode::Exact);
        assert_eq!(m.overlap, vec![(0, 0), (1, 1)]);
        let notice = m.notice.expect("a fallback says so");
        assert!(
            notice.contains("source tokenizer") && notice.contains("exact"),
            "{notice}"
        );
        assert_eq!(match_tokens(&s, &t, MatchMode::Exact).unwrap().notice, None);
        assert_eq!(
            match_tokens(&s, &t, MatchMode::Exact).unwrap().overlap,
            vec![(0, 0), (1, 1)]
        );
        assert_eq!("canonical".parse::<MatchMode>(), Ok(MatchMode::Canonical));
        assert!("fuzzy".parse::<MatchMode>().is_err());
    }
}
