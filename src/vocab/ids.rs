//! Token ids named in model configs (`*_token_id` in config.json, a nested `text_config`,
//! generation_config.json, and the id keys [`crate::model::rewrite::remap_token_ids_at`] lists),
//! carried from the source tokenizer to the target one *by role*.
//!
//! The role of an id is what it is in the source: a key that names a role (`bos_token_id`,
//! `pad_token_id`, ...) has that role first; then come the roles the source tokenizer gives the
//! id's token, so `decoder_start_token_id` of BART and M2M100 (the source's EOS) becomes the
//! target's EOS and that of T5 (the source's pad) the target's pad, and a `pad_token_id` that
//! is the source's EOS too becomes the target's EOS when the target has no pad. The first role
//! the target tokenizer has wins. An id without such a role (an mBART language code as
//! `forced_bos_token_id`) names the target token of the same spelling, provided it is of the
//! same kind: a role id, or the id of a special or added source token, only ever names a special
//! or added target token, never ordinary text that happens to be spelled the same (Qwen's
//! vocabulary has an ordinary token `<unk>`; byte-level BPE has no unknown token, so Gemma's
//! `unk_token_id` becomes null there). Otherwise the target has no counterpart and the caller
//! drops the id, saying why ([`IdMiss`]).

use super::read::Vocab;
use super::roles::SpecialRole;

/// Why a source id has no target counterpart, in words for a notice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdMiss {
    /// The source token, its roles and what the target lacks, e.g.
    /// "`</s>`, the source's eos: the target tokenizer has no eos token and no `</s>`".
    pub why: String,
    /// Whether the missing role is the pad (the fix is `--pad-token`).
    pub pad: bool,
}

/// The target id of source id `id`, found under the config key `key` (the last part of its
/// path: `decoder_start_token_id`); see the module docs for the rule.
pub fn target_id_by_role(
    source: &Vocab,
    target: &Vocab,
    key: &str,
    id: u64,
) -> Result<u32, IdMiss> {
    let sid = u32::try_from(id).ok();
    let mut roles: Vec<SpecialRole> = SpecialRole::from_id_key(key).into_iter().collect();
    for r in sid.into_iter().flat_map(|s| source.roles_of(s)) {
        if !roles.contains(&r) {
            roles.push(r);
        }
    }
    if let Some(&t) = roles.iter().find_map(|r| target.special.get(r)) {
        return Ok(t);
    }
    let token = sid.and_then(|s| source.token(s));
    // A role id, or an id of a special or added source token, names a token of the same kind:
    // never ordinary text that happens to be spelled `<unk>`.
    let needs_special = !roles.is_empty() || sid.is_some_and(|s| source.is_special_or_added(s));
    let same = token.and_then(|tok| target.id(tok));
    if let Some(t) = same.filter(|&t| !needs_special || target.is_special_or_added(t)) {
        return Ok(t);
    }
    let names: Vec<&str> = roles.iter().map(|r| r.name()).collect();
    let no_same = match same {
        Some(_) => "its `{tok}` is ordinary text, not a special token",
        None => "no `{tok}`",
    };
    let why = match (token, names.is_empty()) {
        (None, _) => format!(
            "no token of the source tokenizer {} has this id",
            source.path.display()
        ),
        (Some(tok), true) if same.is_some() => format!(
            "`{tok}` is a special token of the source but ordinary text in the target tokenizer"
        ),
        (Some(tok), true) => format!("`{tok}` is not in the target tokenizer"),
        (Some(tok), false) => format!(
            "`{tok}`, the source's {}: the target tokenizer has no {} token and {}",
            names.join("/"),
            names.join("/"),
            no_same.replace("{tok}", tok)
        ),
    };
    Err(IdMiss {
        why,
        pad: roles.contains(&SpecialRole::Pad),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn vocab(tokens: &[&str], roles: &[(SpecialRole, u32)]) -> Vocab {
        let ids = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.to_string(), i as u32))
            .collect();
        let mut v = Vocab::from_ids(PathBuf::from("t"), ids).unwrap();
        v.special.extend(roles.iter().copied());
        v
    }

    #[test]
    fn ids_follow_their_role_in_the_source() {
        use SpecialRole::*;
        // BART-like source: decoder start = eos; T5-like: decoder start = pad.
        let s = vocab(
            &["<unk>", "<s>", "</s>", "<pad>", "en_XX", "a"],
            &[(Unk, 0), (Bos, 1), (Eos, 2), (Pad, 3)],
        );
        let t = vocab(
            &["<eos>", "<bos>", "<p>", "en_XX"],
            &[(Eos, 0), (Bos, 1), (Pad, 2)],
        )
        .with_text_added([3]);
        let map = |key: &str, id: u64| target_id_by_role(&s, &t, key, id);
        assert_eq!(map("decoder_start_token_id", 2), Ok(0));
        assert_eq!(map("decoder_start_token_id", 3), Ok(2));
        assert_eq!(map("forced_bos_token_id", 1), Ok(1));
        assert_eq!(map("forced_bos_token_id", 4), Ok(3));
        // The key's own role first: a pad that is the source's eos stays the target's pad.
        let s2 = vocab(&["<s>", "</s>"], &[(Bos, 0), (Eos, 1), (Pad, 1)]);
        assert_eq!(target_id_by_role(&s2, &t, "pad_token_id", 1), Ok(2));
        // ... and becomes the target's eos when the target has no pad.
        let t2 = vocab(&["<eos>"], &[(Eos, 0)]);
        assert_eq!(target_id_by_role(&s2, &t2, "pad_token_id", 1), Ok(0));
        let miss = target_id_by_role(&s, &t2, "pad_token_id", 3).unwrap_err();
        assert!(miss.pad && miss.why.contains("no pad token"), "{miss:?}");
        let miss = target_id_by_role(&s, &t2, "sep_token_id", 5).unwrap_err();
        assert!(!miss.pad && miss.why.contains("`a`"), "{miss:?}");
        let miss = target_id_by_role(&s, &t2, "foo_token_id", 99).unwrap_err();
        assert!(miss.why.contains("no token of the source"), "{miss:?}");
    }

    #[test]
    fn role_ids_never_name_ordinary_text() {
        use SpecialRole::*;
        // Gemma-like source with `<unk>` as its unk; a Qwen-like target whose vocabulary has an
        // ordinary token spelled `<unk>` (id 1) and no unk role.
        let s = vocab(
            &["<pad>", "<eos>", "<bos>", "<unk>", "a"],
            &[(Pad, 0), (Eos, 1), (Bos, 2), (Unk, 3)],
        );
        let t = vocab(
            &["<|endoftext|>", "<unk>", "a", "<|im_end|>"],
            &[(Pad, 0), (Eos, 3)],
        )
        .with_family(crate::tokenizer::TokenFamily::ByteLevel, [0, 3]);
        let miss = target_id_by_role(&s, &t, "unk_token_id", 3).unwrap_err();
        assert!(miss.why.contains("ordinary text"), "{miss:?}");
        // Without a role in the key, the source's role still rules it out.
        assert!(target_id_by_role(&s, &t, "forced_bos_token_id", 3).is_err());
        // Roles the target has are found; an ordinary source token keeps its spelling.
        assert_eq!(target_id_by_role(&s, &t, "eos_token_id", 1), Ok(3));
        assert_eq!(target_id_by_role(&s, &t, "pad_token_id", 0), Ok(0));
        assert_eq!(target_id_by_role(&s, &t, "some_token_id", 4), Ok(2));
        // When the target's `<unk>` is special (an added token), the spelling may name it.
        let t_added = vocab(&["<|endoftext|>", "<unk>"], &[(Pad, 0)]).with_text_added([1]);
        assert_eq!(target_id_by_role(&s, &t_added, "unk_token_id", 3), Ok(1));
    }
}
