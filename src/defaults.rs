//! The method a user gets without flags, in one place: the CLI's defaults and presets (and the
//! Python package, which parses its keyword arguments with the same CLI structs) come from here.
//!
//! The default is canonical matching with softmax weights over the 10 most similar overlapping
//! tokens at temperature 0.1 (WECHSEL's published setting). On a released pair (a 262k-token
//! SentencePiece source, a 151k-token byte-level BPE helper) it scored best or tied of every
//! method we have; the original CLP-Transfer (exact match, clp over all overlap) scored worse
//! than random rows there, because exact matching misses most of the overlap across tokenizer
//! families and dense clp weights are nearly uniform. README's method section has the numbers.

use crate::method::{TopK, Weighting};
use crate::vocab::MatchMode;

/// Default token matching.
pub const MATCH: MatchMode = MatchMode::Canonical;
/// Default neighbours per missing token.
pub const TOP_K: TopK = TopK::K(10);
/// Default softmax temperature.
pub const TEMPERATURE: f32 = 0.1;
/// Default weighting (with [`TOP_K`] and [`TEMPERATURE`]).
pub const WEIGHTING: Weighting = Weighting::Softmax {
    top_k: TOP_K,
    temperature: TEMPERATURE,
};

/// A named method: matching and weighting set in one flag (`--preset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Preset {
    /// The paper's method exactly: exact match, clp, every overlapping token.
    Original,
}

impl Preset {
    /// Name as on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Preset::Original => "original",
        }
    }

    /// The matching of this preset.
    pub fn match_mode(self) -> MatchMode {
        match self {
            Preset::Original => MatchMode::Exact,
        }
    }

    /// The weighting of this preset.
    pub fn weighting(self) -> Weighting {
        match self {
            Preset::Original => Weighting::Clp { top_k: TopK::All },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_a_valid_weighting() {
        assert_eq!(WEIGHTING.validate(), Ok(()));
        assert_eq!(WEIGHTING.label(), "softmax k=10 T=0.1");
        assert_eq!(Preset::Original.weighting().label(), "clp k=all");
    }

    #[test]
    fn match_modes_default_is_the_products() {
        assert_eq!(MatchMode::default(), MATCH);
        assert_eq!(MATCH, MatchMode::Canonical);
    }
}
