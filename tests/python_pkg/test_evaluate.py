"""evaluate, inspect, devices: the reports they return."""

import math

import clp_gpu


def test_evaluate_returns_one_dict_per_method(pair):
    source, helper = pair
    scores = clp_gpu.evaluate(source, helper, weighting=["clp", "softmax"], top_k=["all", 10],
                              temperature=0.1, backend="cpu", progress=False)
    assert isinstance(scores, list) and all(isinstance(s, dict) for s in scores)
    methods = [s["method"] for s in scores]
    assert len(methods) == len(set(methods)) == 2 + 3, methods  # two baselines, clp all/10, softmax 10
    assert sorted(s["rank"] for s in scores) == list(range(1, len(scores) + 1))
    for s in scores:
        for key in ("mean", "p10", "p50", "p90", "rel_l2", "norm_ratio", "seconds"):
            assert math.isfinite(s[key]), (s["method"], key)


def test_evaluate_with_the_clis_defaults(pair):
    source, helper = pair
    scores = clp_gpu.evaluate(source, helper, backend="cpu", progress=False)
    assert any(s["method"].startswith("omp") for s in scores)


def test_inspect_counts_the_overlap(pair):
    source, helper = pair
    report = clp_gpu.inspect(source, helper, examples=2)
    counts = report["matching"]["counts"]
    assert counts["exact"] == 121 and counts["missing"] == 40
    assert len(report["matching"]["examples"]["missing"]) == 2


def test_devices_is_a_list_of_dicts():
    adapters = clp_gpu.devices()
    assert isinstance(adapters, list)
    for a in adapters:
        assert isinstance(a["name"], str) and a["max_storage_binding_bytes"] > 0
