//! Multi-head attention over a whole window: grouped KV heads, rotary / ALiBi / no position
//! term, optional q/k norms, logit soft-capping, and causal, sliding-window or bidirectional
//! masks. Inputs are `[batch, positions, hidden]`; positions start at 0.

use super::blocks::Norm;
use super::checkpoint::{Cfg, Weights};
use candle_core::{bail, Device, Result, Tensor, D};
use candle_nn::{Linear, Module};

/// Rotary position embedding on the first `dim` features of each head.
#[derive(Clone)]
pub struct Rope {
    /// Rotated features per head (even).
    pub dim: usize,
    /// One frequency per rotated pair.
    pub inv_freq: Vec<f64>,
    /// GPT-J / Cohere pairing (`x[2i], x[2i+1]`) instead of halves (`x[i], x[i + dim/2]`).
    pub interleaved: bool,
}

impl Rope {
    /// Frequencies `theta^(-2i/dim)`, scaled per `rope_scaling` (`linear`, `llama3`); other
    /// scalings are refused.
    pub fn new(cfg: Cfg, dim: usize, theta: f64, interleaved: bool) -> Result<Rope> {
        let mut inv_freq: Vec<f64> = (0..dim / 2)
            .map(|i| 1.0 / theta.powf(2.0 * i as f64 / dim as f64))
            .collect();
        scale_frequencies(cfg, &mut inv_freq)?;
        Ok(Rope {
            dim,
            inv_freq,
            interleaved,
        })
    }

    /// Unscaled frequencies (Gemma 3's local layers, ModernBERT).
    pub fn plain(dim: usize, theta: f64, interleaved: bool) -> Rope {
        Rope {
            dim,
            inv_freq: (0..dim / 2)
                .map(|i| 1.0 / theta.powf(2.0 * i as f64 / dim as f64))
                .collect(),
            interleaved,
        }
    }

    /// Rotates `x` (`[batch, heads, positions, head_dim]`, positions from 0).
    pub fn apply(&self, x: &Tensor) -> Result<Tensor> {
        let (_, _, t, d) = x.dims4()?;
        let half = self.dim / 2;
        let mut cos = Vec::with_capacity(t * half);
        let mut sin = Vec::with_capacity(t * half);
        for p in 0..t {
            for f in &self.inv_freq {
                let a = (p as f64 * f) as f32;
                cos.push(a.cos());
                sin.push(a.sin());
            }
        }
        let cos = Tensor::from_vec(cos, (t, half), x.device())?;
        let sin = Tensor::from_vec(sin, (t, half), x.device())?;
        let rot = x.narrow(D::Minus1, 0, self.dim)?.contiguous()?;
        let rot = if self.interleaved {
            candle_nn::rotary_emb::rope_i(&rot, &cos, &sin)?
        } else {
            candle_nn::rotary_emb::rope(&rot, &cos, &sin)?
        };
        if self.dim == d {
            return Ok(rot);
        }
        let pass = x.narrow(D::Minus1, self.dim, d - self.dim)?;
        Tensor::cat(&[&rot, &pass], D::Minus1)
    }
}

/// Applies `rope_scaling` (or transformers 5's `rope_parameters`) to the frequencies.
fn scale_frequencies(cfg: Cfg, inv_freq: &mut [f64]) -> Result<()> {
    let s = if cfg.0["rope_scaling"].is_object() {
        &cfg.0["rope_scaling"]
    } else {
        &cfg.0["rope_parameters"]
    };
    let kind = s["rope_type"].as_str().or(s["type"].as_str());
    let factor = s["factor"].as_f64().unwrap_or(1.0);
    match kind {
        None | Some("default") => {}
        Some("linear") => inv_freq.iter_mut().for_each(|f| *f /= factor),
        Some("llama3") => {
            let low = s["low_freq_factor"].as_f64().unwrap_or(1.0);
            let high = s["high_freq_factor"].as_f64().unwrap_or(4.0);
            let old = s["original_max_position_embeddings"]
                .as_f64()
                .unwrap_or(8192.0);
            let (low_wavelen, high_wavelen) = (old / low, old / high);
            for f in inv_freq.iter_mut() {
                let wavelen = 2.0 * std::f64::consts::PI / *f;
                if wavelen > low_wavelen {
                    *f /= factor;
                } else if wavelen >= high_wavelen {
                    let smooth = (old / wavelen - low) / (high - low);
                    *f = (1.0 - smooth) * *f / factor + smooth * *f;
                }
            }
        }
        Some(other) => bail!(
            "config.json: rope scaling {other:?} is not supported by perplexity (it runs linear and llama3)"
        ),
    }
    Ok(())
}

/// Where a query may look.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mask {
    /// Keys at or before the query.
    Causal,
    /// Keys at or before the query and fewer than `n` positions back.
    Sliding(usize),
    /// Every key.
    Bidirectional,
    /// Keys within `n` positions either side (ModernBERT's local layers).
    Local(usize),
}

impl Mask {
    fn allows(self, q: usize, k: usize) -> bool {
        match self {
            Mask::Causal => k <= q,
            Mask::Sliding(n) => k <= q && q - k < n,
            Mask::Bidirectional => true,
            Mask::Local(n) => q.abs_diff(k) <= n,
        }
    }
}

/// A q or k normalisation: over each head's features or over the whole projection (OLMo 2).
pub enum QkNorm {
    /// Over `head_dim`, shared by all heads.
    PerHead(Norm),
    /// Over `heads * head_dim`, before the split into heads.
    Whole(Norm),
}

/// One attention layer.
pub struct Attention {
    /// Projections (`[heads * head_dim, hidden]`, `[kv_heads * head_dim, hidden]` twice).
    pub q: Linear,
    /// Key projection.
    pub k: Linear,
    /// Value projection.
    pub v: Linear,
    /// Output projection.
    pub o: Linear,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads (divides `heads`).
    pub kv_heads: usize,
    /// Features per head.
    pub head_dim: usize,
    /// Optional q norm.
    pub q_norm: Option<QkNorm>,
    /// Optional k norm.
    pub k_norm: Option<QkNorm>,
    /// Rotary positions, if any.
    pub rope: Option<Rope>,
    /// ALiBi slopes (one per head), if any.
    pub alibi: Option<Vec<f32>>,
    /// Multiplies `q·k`.
    pub scale: f64,
    /// `tanh(s / c) * c` on the scores (Gemma 2).
    pub softcap: Option<f64>,
    /// The mask.
    pub mask: Mask,
}

impl Attention {
    /// Separate `q_proj`, `k_proj`, `v_proj` and `o_name` under `wts`, biases as present; no
    /// norms, positions or soft-capping (families set those).
    pub fn separate(
        wts: &Weights,
        names: [&str; 4],
        heads: usize,
        kv_heads: usize,
        head_dim: usize,
    ) -> Result<Attention> {
        use super::blocks::linear;
        Ok(Attention {
            q: linear(wts, names[0])?,
            k: linear(wts, names[1])?,
            v: linear(wts, names[2])?,
            o: linear(wts, names[3])?,
            heads,
            kv_heads,
            head_dim,
            q_norm: None,
            k_norm: None,
            rope: None,
            alibi: None,
            scale: 1.0 / (head_dim as f64).sqrt(),
            softcap: None,
            mask: Mask::Causal,
        })
    }

    /// From q, k, v, o projections already split.
    pub fn from_parts(qkv: [Linear; 3], o: Linear, heads: usize, kv: usize, d: usize) -> Self {
        let [q, k, v] = qkv;
        Attention {
            q,
            k,
            v,
            o,
            heads,
            kv_heads: kv,
            head_dim: d,
            q_norm: None,
            k_norm: None,
            rope: None,
            alibi: None,
            scale: 1.0 / (d as f64).sqrt(),
            softcap: None,
            mask: Mask::Causal,
        }
    }

    /// `x`: `[batch, positions, hidden]` → `[batch, positions, hidden]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        let q = self.heads_of(&self.q, &self.q_norm, x, self.heads)?;
        let k = self.heads_of(&self.k, &self.k_norm, x, self.kv_heads)?;
        let v = self.heads_of(&self.v, &None, x, self.kv_heads)?;
        let (q, k) = match &self.rope {
            Some(r) => (r.apply(&q)?, r.apply(&k)?),
            None => (q, k),
        };
        let (k, v) = (self.repeat_kv(k)?, self.repeat_kv(v)?);
        let mut scores = (q.matmul(&k.t()?.contiguous()?)? * self.scale)?;
        if let Some(c) = self.softcap {
            scores = ((scores / c)?.tanh()? * c)?;
        }
        let scores = scores.broadcast_add(&self.bias(t, x.device())?)?;
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        let out = probs.matmul(&v.contiguous()?)?;
        let out = out
            .transpose(1, 2)?
            .reshape((b, t, self.heads * self.head_dim))?;
        self.o.forward(&out)
    }

    /// Projects `x` and returns `[batch, n, positions, head_dim]`, normed as configured.
    fn heads_of(
        &self,
        proj: &Linear,
        norm: &Option<QkNorm>,
        x: &Tensor,
        n: usize,
    ) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        let mut y = proj.forward(x)?;
        if let Some(QkNorm::Whole(nm)) = norm {
            y = nm.forward(&y)?;
        }
        let mut y = y.reshape((b, t, n, self.head_dim))?;
        if let Some(QkNorm::PerHead(nm)) = norm {
            y = nm.forward(&y)?;
        }
        y.transpose(1, 2)?.contiguous()
    }

    /// Repeats each KV head for its group of query heads.
    fn repeat_kv(&self, x: Tensor) -> Result<Tensor> {
        let n_rep = self.heads / self.kv_heads;
        if n_rep == 1 {
            return Ok(x);
        }
        let (b, kv, t, d) = x.dims4()?;
        x.unsqueeze(2)?
            .expand((b, kv, n_rep, t, d))?
            .reshape((b, kv * n_rep, t, d))
    }

    /// The additive score bias `[heads or 1, positions, positions]`: the mask (−∞ where a
    /// query may not look) plus ALiBi's `slope · key position`.
    fn bias(&self, t: usize, dev: &Device) -> Result<Tensor> {
        let mut mask = vec![0f32; t * t];
        for q in 0..t {
            for k in 0..t {
                if !self.mask.allows(q, k) {
                    mask[q * t + k] = f32::NEG_INFINITY;
                }
            }
        }
        let Some(slopes) = &self.alibi else {
            return Tensor::from_vec(mask, (1, t, t), dev);
        };
        let mut out = Vec::with_capacity(slopes.len() * t * t);
        for s in slopes {
            out.extend(mask.iter().enumerate().map(|(i, m)| m + s * (i % t) as f32));
        }
        Tensor::from_vec(out, (slopes.len(), t, t), dev)
    }
}

/// ALiBi slopes for `heads` heads (BLOOM): a geometric series from `2^(-8/n)` for the nearest
/// power of two `n`, the remaining heads taking every other slope of the series for `2n`.
pub fn alibi_slopes(heads: usize) -> Vec<f32> {
    let closest = 1usize << (usize::BITS - 1 - heads.leading_zeros());
    let series = |n: usize| -> Vec<f64> {
        let base = 2f64.powf(-(2f64.powf(-((n as f64).log2() - 3.0))));
        (1..=n).map(|i| base.powi(i as i32)).collect()
    };
    let mut slopes = series(closest);
    if closest != heads {
        let extra = series(2 * closest);
        let remaining = (heads - closest).min(closest);
        slopes.extend(extra.iter().step_by(2).take(remaining));
    }
    slopes.into_iter().map(|s| s as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against transformers' `build_alibi_tensor` (bloom), whose slopes for 6 and 12 heads are
    /// copied here: the non-power-of-two branch the 2-head fixture does not reach.
    #[test]
    fn perplexity_alibi_slopes_match_bloom() {
        let want6 = [0.25, 0.0625, 0.015625, 0.00390625, 0.5, 0.125];
        let want12 = [
            0.5, 0.25, 0.125, 0.0625, 0.03125, 0.015625, 0.0078125, 0.00390625, 0.70710677,
            0.35355338, 0.17677668, 0.08838834,
        ];
        for (heads, want) in [(6, &want6[..]), (12, &want12[..])] {
            let got = alibi_slopes(heads);
            assert_eq!(got.len(), heads);
            for (g, w) in got.iter().zip(want) {
                assert!((g - w).abs() < 1e-6, "{heads} heads: {got:?}");
            }
        }
    }

    #[test]
    fn perplexity_masks_allow_what_transformers_allows() {
        assert!(Mask::Sliding(3).allows(5, 3) && !Mask::Sliding(3).allows(5, 2));
        assert!(!Mask::Causal.allows(2, 3) && Mask::Bidirectional.allows(2, 3));
        assert!(Mask::Local(2).allows(2, 4) && !Mask::Local(2).allows(1, 4));
    }
}
