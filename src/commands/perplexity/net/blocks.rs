//! The blocks every family shares: norms, projections, activations and MLPs. Activations run on
//! `[batch, positions, features]` tensors; norms act on the last dimension.

use super::checkpoint::{Cfg, Weights};
use candle_core::{bail, DType, Result, Tensor, D};
use candle_nn::{Linear, Module};

/// A normalisation over the last dimension.
#[derive(Clone)]
pub enum Norm {
    /// `(x - mean) / sqrt(var + eps) * w + b` (`b` zero for bias-free LayerNorms).
    Layer { w: Tensor, b: Tensor, eps: f32 },
    /// `x / sqrt(mean(x²) + eps) * w` (Gemma's `1 + w` folded into `w` at load).
    Rms { w: Tensor, eps: f32 },
}

impl Norm {
    /// A LayerNorm `name.weight` with `name.bias` when the checkpoint has it.
    pub fn layer(wts: &Weights, name: &str, eps: f64) -> Result<Norm> {
        let w = wts.get(&format!("{name}.weight"))?;
        let b = match wts.opt(&format!("{name}.bias")) {
            Some(b) => b,
            None => w.zeros_like()?,
        };
        Ok(Norm::Layer {
            w,
            b,
            eps: eps as f32,
        })
    }

    /// An RMSNorm `name.weight`, plus `offset` (1 for Gemma's `1 + w`, else 0).
    pub fn rms(wts: &Weights, name: &str, eps: f64, offset: f64) -> Result<Norm> {
        let w = wts.get(&format!("{name}.weight"))?;
        let w = if offset != 0.0 { (w + offset)? } else { w };
        Ok(Norm::Rms { w, eps: eps as f32 })
    }

    /// Applies the norm over the last dimension of `x`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = x.contiguous()?;
        match self {
            Norm::Layer { w, b, eps } => candle_nn::ops::layer_norm(&x, w, b, *eps),
            Norm::Rms { w, eps } => candle_nn::ops::rms_norm(&x, w, *eps),
        }
    }
}

/// Applies an optional norm.
pub fn norm_opt(norm: &Option<Norm>, x: &Tensor) -> Result<Tensor> {
    match norm {
        Some(n) => n.forward(x),
        None => Ok(x.clone()),
    }
}

/// `name.weight` (`[out, in]`) with `name.bias` when present.
pub fn linear(wts: &Weights, name: &str) -> Result<Linear> {
    Ok(Linear::new(
        wts.get(&format!("{name}.weight"))?,
        wts.opt(&format!("{name}.bias")),
    ))
}

/// A GPT-2 `Conv1D` (`weight` stored `[in, out]`) as a linear layer.
pub fn conv1d(wts: &Weights, name: &str) -> Result<Linear> {
    let w = wts.get(&format!("{name}.weight"))?.t()?.contiguous()?;
    Ok(Linear::new(w, wts.opt(&format!("{name}.bias"))))
}

/// Splits a fused projection's output rows into consecutive parts of `sizes` rows each.
pub fn split_rows(l: &Linear, sizes: &[usize]) -> Result<Vec<Linear>> {
    let total: usize = sizes.iter().sum();
    if l.weight().dim(0)? != total {
        bail!(
            "a fused projection has {} rows where the config implies {total}",
            l.weight().dim(0)?
        );
    }
    let mut out = Vec::new();
    let mut start = 0;
    for &n in sizes {
        let w = l.weight().narrow(0, start, n)?.contiguous()?;
        let b = match l.bias() {
            Some(b) => Some(b.narrow(0, start, n)?.contiguous()?),
            None => None,
        };
        out.push(Linear::new(w, b));
        start += n;
    }
    Ok(out)
}

/// Splits a fused QKV projection laid out per head as `[heads, 3, head_dim]` rows (BLOOM,
/// GPT-NeoX, non-MQA GPTBigCode) into q, k and v.
pub fn split_per_head_qkv(l: &Linear, heads: usize, head_dim: usize) -> Result<[Linear; 3]> {
    let w = l.weight();
    let cols = w.dim(1)?;
    let w = w.reshape((heads, 3, head_dim, cols))?;
    let b = match l.bias() {
        Some(b) => Some(b.reshape((heads, 3, head_dim))?),
        None => None,
    };
    let part = |i: usize| -> Result<Linear> {
        let wi = w.narrow(1, i, 1)?.reshape((heads * head_dim, cols))?;
        let bi = match &b {
            Some(b) => Some(b.narrow(1, i, 1)?.reshape(heads * head_dim)?),
            None => None,
        };
        Ok(Linear::new(wi.contiguous()?, bi))
    };
    Ok([part(0)?, part(1)?, part(2)?])
}

/// The activation functions of the supported configs, by their transformers names.
#[derive(Clone, Copy, Debug)]
pub enum Act {
    /// Exact GELU (erf).
    Gelu,
    /// GELU, tanh approximation (`gelu_new`, `gelu_pytorch_tanh`, `gelu_fast`).
    GeluTanh,
    /// `x * sigmoid(1.702 x)`.
    QuickGelu,
    /// `x * sigmoid(x)`.
    Silu,
    /// `max(x, 0)`.
    Relu,
}

impl Act {
    /// The activation named `name` in a config.
    pub fn parse(name: &str) -> Result<Act> {
        Ok(match name {
            "gelu" => Act::Gelu,
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Act::GeluTanh,
            "quick_gelu" => Act::QuickGelu,
            "silu" | "swish" => Act::Silu,
            "relu" => Act::Relu,
            other => bail!("config.json: activation {other:?} is not supported by perplexity"),
        })
    }

    /// The activation named by the first of `keys` present, else `default`.
    pub fn from_cfg(cfg: Cfg, keys: &[&str], default: &str) -> Result<Act> {
        let name = keys.iter().find_map(|k| cfg.str(k)).unwrap_or(default);
        Act::parse(name)
    }

    /// Applies it.
    pub fn forward(self, x: &Tensor) -> Result<Tensor> {
        match self {
            Act::Gelu => x.gelu_erf(),
            Act::GeluTanh => x.gelu(),
            Act::QuickGelu => x * candle_nn::ops::sigmoid(&(x * 1.702)?)?,
            Act::Silu => x.silu(),
            Act::Relu => x.relu(),
        }
    }
}

/// The feed-forward block of a layer.
pub enum Mlp {
    /// `down(act(up(x)))`.
    Plain { up: Linear, down: Linear, act: Act },
    /// `down(act(gate(x)) * up(x))`.
    Gated {
        gate: Linear,
        up: Linear,
        down: Linear,
        act: Act,
    },
    /// Mixtral's sparse experts: each token goes to its `top_k` experts by router softmax,
    /// weights renormalised over the chosen ones.
    Moe {
        router: Linear,
        experts: Vec<Mlp>,
        top_k: usize,
    },
}

impl Mlp {
    /// Runs the block on `x` (`[batch, positions, hidden]`).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Mlp::Plain { up, down, act } => down.forward(&act.forward(&up.forward(x)?)?),
            Mlp::Gated {
                gate,
                up,
                down,
                act,
            } => down.forward(&(act.forward(&gate.forward(x)?)? * up.forward(x)?)?),
            Mlp::Moe {
                router,
                experts,
                top_k,
            } => moe(x, router, experts, *top_k),
        }
    }
}

/// Every expert runs on every token and is weighted by its routing weight (zero where it was
/// not chosen): simple and exact; a few times the compute of routing tokens to experts.
fn moe(x: &Tensor, router: &Linear, experts: &[Mlp], top_k: usize) -> Result<Tensor> {
    let probs = candle_nn::ops::softmax_last_dim(&router.forward(x)?)?;
    let dims = probs.dims().to_vec();
    let n_exp = experts.len();
    let rows: Vec<Vec<f32>> = probs.reshape(((), n_exp))?.to_vec2()?;
    let mut weights = Vec::with_capacity(rows.len() * n_exp);
    for row in rows {
        let mut order: Vec<usize> = (0..n_exp).collect();
        // Stable by index on ties, as torch.topk on the CPU.
        order.sort_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
        let chosen = &order[..top_k.min(n_exp)];
        let sum: f32 = chosen.iter().map(|&e| row[e]).sum();
        weights.extend((0..n_exp).map(|e| {
            if chosen.contains(&e) {
                row[e] / sum
            } else {
                0.0
            }
        }));
    }
    let weights = Tensor::from_vec(weights, dims, x.device())?.to_dtype(DType::F32)?;
    let mut out = x.zeros_like()?;
    for (e, expert) in experts.iter().enumerate() {
        let w = weights.narrow(D::Minus1, e, 1)?;
        out = (out + expert.forward(x)?.broadcast_mul(&w)?)?;
    }
    Ok(out)
}
