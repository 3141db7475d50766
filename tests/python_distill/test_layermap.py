"""The layer map: TinyBERT's uniform rule and the copied-layers rule."""

import json

import pytest

from clp_gpu.distill.layermap import layer_map, recorded_kept_layers


def test_uniform_12_to_6():
    m = layer_map(6, 12)
    assert m.hidden == [(0, 0), (1, 2), (2, 4), (3, 6), (4, 8), (5, 10), (6, 12)]
    assert m.attention == [(0, 1), (1, 3), (2, 5), (3, 7), (4, 9), (5, 11)]
    assert m.kept is None


def test_bistil_kept_layers_give_the_uniform_map():
    # BiStil keeps teacher layers 1, 3, ..., 11 for r = 2: the copied-layers rule agrees.
    m = layer_map(6, 12, kept=[1, 3, 5, 7, 9, 11])
    assert m.hidden == layer_map(6, 12).hidden
    assert m.attention == layer_map(6, 12).attention


def test_shrink_keep_every_2():
    # `shrink --keep-every 2` on 12 layers keeps 0, 2, ..., 10 and the last one, 11.
    m = layer_map(7, 12, kept=[0, 2, 4, 6, 8, 10, 11])
    assert m.hidden == [(0, 0), (1, 1), (2, 3), (3, 5), (4, 7), (5, 9), (6, 11), (7, 12)]
    assert m.attention == [(0, 0), (1, 2), (2, 4), (3, 6), (4, 8), (5, 10), (6, 11)]


def test_ratio_not_whole():
    m = layer_map(2, 5)
    assert m.hidden == [(0, 0), (1, 2), (2, 5)]
    assert m.attention == [(0, 1), (1, 4)]
    assert layer_map(3, 3).attention == [(0, 0), (1, 1), (2, 2)]


def test_bad_maps():
    with pytest.raises(ValueError, match="more layers"):
        layer_map(4, 2)
    with pytest.raises(ValueError, match="names 2 teacher"):
        layer_map(3, 12, kept=[0, 1])
    with pytest.raises(ValueError, match="increasing"):
        layer_map(2, 12, kept=[3, 3])
    with pytest.raises(ValueError, match="increasing"):
        layer_map(2, 4, kept=[1, 4])


def test_recorded_kept_layers(tmp_path):
    assert recorded_kept_layers(tmp_path) is None
    (tmp_path / "distill_report.json").write_text(json.dumps({"layer_map": {"kept": [0, 2]}}))
    assert recorded_kept_layers(tmp_path) == [0, 2]
    (tmp_path / "shrink_report.json").write_text(json.dumps({"layers_kept": [1, 3, 5]}))
    assert recorded_kept_layers(tmp_path) == [1, 3, 5]
