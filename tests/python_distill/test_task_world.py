"""A tiny synthetic bilingual task world for the ``distill-task`` tests (built in seconds).

Two made-up languages S and T share one set of concepts and differ in spelling (a quarter of
the words are spelled the same, as in ``tests/python/trained_pair.py``); T's own words use
umlauts and sharp s. A sentence is a topic's sentence: each word is, with some probability, a
keyword of its topic, else a common word. Tasks:

- sequence classification: the label is the sentence's topic (4 topics);
- token classification: every keyword is tagged ``B-<topic>`` (two keywords in a row make
  ``B-x I-x``), every other word ``O``.

Models (BERT, word-level tokenizers, so each word is one token):

- ``base_teacher``: 4 layers, width 32, random weights with *aligned* word embeddings (a T
  word's row equals its S translation's row: a "multilingual" model); its vocabulary also
  holds words of a third language that the student lacks.
- ``phase1``: the student BiStil's phase 1 would give: teacher layers 1 and 3 copied (recorded
  in ``shrink_report.json`` as ``clp-gpu shrink`` does), the embedding rows of the student's
  own (smaller, differently ordered) vocabulary.
- ``task_teacher``: the base teacher fine-tuned here on plenty of clean S data, word
  embeddings frozen so T stays aligned: a good multilingual task teacher.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import torch

TOPICS = ["arts", "food", "sport", "trade"]
KEYWORDS = 12  # per topic
COMMON = 30
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def _words(rng, n, onsets, vowels, taken):
    out = []
    while len(out) < n:
        w = "".join(rng.choice(onsets) + rng.choice(vowels) for _ in range(rng.randint(1, 3)))
        if len(w) >= 2 and w not in taken:
            taken.add(w)
            out.append(w)
    return out


def languages(seed=0):
    """(S spellings, T spellings, third-language words); concept c is keyword k of topic t
    when c = t * KEYWORDS + k, common word j when c = 4 * KEYWORDS + j."""
    rng = random.Random(seed)
    n = len(TOPICS) * KEYWORDS + COMMON
    taken = set()
    s = _words(rng, n, list("bdfgklmnprstv"), ["a", "e", "i", "o", "u"], taken)
    t = _words(rng, n, list("bdfgklmnrstwz") + ["sch"], ["ä", "ö", "ü", "ei", "ß", "au"], taken)
    for c in range(0, n, 4):  # a quarter spelled alike
        t[c] = s[c]
    u = _words(rng, 40, list("hjxqy"), ["y", "aa", "oo"], taken)
    return s, t, u


def sample(rng, topic, length=(6, 10), p_key=0.35):
    """A concept sequence of a topic."""
    out = []
    for _ in range(rng.randint(*length)):
        if rng.random() < p_key:
            out.append(topic * KEYWORDS + rng.randrange(KEYWORDS))
        else:
            out.append(len(TOPICS) * KEYWORDS + rng.randrange(COMMON))
    return out


def tags_of(concepts):
    tags, prev = [], None
    for c in concepts:
        if c < len(TOPICS) * KEYWORDS:
            t = TOPICS[c // KEYWORDS]
            tags.append(("I-" if prev == t else "B-") + t)
            prev = t
        else:
            tags.append("O")
            prev = None
    return tags


def write_task(path, spell, n, seed, kind="sequence", noise=0.0):
    """n records in JSONL; ``noise``: share of sequence labels replaced by a random other one."""
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as f:
        for _ in range(n):
            topic = rng.randrange(len(TOPICS))
            cs = sample(rng, topic)
            words = [spell[c] for c in cs]
            if kind == "sequence":
                label = topic
                if rng.random() < noise:
                    label = rng.choice([t for t in range(len(TOPICS)) if t != topic])
                rec = {"text": " ".join(words), "label": TOPICS[label]}
            else:
                rec = {"tokens": words, "tags": tags_of(cs)}
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    return Path(path)


def write_tokenizer(out, vocab_list):
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(vocab_list)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                                   cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
    fast.save_pretrained(out)
    return fast


def bert_config(vocab_size, layers, width=32, heads=4, positions=40):
    from transformers import BertConfig

    return BertConfig(vocab_size=vocab_size, hidden_size=width, num_hidden_layers=layers,
                      num_attention_heads=heads, intermediate_size=2 * width,
                      max_position_embeddings=positions, type_vocab_size=2, pad_token_id=0,
                      hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


def build_models(root, seed=0, width=32, layers=4):
    """Writes base_teacher/ (``layers`` layers) and phase1/ (its odd layers) under ``root``;
    returns their paths and the languages."""
    from transformers import BertModel

    root = Path(root)
    s, t, u = languages(seed)
    t_vocab = SPECIALS + sorted(set(s) | set(t) | set(u))
    s_vocab = SPECIALS + sorted(set(s) | set(t), key=lambda w: (len(w), w))
    torch.manual_seed(seed)
    heads = max(4, width // 64)
    teacher = BertModel(bert_config(len(t_vocab), layers, width, heads), add_pooling_layer=True)
    emb = teacher.embeddings.word_embeddings.weight
    idx = {w: i for i, w in enumerate(t_vocab)}
    with torch.no_grad():
        emb.mul_(3.0)  # word identity should dominate position at this size
        for a, b in zip(s, t):
            emb[idx[b]] = emb[idx[a]]
    teacher.config.architectures = ["BertModel"]
    teacher.save_pretrained(root / "base_teacher")
    write_tokenizer(root / "base_teacher", t_vocab)
    # phase-1 student: layers 1, 3, ... (BiStil's for r = 2), the student's vocabulary rows
    kept = list(range(1, layers, 2))
    student = BertModel(bert_config(len(s_vocab), len(kept), width, heads), add_pooling_layer=True)
    sd = teacher.state_dict()
    new = {}
    for k, v in sd.items():
        if k.startswith("encoder.layer."):
            i = int(k.split(".")[2])
            if i in kept:
                new[k.replace(f"encoder.layer.{i}.", f"encoder.layer.{(i - 1) // 2}.")] = v
        elif k == "embeddings.word_embeddings.weight":
            new[k] = v[torch.tensor([idx[w] for w in s_vocab])]
        else:
            new[k] = v
    student.load_state_dict(new)
    student.save_pretrained(root / "phase1")
    write_tokenizer(root / "phase1", s_vocab)
    (root / "phase1" / "shrink_report.json").write_text(json.dumps({"layers_kept": kept}))
    return root / "base_teacher", root / "phase1", (s, t, u)


def train_task_teacher(root, base, train_file, steps=300, lr=3e-3, seed=0, warmup=0):
    """Fine-tunes the base teacher on ``train_file`` (sequence task), word embeddings frozen;
    saves root/task_teacher (BertForSequenceClassification with the topic names)."""
    from transformers import AutoTokenizer, BertForSequenceClassification

    torch.manual_seed(seed)
    tok = AutoTokenizer.from_pretrained(base)
    model = BertForSequenceClassification.from_pretrained(
        base, num_labels=len(TOPICS), id2label=dict(enumerate(TOPICS)),
        label2id={n: i for i, n in enumerate(TOPICS)})
    model.bert.embeddings.word_embeddings.weight.requires_grad_(False)
    recs = [json.loads(x) for x in open(train_file, encoding="utf-8")]
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: min(1.0, (i + 1) / (warmup + 1)))
    g = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(steps):
        rows = torch.randint(len(recs), (32,), generator=g).tolist()
        enc = tok([recs[r]["text"] for r in rows], padding=True, return_tensors="pt")
        y = torch.tensor([TOPICS.index(recs[r]["label"]) for r in rows])
        loss = torch.nn.functional.cross_entropy(model(**enc).logits, y)
        loss.backward()
        opt.step()
        sched.step()
        opt.zero_grad()
    model.save_pretrained(root / "task_teacher")
    tok.save_pretrained(root / "task_teacher")
    return root / "task_teacher"


def accuracy(model_dir, file):
    """Accuracy of a saved sequence classifier on a JSONL file (an independent check of the
    report's figures)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    recs = [json.loads(x) for x in open(file, encoding="utf-8")]
    right = 0
    with torch.no_grad():
        for i in range(0, len(recs), 64):
            chunk = recs[i:i + 64]
            enc = tok([r["text"] for r in chunk], padding=True, return_tensors="pt")
            pred = model(**enc).logits.argmax(-1).tolist()
            right += sum(model.config.id2label[p] == r["label"] for p, r in zip(pred, chunk))
    return right / len(recs)


def test_world_is_bilingual(tmp_path):
    """The world's premise: T words are one-to-one translations, S and T differ for 3/4."""
    s, t, u = languages()
    assert len(set(s)) == len(s) and len(set(t)) == len(t)
    differ = sum(a != b for a, b in zip(s, t))
    assert differ == len(s) - len(range(0, len(s), 4))
    assert not set(u) & (set(s) | set(t))


def _measure():
    """A larger run of the comparison the end-to-end test asserts, for README's figures:
    python tests/python_distill/test_task_world.py OUT [--width W] [--layers L] ..."""
    import argparse
    import sys
    import time

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import conftest  # noqa: F401  (the checkout's clp_gpu when none is installed)
    from clp_gpu.distill.task import distill_task

    a = argparse.ArgumentParser()
    a.add_argument("out")
    a.add_argument("--width", type=int, default=128)
    a.add_argument("--layers", type=int, default=12)
    a.add_argument("--teacher-steps", type=int, default=400)
    a.add_argument("--teacher-lr", type=float, default=1e-3)
    a.add_argument("--teacher-warmup", type=int, default=0)
    a.add_argument("--train", type=int, default=240)
    a.add_argument("--noise", type=float, default=0.3)
    a.add_argument("--lr", type=float, default=1e-3)
    a.add_argument("--epochs", type=float, default=10)
    a.add_argument("--density", type=float, default=0.08)
    a.add_argument("--threads", type=int, default=1)
    args = a.parse_args()
    torch.set_num_threads(args.threads)
    root = Path(args.out)
    root.mkdir(parents=True)
    t0 = time.perf_counter()
    base, phase1, (s, t, _) = build_models(root, width=args.width, layers=args.layers)
    write_task(root / "teacher_train.jsonl", s, 1500, 1)
    teacher = train_task_teacher(root, base, root / "teacher_train.jsonl", args.teacher_steps,
                                 args.teacher_lr, warmup=args.teacher_warmup)
    print(f"task teacher trained in {time.perf_counter() - t0:.1f} s")
    write_task(root / "train.jsonl", s, args.train, 2, noise=args.noise)
    write_task(root / "eval_S.jsonl", s, 300, 3)
    write_task(root / "eval_T.jsonl", t, 300, 3)
    common = dict(student=phase1, train=root / "train.jsonl",
                  eval=[root / "eval_S.jsonl", root / "eval_T.jsonl"], lr=args.lr, batch_size=16,
                  full_epochs=args.epochs, sparse_epochs=args.epochs, density=args.density,
                  quiet=True, cpu=True)
    runs = {"distilled": distill_task(task_teacher=teacher, out=root / "distilled", **common),
            "no teacher": distill_task(out=root / "alone", hidden_weight=0, attention_weight=0,
                                       logit_weight=0, label_weight=1, **common)}
    r = runs["distilled"]
    print(f"teacher {r['teacher']['parameters']} parameters ({r['teacher']['layers']} layers, width "
          f"{r['teacher']['width']}), {r['teacher']['forward_ms_per_example']} ms/example; student "
          f"{r['student']['parameters']} ({r['student']['layers']} layers), "
          f"{r['student']['forward_ms_per_example']} ms/example; diff {r['sparse']['diff_bytes']} "
          f"bytes ({r['sparse']['kept_entries']} entries) vs student weights "
          f"{r['sparse']['student_weight_bytes']} bytes")
    print("| run | model | S accuracy | T accuracy | seconds |")
    print("|---|---|---|---|---|")
    for name, rep in runs.items():
        for who in ("teacher", "dense_student", "sparse_student"):
            e = rep["eval"]
            if e["eval_S"][who] is None:
                continue
            print(f"| {name} | {who} | {e['eval_S'][who]['accuracy']:.3f} | "
                  f"{e['eval_T'][who]['accuracy']:.3f} | {rep['wall_seconds']:.0f} |")


if __name__ == "__main__":
    _measure()
