//! Special-token roles (bos/eos/unk/pad/sep/cls/mask) and the keys that name them in
//! tokenizer_config.json, special_tokens_map.json and config.json.

/// The role of a special token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SpecialRole {
    /// Beginning of sequence.
    Bos,
    /// End of sequence.
    Eos,
    /// Unknown token.
    Unk,
    /// Padding.
    Pad,
    /// Separator (encoders).
    Sep,
    /// Classification (encoders).
    Cls,
    /// Mask (encoders).
    Mask,
}

impl SpecialRole {
    /// Every role, in the order used to pick a role for a token that has several.
    pub const ALL: [SpecialRole; 7] = [
        SpecialRole::Bos,
        SpecialRole::Eos,
        SpecialRole::Unk,
        SpecialRole::Pad,
        SpecialRole::Sep,
        SpecialRole::Cls,
        SpecialRole::Mask,
    ];

    /// Short name ("bos").
    pub fn name(self) -> &'static str {
        match self {
            SpecialRole::Bos => "bos",
            SpecialRole::Eos => "eos",
            SpecialRole::Unk => "unk",
            SpecialRole::Pad => "pad",
            SpecialRole::Sep => "sep",
            SpecialRole::Cls => "cls",
            SpecialRole::Mask => "mask",
        }
    }

    /// Key in tokenizer_config.json / special_tokens_map.json ("bos_token").
    pub fn token_key(self) -> String {
        format!("{}_token", self.name())
    }

    /// Key in config.json / generation_config.json ("bos_token_id").
    pub fn id_key(self) -> String {
        format!("{}_token_id", self.name())
    }

    /// The role a config key names (`bos_token_id` → bos); `None` for other keys
    /// (`decoder_start_token_id`, `forced_bos_token_id`, ...), whose role is their token's.
    pub fn from_id_key(key: &str) -> Option<SpecialRole> {
        SpecialRole::ALL.into_iter().find(|r| r.id_key() == key)
    }
}
