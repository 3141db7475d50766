//! The masked-LM stack (BERT and its descendants, ModernBERT) and its pseudo-log-likelihood:
//! each scored token is replaced by the mask token once, all copies of a window run as one
//! batch, and the log-probability of the true token at the masked position is read off.

use super::attention::Attention;
use super::blocks::{norm_opt, Act, Mlp, Norm};
use super::decoder::Layer;
use candle_core::{Device, Result, Tensor};
use candle_nn::{Linear, Module};

/// One encoder layer.
pub enum EncoderLayer {
    /// BERT's post-norm layer: `n1(x + attn(x))`, then `n2(x + mlp(x))`.
    PostNorm {
        /// Self-attention (bidirectional).
        attn: Attention,
        /// Norm after the attention residual.
        attn_norm: Norm,
        /// Feed-forward.
        mlp: Mlp,
        /// Norm after the MLP residual.
        mlp_norm: Norm,
    },
    /// A pre-norm layer (ModernBERT), the decoder's layer with a bidirectional or local mask.
    PreNorm(Layer),
}

impl EncoderLayer {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            EncoderLayer::PostNorm {
                attn,
                attn_norm,
                mlp,
                mlp_norm,
            } => {
                let x = attn_norm.forward(&(x + attn.forward(x)?)?)?;
                mlp_norm.forward(&(&x + mlp.forward(&x)?)?)
            }
            EncoderLayer::PreNorm(l) => l.forward(x),
        }
    }
}

/// How position ids are made.
#[derive(Clone, Copy)]
pub enum Positions {
    /// `0, 1, 2, ...`
    FromZero,
    /// RoBERTa's: `pad + 1 + i` over non-pad tokens, `pad` on pad tokens.
    AfterPad(u32),
}

/// A masked language model.
pub struct Encoder {
    /// Token embeddings `[vocab, embedding]`.
    pub embed: Tensor,
    /// Learned positions and how ids are made, if any.
    pub positions: Option<(Tensor, Positions)>,
    /// Token-type row 0, added to every position, if the model has token types.
    pub token_type: Option<Tensor>,
    /// Projection of the embeddings to the hidden size before the norm (DeBERTa-v2).
    pub embed_proj_before_norm: Option<Linear>,
    /// Norm of the embeddings.
    pub embed_norm: Option<Norm>,
    /// Projection of the embeddings to the hidden size after the norm (ELECTRA).
    pub embed_proj: Option<Linear>,
    /// The layers.
    pub layers: Vec<EncoderLayer>,
    /// Norm after the last layer (ModernBERT).
    pub final_norm: Option<Norm>,
    /// The MLM head's transform: dense, activation, norm.
    pub head_dense: Linear,
    /// Its activation.
    pub head_act: Act,
    /// Its norm.
    pub head_norm: Norm,
    /// The vocabulary projection (tied to the embeddings) with its bias.
    pub decoder: Linear,
}

impl Encoder {
    /// Hidden states of a batch of equal-length rows: `[rows, positions, hidden]`.
    fn hidden(&self, rows: &[Vec<u32>]) -> Result<Tensor> {
        let dev = Device::Cpu;
        let (b, t) = (rows.len(), rows[0].len());
        let flat: Vec<u32> = rows.concat();
        let ids = Tensor::from_vec(flat.clone(), b * t, &dev)?;
        let mut x = self.embed.index_select(&ids, 0)?;
        if let Some((table, kind)) = &self.positions {
            let pos: Vec<u32> = rows.iter().flat_map(|r| position_ids(r, *kind)).collect();
            x = (x + table.index_select(&Tensor::from_vec(pos, b * t, &dev)?, 0)?)?;
        }
        if let Some(tt) = &self.token_type {
            x = x.broadcast_add(tt)?;
        }
        let mut x = x.reshape((b, t, ()))?;
        if let Some(p) = &self.embed_proj_before_norm {
            x = p.forward(&x)?;
        }
        x = norm_opt(&self.embed_norm, &x)?;
        if let Some(p) = &self.embed_proj {
            x = p.forward(&x)?;
        }
        for layer in &self.layers {
            x = layer.forward(&x)?;
        }
        norm_opt(&self.final_norm, &x)
    }

    /// Logits `[picks, vocab]` of row `r` at position `p` for each `(r, p)` in `picks`.
    pub fn logits_at(&self, rows: &[Vec<u32>], picks: &[(usize, usize)]) -> Result<Tensor> {
        let h = self.hidden(rows)?;
        let (_, t, d) = h.dims3()?;
        let flat = h.reshape(((), d))?;
        let idx: Vec<u32> = picks.iter().map(|&(r, p)| (r * t + p) as u32).collect();
        let n = idx.len();
        let sel = flat.index_select(&Tensor::from_vec(idx, n, &Device::Cpu)?, 0)?;
        let x = self.head_dense.forward(&sel)?;
        let x = self.head_norm.forward(&self.head_act.forward(&x)?)?;
        self.decoder.forward(&x)
    }

    /// `ln p(ids[p] | ids with position p masked)` for each position in `scored`, rows batched
    /// `batch` at a time.
    pub fn pseudo_log_probs(
        &self,
        ids: &[u32],
        scored: std::ops::Range<usize>,
        mask: u32,
        batch: usize,
    ) -> Result<Vec<f64>> {
        let positions: Vec<usize> = scored.collect();
        let mut out = Vec::with_capacity(positions.len());
        for group in positions.chunks(batch.max(1)) {
            let rows: Vec<Vec<u32>> = group
                .iter()
                .map(|&p| {
                    let mut r = ids.to_vec();
                    r[p] = mask;
                    r
                })
                .collect();
            let picks: Vec<(usize, usize)> =
                group.iter().enumerate().map(|(r, &p)| (r, p)).collect();
            let logits: Vec<Vec<f32>> = self.logits_at(&rows, &picks)?.to_vec2()?;
            for (row, &p) in logits.iter().zip(group) {
                out.push(crate::commands::perplexity::window::log_prob(
                    row,
                    ids[p] as usize,
                ));
            }
        }
        Ok(out)
    }
}

fn position_ids(row: &[u32], kind: Positions) -> Vec<u32> {
    match kind {
        Positions::FromZero => (0..row.len() as u32).collect(),
        Positions::AfterPad(pad) => {
            let mut seen = 0;
            row.iter()
                .map(|&id| {
                    if id == pad {
                        pad
                    } else {
                        seen += 1;
                        pad + seen
                    }
                })
                .collect()
        }
    }
}
