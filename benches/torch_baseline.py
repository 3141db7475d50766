"""PyTorch baseline for `clp-gpu bench`: the same CLP math, timed stage by stage.

Shapes match `clp-gpu bench --scenario s1|s2` (fp16 storage, fp32 math). Stages:
  normalise          L2-normalise H_M and H_O rows (fp32)
  similarity         cosine GEMM Ĥ_M Ĥ_Oᵀ in fp32 (TF32 off, so it is the fp32 FMA rate),
                     in row blocks so an S2-size score matrix never exists whole
  similarity+top-k   the same with torch.topk per block
  combine            weights = selected cosines, Σ w e / Σ w over the gathered source rows
  dense              the original CLP in low rank: G = Ĥ_Oᵀ [E_O | 1], then Ĥ_M G / last column
and a large fp32 GEMM as the device's measured fp32 rate. Inputs are created on the device
(no host transfer in the timings). Prints a table, or JSON with --json.

Usage: python benches/torch_baseline.py --scenario s1 [--device cuda] [--missing N] [--json]
"""

import argparse
import json
import time

import torch

SCENARIOS = {
    "default": dict(missing=1500, overlap=1500, helper_dim=1600, source_dim=4096),
    "s1": dict(missing=25_000, overlap=25_000, helper_dim=1600, source_dim=4096),
    "s2": dict(missing=150_000, overlap=100_000, helper_dim=2048, source_dim=4096),
}


def timed(device, fn, repeat=3):
    """Best wall time of `repeat` runs (after one warm-up), synchronising the device."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    fn()
    sync()
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        sync()
        best = min(best, time.perf_counter() - t)
    return best, out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenario", choices=SCENARIOS, default="default")
    ap.add_argument("--missing", type=int)
    ap.add_argument("--top-k", type=int, default=64)
    ap.add_argument("--block", type=int, default=4096, help="missing rows per block")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    s = dict(SCENARIOS[a.scenario])
    if a.missing:
        s["missing"] = a.missing
    m, o, dh, ds, k = s["missing"], s["overlap"], s["helper_dim"], s["source_dim"], a.top_k
    dev = torch.device(a.device)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    g = torch.Generator(device=dev).manual_seed(0)
    hm = torch.randn(m, dh, device=dev, generator=g).half()
    ho = torch.randn(o, dh, device=dev, generator=g).half()
    eo = torch.randn(o, ds, device=dev, generator=g).half()
    res = {"device": str(dev), "name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
           "torch": torch.__version__, "shape": s, "top_k": k, "stages": {}}

    def stage(name, flops, fn):
        secs, out = timed(dev, fn, a.repeat)
        res["stages"][name] = {"seconds": secs, "gflops": flops / secs / 1e9 if flops else None}
        return out

    n = 8192 if dev.type == "cuda" else 1024
    x = torch.randn(n, n, device=dev, generator=g)
    stage("fp32 gemm (device rate)", 2 * n**3, lambda: x @ x)
    del x

    def normalise():
        return (torch.nn.functional.normalize(hm.float(), dim=1),
                torch.nn.functional.normalize(ho.float(), dim=1))
    hm_hat, ho_hat = stage("normalise", None, normalise)

    def similarity():
        for i in range(0, m, a.block):
            s_blk = hm_hat[i:i + a.block] @ ho_hat.T
        return s_blk
    stage("similarity", 2.0 * m * o * dh, similarity)

    def sim_topk():
        vals, idx = [], []
        for i in range(0, m, a.block):
            v, j = torch.topk(hm_hat[i:i + a.block] @ ho_hat.T, k, dim=1)
            vals.append(v)
            idx.append(j)
        return torch.cat(vals), torch.cat(idx)
    w, idx = stage("similarity+top-k", 2.0 * m * o * dh, sim_topk)

    def combine():
        out = []
        for i in range(0, m, a.block):
            wb, ib = w[i:i + a.block], idx[i:i + a.block]
            rows = eo[ib].float()                       # block × k × ds
            out.append(torch.einsum("bk,bkd->bd", wb, rows) / wb.sum(1, keepdim=True))
        return torch.cat(out)
    stage("combine", 2.0 * m * k * ds, combine)

    def dense():
        e1 = torch.cat([eo.float(), torch.ones(o, 1, device=dev)], dim=1)
        gram = ho_hat.T @ e1                           # dh × (ds + 1)
        out = []
        for i in range(0, m, a.block):
            num = hm_hat[i:i + a.block] @ gram
            out.append(num[:, :ds] / num[:, ds:])
        return torch.cat(out)
    stage("dense (original CLP, low rank)", 2.0 * (o + m) * dh * (ds + 1), dense)

    if a.json:
        print(json.dumps(res, indent=2))
        return
    print(f"{res['name']} ({res['device']}), torch {res['torch']}, shape {s}, top-k {k}")
    for name, r in res["stages"].items():
        gf = f"{r['gflops']:10.1f} GFLOP/s" if r["gflops"] else ""
        print(f"  {name:32s} {r['seconds']:9.4f} s {gf}")


if __name__ == "__main__":
    main()
