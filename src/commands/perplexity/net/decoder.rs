//! The causal stack every decoder family is an instance of: embeddings (token, optional learned
//! positions, optional scale and norm), layers (attention and MLP, pre/post norms, sequential or
//! parallel residual) and the head (final norm, projection, logit scaling and soft-capping).

use super::attention::Attention;
use super::blocks::{norm_opt, Mlp, Norm};
use candle_core::{Device, Result, Tensor};
use candle_nn::{Linear, Module};

/// One decoder layer.
pub struct Layer {
    /// Norm before attention (`None`: OLMo 2).
    pub attn_norm: Option<Norm>,
    /// Norm before the MLP; in a parallel layer `None` means the MLP reads `attn_norm`'s output.
    pub mlp_norm: Option<Norm>,
    /// Norm of the attention output before the residual add (Gemma 2/3, OLMo 2).
    pub post_attn_norm: Option<Norm>,
    /// Norm of the MLP output before the residual add.
    pub post_mlp_norm: Option<Norm>,
    /// `x + attn(..) + mlp(..)` from the same input (GPT-J, NeoX, Falcon, Phi, Cohere).
    pub parallel: bool,
    /// Multiplies each branch before the residual add (Granite), else 1.
    pub residual_scale: f64,
    /// Self-attention.
    pub attn: Attention,
    /// Feed-forward.
    pub mlp: Mlp,
}

impl Layer {
    /// A pre-norm sequential layer (the common case); families adjust fields after.
    pub fn pre_norm(attn_norm: Norm, mlp_norm: Norm, attn: Attention, mlp: Mlp) -> Layer {
        Layer {
            attn_norm: Some(attn_norm),
            mlp_norm: Some(mlp_norm),
            post_attn_norm: None,
            post_mlp_norm: None,
            parallel: false,
            residual_scale: 1.0,
            attn,
            mlp,
        }
    }

    /// A parallel layer whose attention and MLP read one shared norm.
    pub fn parallel(norm: Norm, attn: Attention, mlp: Mlp) -> Layer {
        Layer {
            attn_norm: Some(norm),
            mlp_norm: None,
            post_attn_norm: None,
            post_mlp_norm: None,
            parallel: true,
            residual_scale: 1.0,
            attn,
            mlp,
        }
    }

    /// `x`: `[batch, positions, hidden]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = norm_opt(&self.attn_norm, x)?;
        if self.parallel {
            let a = self.attn.forward(&h)?;
            let m = match &self.mlp_norm {
                Some(n) => self.mlp.forward(&n.forward(x)?)?,
                None => self.mlp.forward(&h)?,
            };
            return (x + a)? + m;
        }
        let a = norm_opt(&self.post_attn_norm, &self.attn.forward(&h)?)?;
        let x = (x + (a * self.residual_scale)?)?;
        let h = norm_opt(&self.mlp_norm, &x)?;
        let m = norm_opt(&self.post_mlp_norm, &self.mlp.forward(&h)?)?;
        &x + (m * self.residual_scale)?
    }
}

/// A whole causal language model.
pub struct Decoder {
    /// Token embeddings `[vocab, hidden]`.
    pub embed: Tensor,
    /// Multiplies the token embeddings (Gemma's `sqrt(hidden)`, Granite's multiplier), else 1.
    pub embed_scale: f64,
    /// Learned positions `[positions + offset, hidden]` and the offset of position 0 (OPT: 2).
    pub positions: Option<(Tensor, usize)>,
    /// Norm right after the embeddings (BLOOM).
    pub embed_norm: Option<Norm>,
    /// The layers.
    pub layers: Vec<Layer>,
    /// Norm before the head.
    pub final_norm: Option<Norm>,
    /// The output projection (tied or not) with its bias when the checkpoint has one.
    pub head: Linear,
    /// Multiplies the logits (Cohere's `logit_scale`, Granite's `1 / logits_scaling`), else 1.
    pub logit_scale: f64,
    /// `tanh(l / c) * c` on the logits (Gemma 2).
    pub final_softcap: Option<f64>,
}

impl Decoder {
    /// A decoder with no embedding scale, learned positions, embedding norm, logit scale or
    /// soft-cap; families set the fields they have on top (`Decoder { .., ..Decoder::new(..) }`).
    pub fn new(
        head: Linear,
        embed: Tensor,
        layers: Vec<Layer>,
        final_norm: Option<Norm>,
    ) -> Decoder {
        Decoder {
            embed,
            embed_scale: 1.0,
            positions: None,
            embed_norm: None,
            layers,
            final_norm,
            head,
            logit_scale: 1.0,
            final_softcap: None,
        }
    }

    /// The logits of every position of `ids` (positions from 0): `[ids.len(), vocab]`.
    pub fn forward(&self, ids: &[u32]) -> Result<Tensor> {
        let dev = Device::Cpu;
        let t = ids.len();
        let input = Tensor::new(ids, &dev)?;
        let mut x = self.embed.index_select(&input, 0)?;
        if self.embed_scale != 1.0 {
            x = (x * self.embed_scale)?;
        }
        if let Some((table, offset)) = &self.positions {
            x = (x + table.narrow(0, *offset, t)?)?;
        }
        let mut x = norm_opt(&self.embed_norm, &x)?.unsqueeze(0)?;
        for layer in &self.layers {
            x = layer.forward(&x)?;
        }
        let x = norm_opt(&self.final_norm, &x)?;
        let mut logits = self.head.forward(&x)?.squeeze(0)?;
        if self.logit_scale != 1.0 {
            logits = (logits * self.logit_scale)?;
        }
        if let Some(c) = self.final_softcap {
            logits = ((logits / c)?.tanh()? * c)?;
        }
        Ok(logits)
    }
}

/// The output projection: `lm_head` when the checkpoint has one and the config does not tie it,
/// else the token embeddings; `bias` when present.
pub fn head(weight: Option<Tensor>, embed: &Tensor, tied: bool, bias: Option<Tensor>) -> Linear {
    match weight {
        Some(w) if !tied => Linear::new(w, bias),
        _ => Linear::new(embed.clone(), bias),
    }
}
