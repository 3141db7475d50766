"""distill-task's parts on tiny tensors and models: the loss against hand-computed values, the
lottery-ticket mask (exactly K entries, the largest moves) and phase B (nothing outside the mask
moves, bit for bit), the JSONL checks, subword alignment, and the metrics."""

import json
import math
from types import SimpleNamespace

import pytest
import torch

from clp_gpu.distill.layermap import LayerMap
from clp_gpu.distill.task import TaskError, data, metrics, sparse, train
from clp_gpu.distill.task.loss import Weights, task_loss


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# ---------------------------------------------------------------- loss


def _hand_loss(task, w, s, t, labels, mask, lmap, order):
    """The phase-2 loss written out entry by entry in float64."""
    B, S = mask.shape
    real = [(b, i) for b in range(B) for i in range(S) if mask[b, i]]
    hid = 0.0
    for si, ti in lmap.hidden:
        a, c = s.hidden_states[si].double(), t.hidden_states[ti].double()
        W = a.shape[-1]
        hid += sum(float((a[b, i, k] - c[b, i, k]) ** 2) for b, i in real for k in range(W)) / (len(real) * W)
    hid /= len(lmap.hidden)
    att = 0.0
    for si, ti in lmap.attention:
        a, c = s.attentions[si].double(), t.attentions[ti].double()
        num = cnt = 0.0
        for b in range(B):
            for h in range(a.shape[1]):
                for q in range(S):
                    for k in range(S):
                        if mask[b, q] and mask[b, k] and c[b, h, q, k] != 0:
                            num += float((a[b, h, q, k] - c[b, h, q, k]) ** 2)
                            cnt += 1
        att += num / cnt
    att /= len(lmap.attention)
    sl, tl = s.logits.double(), t.logits.double()
    pos = ([(b, i) for b in range(B) for i in range(S) if labels[b, i] != -100]
           if task == "token" else [(b,) for b in range(B)])
    soft = hard = 0.0
    T = w.temperature
    for p in pos:
        zs, zt = sl[p], tl[p][order]
        ls = [float(x) for x in zs / T]
        lt = [float(x) for x in zt / T]
        norm_s = math.log(sum(math.exp(x) for x in ls))
        norm_t = sum(math.exp(x) for x in lt)
        soft -= sum(math.exp(lt[c]) / norm_t * (ls[c] - norm_s) for c in range(len(ls)))
        y = int(labels[p])
        hard -= float(zs[y]) - math.log(sum(math.exp(float(x)) for x in zs))
    soft /= len(pos)
    hard /= len(pos)
    return {"hidden_mse": hid, "attention_mse": att, "soft_ce": soft, "label_ce": hard}


def _outputs(g, B, S, W, C, n_states, heads, token):
    states = [torch.randn(B, S, W, generator=g) for _ in range(n_states)]
    attn = [torch.softmax(torch.randn(B, heads, S, S, generator=g), -1) for _ in range(n_states - 1)]
    logits = torch.randn(B, S, C, generator=g) * 2 if token else torch.randn(B, C, generator=g) * 2
    return SimpleNamespace(hidden_states=states, attentions=attn, logits=logits)


@pytest.mark.parametrize("task", ["sequence", "token"])
def test_loss_terms_match_hand_computed(task):
    g = torch.Generator().manual_seed(7)
    B, S, W, C = 2, 4, 3, 3
    token = task == "token"
    s = _outputs(g, B, S, W, C, 3, 2, token)
    t = _outputs(g, B, S, W, C, 5, 2, token)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])
    t.attentions[3][1, :, :, 3] = 0.0  # the teacher masked padding keys
    t.attentions[1][1, :, :, 3] = 0.0
    labels = (torch.tensor([[-100, 2, 0, -100], [-100, 1, -100, -100]]) if token
              else torch.tensor([2, 0]))
    lmap = LayerMap([(0, 0), (1, 2), (2, 4)], [(0, 1), (1, 3)])
    order = torch.tensor([2, 0, 1])
    w = Weights(hidden=0.5, attention=2.0, logits=1.5, labels=0.25, temperature=2.0)
    total, parts = task_loss(task, w, s, t, labels, mask, lmap, None, order)
    want = _hand_loss(task, w, s, t, labels, mask, lmap, order)
    for k, v in want.items():
        assert parts[k] == pytest.approx(v, rel=1e-5, abs=1e-7), k
    expect = 0.5 * want["hidden_mse"] + 2 * want["attention_mse"] + 1.5 * want["soft_ce"] + 0.25 * want["label_ce"]
    assert float(total) == pytest.approx(expect, rel=1e-5)


def test_loss_leaves_out_zero_weight_terms():
    g = torch.Generator().manual_seed(1)
    s = _outputs(g, 2, 3, 2, 2, 2, 1, False)
    total, parts = task_loss("sequence", Weights(0, 0, 0, 1), s, None, torch.tensor([0, 1]),
                             torch.ones(2, 3, dtype=torch.long))
    assert set(parts) == {"label_ce"}
    assert float(total) == pytest.approx(float(torch.nn.functional.cross_entropy(s.logits, torch.tensor([0, 1]))))


# ---------------------------------------------------------------- sparse fine-tuning


def _tiny_model(seed=0):
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=40, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=16, num_labels=3,
                     hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    return BertForSequenceClassification(cfg)


def _tiny_data(n=48, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = [[2] + torch.randint(5, 40, (int(torch.randint(3, 9, (1,), generator=g)),), generator=g).tolist() + [3]
           for _ in range(n)]
    labels = [int(x[1]) % 3 for x in ids]
    return data.Encoded(ids, None, labels)


def _step(model):
    def step(batch):
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        return task_loss("sequence", Weights(0, 0, 0, 1), out, None, batch["labels"],
                         batch["attention_mask"])
    return step


def test_lottery_ticket_mask_and_phase_b_bit_for_bit():
    from accelerate import Accelerator

    acc = Accelerator(cpu=True)
    model = _tiny_model()
    body, head, frozen = sparse.split_params(model, ["classifier.weight", "classifier.bias"])
    assert head == ["classifier.weight", "classifier.bias"]
    assert frozen and all("LayerNorm" in n for n in frozen)
    for n, p in model.named_parameters():
        p.requires_grad_(n not in frozen)
    theta0 = sparse.snapshot(model, body + head)
    enc = _tiny_data()
    sched = train.Schedule(steps=12, lr=1e-2, weight_decay=0.1)
    train.train(acc, model, enc, 0, "sequence", sched, 8, 0, _step(model), "A", True)
    moved = {n: (p.detach() - theta0[n]).abs() for n, p in model.named_parameters() if n in body}
    masks, k = sparse.select_mask(model, theta0, body, 0.05)
    total = sum(theta0[n].numel() for n in body)
    assert k == int(0.05 * total)
    assert sum(int(m.sum()) for m in masks.values()) == k
    kept = torch.cat([moved[n][masks[n]] for n in body])
    dropped = torch.cat([moved[n][~masks[n]] for n in body])
    assert float(kept.min()) >= float(dropped.max())  # the K largest moves, globally
    sparse.reset(model, theta0)
    for n, p in model.named_parameters():
        if n in theta0:
            assert torch.equal(p.detach(), theta0[n])
    frozen_before = {n: p.detach().clone() for n, p in model.named_parameters() if n in frozen}
    train.train(acc, model, enc, 0, "sequence", sched, 8, 1, _step(model), "B", True, masks=masks)
    params = dict(model.named_parameters())
    changed_inside = 0
    for n in body:
        now, was = params[n].detach(), theta0[n]
        # outside the mask: the very same bits as θ0
        assert torch.equal(now[~masks[n]].view(torch.int32), was[~masks[n]].view(torch.int32)), n
        changed_inside += int((now[masks[n]] != was[masks[n]]).sum())
    assert changed_inside > k // 2
    for n in frozen:
        assert torch.equal(params[n].detach(), frozen_before[n])
    assert not torch.equal(params["classifier.weight"].detach(), theta0["classifier.weight"])
    sparse.check_untouched(model, theta0, masks)


def test_mask_ties_give_exactly_k_lowest_indices_first():
    lin = torch.nn.Linear(4, 3, bias=False)
    torch.nn.init.zeros_(lin.weight)  # so every move below is exact
    theta0 = sparse.snapshot(lin, ["weight"])
    with torch.no_grad():
        lin.weight.add_(torch.tensor([[1.0, 2.0, 2.0, 0.5], [2.0, 2.0, 0.0, 3.0], [0.0, 0.0, 0.0, 0.0]]))
    masks, k = sparse.select_mask(lin, theta0, ["weight"], 4 / 12)
    assert k == 4
    want = torch.zeros(12, dtype=torch.bool)
    want[[7, 1, 2, 4]] = True  # 3.0, then three of the four 2.0s by lowest index (1, 2, 4)
    assert torch.equal(masks["weight"].flatten(), want)
    masks, k = sparse.select_mask(lin, theta0, ["weight"], 1.0)
    assert k == 12 and bool(masks["weight"].all())


@pytest.mark.parametrize("density", [0.0, -0.1, 1.5, float("nan")])
def test_density_outside_unit_interval(density):
    lin = torch.nn.Linear(2, 2)
    with pytest.raises(TaskError, match="--density"):
        sparse.select_mask(lin, sparse.snapshot(lin, ["weight"]), ["weight"], density)


def test_diff_applies_exactly_and_is_sparse():
    model = _tiny_model(1)
    body, head, _ = sparse.split_params(model, ["classifier.weight", "classifier.bias"])
    theta0 = sparse.snapshot(model, body + head)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n in body:
                p.add_(torch.randn_like(p) * 1e-3)
    masks, k = sparse.select_mask(model, theta0, body, 0.1)
    sparse.reset(model, theta0)
    params = dict(model.named_parameters())
    with torch.no_grad():
        for n, m in masks.items():
            params[n][m] = torch.randn(int(m.sum())) / 3  # arbitrary bits
    tensors = sparse.diff_tensors(model, masks, head)
    assert sum(v.numel() for key, v in tensors.items() if key.endswith(sparse.IDX)) == k
    fresh = _tiny_model(1)
    sparse.apply_to_model(fresh, tensors, "diff")
    for (n, a), (_, b) in zip(model.state_dict().items(), fresh.state_dict().items()):
        assert torch.equal(a, b), n


# ---------------------------------------------------------------- data


def _jsonl(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write((r if isinstance(r, str) else json.dumps(r)) + "\n")
    return path


@pytest.mark.parametrize("rows, pattern", [
    ([{"text": "a b", "label": "x"}, {"text": "c"}], r'line 2: no "label"'),
    ([{"tokens": ["a", "b"], "tags": ["O"]}], r"line 1: 2 tokens but 1 tags"),
    ([{"tokens": ["a"]}], r'line 1: no "tags"'),
    ([{"text": "a", "text_pair": "b", "label": 1}, {"text": "c", "label": 0}], r"text_pair"),
    (["{not json"], r"line 1: not JSON"),
    ([{"sentence": "a", "label": 1}], r'neither "text"'),
    ([], r"no records"),
])
def test_bad_task_files(tmp_path, rows, pattern):
    f = _jsonl(tmp_path / "t.jsonl", rows)
    with pytest.raises(TaskError, match=pattern) as e:
        data.read_task_file(f)
    assert "\n" not in str(e.value) and "t.jsonl" in str(e.value)


def test_labels_sorted_and_unseen_at_eval(tmp_path):
    tr = data.read_task_file(_jsonl(tmp_path / "train.jsonl", [
        {"text": "a", "label": 10}, {"text": "b", "label": 2}, {"text": "c", "label": 2}]))
    assert data.label_names(tr) == ["2", "10"]
    ev = data.read_task_file(_jsonl(tmp_path / "ev.jsonl", [{"text": "a", "label": 3}]))
    with pytest.raises(TaskError, match=r"ev.jsonl record 1: label '3' is not in the training labels \(2, 10\)"):
        data.check_labels(ev, data.label_names(tr), tr)


def test_token_alignment_first_subword_only(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "sch", "##nee", "ball", "##s", "a"])}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]")
    f = data.read_task_file(_jsonl(tmp_path / "ner.jsonl", [
        {"tokens": ["schnee", "balls", "a"], "tags": ["B-X", "I-X", "O"]}]))
    names = data.label_names(f)
    assert names == ["B-X", "I-X", "O"]
    e = data.encode(f, fast, names, 32)
    assert e.input_ids[0] == [2, 4, 5, 6, 7, 8, 3]
    assert e.labels[0] == [-100, 0, -100, 1, -100, 2, -100]
    assert e.first[0] == [1, 3, 5]
    cut = data.encode(f, fast, names, 4)  # [CLS] sch ##nee [SEP]: "balls" and "a" cut off
    assert cut.first[0] == [1, -1, -1]
    batch = data.collate(e, [0], 0, data.TOKEN)
    assert batch["labels"].tolist() == [e.labels[0]]


# ---------------------------------------------------------------- metrics


def test_span_f1_by_hand():
    names = ["B-LOC", "B-PER", "I-LOC", "I-PER", "O"]
    assert metrics.is_bio(names)
    assert metrics.spans(["B-PER", "I-PER", "O", "I-LOC", "B-LOC", "O"]) == {
        (0, 2, "PER"), (3, 4, "LOC"), (4, 5, "LOC")}
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["O", "B-LOC", "I-LOC", "O"]]
    pred = [["B-PER", "I-PER", "O", "O"], ["O", "B-LOC", "O", "O"]]
    # gold spans: PER 0-2, LOC 3-4, LOC 1-3; predicted: PER 0-2 (right), LOC 1-2 (wrong end)
    assert metrics.span_f1(gold, pred) == pytest.approx(2 * 1 / (3 + 2))
    ids = {n: i for i, n in enumerate(names)}
    g = [[ids[t] for t in row] for row in gold]
    p = [[ids[t] for t in pred[0]], [ids[t] for t in pred[1][:2]] + [None, None]]
    s = metrics.token_scores(g, p, names)
    assert s["f1"] == pytest.approx(0.4) and s["accuracy"] == pytest.approx(6 / 8)
    assert s["f1_kind"] == "entity span F1"


def test_macro_f1_by_hand():
    gold, pred = [0, 0, 1, 1, 2], [0, 1, 1, 1, 0]
    # class 0: tp 1 fp 1 fn 1 -> 0.5; class 1: tp 2 fp 1 fn 0 -> 0.8; class 2: tp 0 fn 1 -> 0
    s = metrics.sequence_scores(gold, pred, 3)
    assert s["accuracy"] == pytest.approx(3 / 5)
    assert s["f1"] == pytest.approx((0.5 + 0.8 + 0.0) / 3)
