//! Which layers of a stack to keep: `--keep-every`, `--layers`, `--decoder-layers`.

use crate::error::{Error, Result};

/// Which layers to keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerChoice {
    /// Every layer.
    All,
    /// Layers 0, r, 2r, ... and the last one.
    KeepEvery(usize),
    /// These layers (strictly increasing).
    List(Vec<usize>),
}

/// The old layer indices to keep, checked against the model's `layers`.
pub fn select_layers(choice: &LayerChoice, layers: usize) -> Result<Vec<usize>> {
    select_in(choice, layers, "--layers", "the model")
}

/// [`select_layers`] for one stack: errors name the option `flag` and the stack `what`
/// ("the decoder (model.decoder.layers)").
pub fn select_in(
    choice: &LayerChoice,
    layers: usize,
    flag: &str,
    what: &str,
) -> Result<Vec<usize>> {
    match choice {
        LayerChoice::All => Ok((0..layers).collect()),
        LayerChoice::KeepEvery(0) => Err(Error::Argument(
            "--keep-every 0: give a whole number ≥ 1 (2 keeps every other layer)".into(),
        )),
        LayerChoice::KeepEvery(r) => {
            let mut kept: Vec<usize> = (0..layers).step_by(*r).collect();
            if layers > 0 && kept.last() != Some(&(layers - 1)) {
                kept.push(layers - 1);
            }
            Ok(kept)
        }
        LayerChoice::List(list) => {
            let shown = list
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(",");
            if list.is_empty() {
                return Err(Error::Argument(format!(
                    "{flag}: give at least one layer index, e.g. {flag} 0,2,5"
                )));
            }
            if let Some(&bad) = list.iter().find(|&&l| l >= layers) {
                return Err(Error::Argument(format!(
                    "{flag} {shown}: layer {bad} does not exist; {what} has layers 0..{}",
                    layers.saturating_sub(1)
                )));
            }
            if list.windows(2).any(|w| w[0] >= w[1]) {
                return Err(Error::Argument(format!(
                    "{flag} {shown}: list each layer once, in increasing order"
                )));
            }
            Ok(list.clone())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_every_always_keeps_the_last_layer() {
        assert_eq!(
            select_layers(&LayerChoice::KeepEvery(2), 6).unwrap(),
            vec![0, 2, 4, 5]
        );
        assert_eq!(
            select_layers(&LayerChoice::KeepEvery(2), 5).unwrap(),
            vec![0, 2, 4]
        );
        assert_eq!(
            select_layers(&LayerChoice::KeepEvery(1), 3).unwrap(),
            vec![0, 1, 2]
        );
        assert_eq!(
            select_layers(&LayerChoice::KeepEvery(10), 3).unwrap(),
            vec![0, 2]
        );
        assert!(select_layers(&LayerChoice::KeepEvery(0), 3).is_err());
        assert!(select_layers(&LayerChoice::List(vec![1, 1]), 3).is_err());
        assert!(select_layers(&LayerChoice::List(vec![3]), 3).is_err());
        assert_eq!(
            select_layers(&LayerChoice::List(vec![0, 2]), 3).unwrap(),
            vec![0, 2]
        );
    }
}
