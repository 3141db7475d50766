"""Why OMP rows come out long, measured: variants of the OMP weighting on a source/helper pair.

For a pair of model directories (safetensors + tokenizer.json; e.g. the one
tests/python/trained_pair.py builds), matches tokens by their bytes (SentencePiece `▁` and
`<0xHH>`, GPT-2 byte-level characters; close to `--match canonical`), hides a seeded 10% of
the overlap and predicts the hidden tokens' source input rows from the rest, and also builds
every target-only token's row. For each variant it prints, on the hidden tokens, the mean
cosine to the true row, the relative L2 error ‖p − t‖ / ‖t‖ and the median norm ratio
‖p‖ / ‖t‖; on all built rows, the share whose L2 norm exceeds the largest overlap source row's
(what `apply` sends to the fallback) and the 99th percentile of ‖p‖ / that largest norm.

Variants (k atoms chosen greedily among the 4k most similar anchors, as `clp-gpu` does):
- unit: coefficients solved for the unit target against unit atoms, applied to raw source
  rows (clp-gpu before this study);
- raw: the same atoms, coefficients solved for the raw helper row against raw helper rows
  (tokensurgeon's formulation; x_j = x̂_j ‖t‖ / ‖h_j‖);
- raw-all: raw, atoms chosen among every anchor (tokensurgeon's candidate pool);
- ridge:l: raw with a Tikhonov term l · mean‖h_j‖² on the coefficients;
- affine:l, lle:l: the same atoms, coefficients that sum to 1 (locally linear embedding's
  weights) with a ridge l · the mean (affine) or the sum (lle, what clp-gpu uses) of the
  squared distances from the target to its atoms;
- centred:l: ridge on rows centred by the anchor means, the source mean added back;
- cap, rescale: raw, with rows longer than the bound shrunk to it (by a penalty on the
  row's norm, or by scaling).
The relation between the spaces is measured too: a least-squares linear map from the anchor
helper rows to their source rows, scored (R²) on the hidden rows. A synthetic pair with
E = H W + noise (noise 0, 0.3, 1 × the signal's RMS) shows what raw and unit coefficients do
when the relation is exactly, roughly, or hardly linear.

Usage: python tests/python/omp_study.py SOURCE_DIR HELPER_DIR [--atoms 8,10,32,64]
       python tests/python/omp_study.py --synthetic
Needs numpy and safetensors.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def gpt2_byte_map():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


def token_bytes(model_dir):
    """Token id -> bytes for every ordinary token (specials and added tokens left out)."""
    tj = json.loads((Path(model_dir) / "tokenizer.json").read_text())
    vocab = tj["model"]["vocab"]
    special = {t["content"] for t in tj.get("added_tokens", [])}
    text = json.dumps(tj.get("pre_tokenizer")) + json.dumps(tj.get("decoder"))
    byte_level = "ByteLevel" in text
    inv = gpt2_byte_map()
    out = {}
    for tok, i in vocab.items():
        if tok in special:
            continue
        if byte_level:
            try:
                out[i] = bytes(inv[c] for c in tok)
            except KeyError:
                continue
        elif len(tok) == 6 and tok.startswith("<0x") and tok.endswith(">"):
            out[i] = bytes([int(tok[3:5], 16)])
        else:
            out[i] = tok.replace("\u2581", " ").encode()
    return out


def embeddings(model_dir, with_head):
    """The input embedding; with `with_head`, the untied lm_head side by side (as `apply`
    computes one row over both, and bounds the norm of that row)."""
    from safetensors.numpy import load_file

    found = {}
    for f in sorted(Path(model_dir).glob("*.safetensors")):
        for name, t in load_file(str(f)).items():
            if name.endswith("embed_tokens.weight") or name == "lm_head.weight":
                found["head" if name == "lm_head.weight" else "embed"] = t.astype(np.float64)
    if "embed" not in found:
        sys.exit(f"{model_dir}: no embed_tokens.weight")
    if with_head and "head" in found:
        return np.hstack([found["embed"], found["head"]])
    return found["embed"]


def unit(a):
    n = np.linalg.norm(a, axis=-1, keepdims=True)
    return a / np.where(n == 0, 1, n)


def omp_select(t, atoms, k):
    """Greedy OMP on unit `atoms` (rows) for unit `t`: chosen indices (least squares refit)."""
    chosen, r = [], t.copy()
    for _ in range(min(k, len(atoms))):
        c = np.abs(atoms @ r)
        c[chosen] = -1
        j = int(np.argmax(c))
        if c[j] <= 1e-12:
            break
        chosen.append(j)
        a = atoms[chosen]
        x, *_ = np.linalg.lstsq(a.T, t, rcond=None)
        r = t - a.T @ x
    return chosen


def solve(a, t, ridge=0.0):
    """min ‖aᵀx − t‖² + ridge · mean‖a_j‖² · ‖x‖²."""
    g = a @ a.T
    lam = ridge * np.mean(np.diag(g))
    return np.linalg.solve(g + lam * np.eye(len(g)), a @ t)


def capped(a, e, t, bound):
    """Least squares of t on the rows of a, with the output row xᵀe kept within `bound`:
    (aaᵀ + μ eeᵀ) x = a t with the smallest μ ≥ 0 that does it (bisection on log μ)."""
    g, m, b = a @ a.T, e @ e.T, a @ t
    x = np.linalg.solve(g, b)
    if np.linalg.norm(x @ e) <= bound:
        return x
    lo, hi = -12.0, 12.0
    for _ in range(40):
        mid = (lo + hi) / 2
        x = np.linalg.solve(g + 10**mid * np.trace(g) / np.trace(m) * m, b)
        lo, hi = (mid, hi) if np.linalg.norm(x @ e) > bound else (lo, mid)
    return np.linalg.solve(g + 10**hi * np.trace(g) / np.trace(m) * m, b)


def affine(a, t, ridge, per_atom=True):
    """min ‖Σ x_j a_j − t‖² + λ ‖x‖² subject to Σ x_j = 1, with C the Gram matrix of the
    differences t − a_j (the weights of locally linear embedding); λ = ridge · tr(C)/k
    (per_atom) or ridge · tr(C) (locally linear embedding's convention, what clp-gpu uses)."""
    d = t - a
    c = d @ d.T
    lam = ridge * np.trace(c) / (len(c) if per_atom else 1)
    c += (lam + 1e-12 * max(np.trace(c), 1e-300)) * np.eye(len(c))
    w = np.linalg.solve(c, np.ones(len(c)))
    return w / w.sum()


def omp_rows(hm, ho, eo, k, variant, ridge=0.0):
    """Predicted source rows of helper rows `hm` from anchors (ho, eo)."""
    ho_u, hm_u = unit(ho), unit(hm)
    sims = hm_u @ ho_u.T
    n = min(max(4 * k, k), 256, len(ho))
    out = np.zeros((len(hm), eo.shape[1]))
    for r in range(len(hm)):
        if variant == "raw-all":
            cand = np.arange(len(ho))
        else:
            cand = np.argsort(-sims[r], kind="stable")[:n]
        sel = cand[omp_select(hm_u[r], ho_u[cand], k)]
        if variant == "unit":
            x = solve(ho_u[sel], hm_u[r])
        elif variant == "affine":
            x = affine(ho[sel], hm[r], ridge)
        elif variant == "lle":
            x = affine(ho[sel], hm[r], ridge, per_atom=False)
        elif variant == "centred":
            mh, me = ho.mean(0), eo.mean(0)
            x = solve(ho[sel] - mh, hm[r] - mh, ridge)
            out[r] = me + x @ (eo[sel] - me)
            continue
        elif variant == "cap":
            x = capped(ho[sel], eo[sel], hm[r], np.linalg.norm(eo, axis=1).max())
        elif variant == "rescale":
            x = solve(ho[sel], hm[r])
            x *= min(1.0, np.linalg.norm(eo, axis=1).max() / np.linalg.norm(x @ eo[sel]))
        else:
            x = solve(ho[sel], hm[r], ridge)
        out[r] = x @ eo[sel]
    return out


def softmax_rows(hm, ho, eo, k=10, temp=0.1):
    sims = unit(hm) @ unit(ho).T
    out = np.zeros((len(hm), eo.shape[1]))
    for r in range(len(hm)):
        idx = np.argsort(-sims[r], kind="stable")[:k]
        w = np.exp((sims[r, idx] - sims[r, idx[0]]) / temp)
        out[r] = w @ eo[idx] / w.sum()
    return out


def report(label, pred_hidden, truth, pred_all, max_norm):
    cos = np.sum(unit(pred_hidden) * unit(truth), axis=1)
    rel = np.linalg.norm(pred_hidden - truth, axis=1) / np.linalg.norm(truth, axis=1)
    ratio = np.linalg.norm(pred_hidden, axis=1) / np.linalg.norm(truth, axis=1)
    norms = np.linalg.norm(pred_all, axis=1) / max_norm
    over = np.mean(norms > 1.0 + 1e-6)
    print(
        f"| {label} | {cos.mean():.4f} | {rel.mean():.4f} | {np.median(ratio):.3f} | "
        f"{100 * over:.1f}% | {np.quantile(norms, 0.99):.2f} |"
    )


VARIANTS = []

HEADER = (
    "| variant | mean cos | rel L2 | median ‖p‖/‖t‖ | rows over the largest source norm | "
    "p99 ‖p‖ / largest |\n|---|---|---|---|---|---|"
)


def study(hm_all, ho, eo, hidden_h, hidden_e, atoms_list):
    max_norm = np.linalg.norm(eo, axis=1).max()
    both = np.vstack([hidden_h, hm_all])
    print(HEADER)
    report("softmax k=10 T=0.1", softmax_rows(hidden_h, ho, eo), hidden_e, softmax_rows(both, ho, eo), max_norm)
    for k in atoms_list:
        for spec in VARIANTS:
            v, _, lam = spec.partition(":")
            lam = float(lam or 0)
            label = f"omp k={k} {spec}"
            vv = "raw" if v == "ridge" else v
            p_all = omp_rows(both, ho, eo, k, vv, lam)
            report(label, p_all[: len(hidden_h)], hidden_e, p_all, max_norm)


def linear_r2(ho, eo, hh, he):
    x = np.hstack([ho, np.ones((len(ho), 1))])
    w, *_ = np.linalg.lstsq(x, eo, rcond=None)
    p = np.hstack([hh, np.ones((len(hh), 1))]) @ w
    return 1 - np.sum((p - he) ** 2) / np.sum((he - he.mean(0)) ** 2)


def real_pair(source, helper, atoms_list, seed):
    sb, hb = token_bytes(source), token_bytes(helper)
    es, eh = embeddings(source, True), embeddings(helper, False)
    by_bytes = {}
    for i, b in sorted(sb.items()):
        by_bytes.setdefault(b, i)
    pairs = sorted((h, by_bytes[b]) for h, b in hb.items() if b in by_bytes)
    missing = sorted(h for h, b in hb.items() if b not in by_bytes)
    rng = np.random.default_rng(seed)
    hide = rng.permutation(len(pairs))[: len(pairs) // 10]
    hidden = [pairs[i] for i in sorted(hide)]
    anchors = [p for i, p in enumerate(pairs) if i not in set(hide)]
    ho = eh[[h for h, _ in anchors]]
    eo = es[[s for _, s in anchors]]
    hh = eh[[h for h, _ in hidden]]
    he = es[[s for _, s in hidden]]
    print(f"{len(pairs)} overlapping tokens ({len(hidden)} hidden), {len(missing)} target-only")
    print(f"linear map helper -> source, R² on the hidden rows: {linear_r2(ho, eo, hh, he):.3f}")
    print(
        f"source rows ({es.shape[1]} columns: input embedding and lm_head) norms: median {np.median(np.linalg.norm(eo, axis=1)):.3f}, "
        f"max {np.linalg.norm(eo, axis=1).max():.3f}; helper: median "
        f"{np.median(np.linalg.norm(ho, axis=1)):.3f}, max {np.linalg.norm(ho, axis=1).max():.3f}"
    )
    study(eh[missing], ho, eo, hh, he, atoms_list)


def synthetic(atoms_list, seed):
    rng = np.random.default_rng(seed)
    o, m, dh, ds = 2000, 400, 64, 96
    # Anisotropic helper rows with a common mean, like trained embeddings; norms spread.
    mean = rng.normal(size=dh) * 0.5
    h = (rng.normal(size=(o + m, dh)) * np.linspace(2, 0.2, dh) + mean) * rng.uniform(0.3, 1.5, (o + m, 1))
    w = rng.normal(size=(dh, ds)) / np.sqrt(dh)
    signal = h @ w
    rms = np.sqrt(np.mean(signal**2))
    for noise in [0.0, 0.3, 1.0]:
        e = signal + noise * rms * rng.normal(size=signal.shape)
        ho, eo, hh, he = h[:o], e[:o], h[o:], e[o:]
        print(f"\nsynthetic E = H W + {noise} · RMS noise (R² {linear_r2(ho, eo, hh, he):.3f})")
        study(np.zeros((0, dh)), ho, eo, hh, he, atoms_list)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("source", nargs="?")
    ap.add_argument("helper", nargs="?")
    ap.add_argument("--atoms", default="8,10,32,64")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--variants", default="unit,raw,raw-all,ridge:0.01,ridge:0.1,cap,rescale,affine:0.001,affine:0.1,centred:0,centred:0.1",
                    help="comma separated; NAME:RIDGE for ridge, affine, lle and centred")
    ap.add_argument("--synthetic", action="store_true")
    a = ap.parse_args()
    atoms = [int(x) for x in a.atoms.split(",")]
    VARIANTS[:] = a.variants.split(",")
    if a.synthetic:
        synthetic(atoms, a.seed)
    else:
        real_pair(a.source, a.helper, atoms, a.seed)


if __name__ == "__main__":
    main()
