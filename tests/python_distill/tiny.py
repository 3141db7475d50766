"""Tiny models and made-up languages for the distillation tests (no downloads).

Three languages share one grammar over ``CONCEPTS`` concepts (a sparse random successor table,
Zipf-like frequencies) and differ in spelling: a fifth of the concepts are spelled the same in
all three, the rest have one spelling per language. A BERT teacher with a WordPiece tokenizer
is *trained* (masked LM) on all three, so its states carry the grammar; a student made from it
for two of them (trim, shrink) has something real to learn.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import os
from pathlib import Path
from typing import Dict, List

import torch

REPO = Path(__file__).resolve().parents[2]
CONCEPTS = 120
SUCCESSORS = 6
LANGS = ("aa", "bb", "cc")


def _spellings(rng: random.Random) -> Dict[str, List[str]]:
    consonants, vowels = "ptkmnslrvdg", "aeiou"

    def word(n):
        return "".join(rng.choice(consonants) + rng.choice(vowels) for _ in range(n))

    shared = set(range(0, CONCEPTS, 5))
    out = {lang: [] for lang in LANGS}
    for c in range(CONCEPTS):
        common = word(2)
        for li, lang in enumerate(LANGS):
            out[lang].append(common if c in shared else word(2 + (c + li) % 2) + lang[0])
    return out


def make_corpora(root: Path, lines: int = 600, seed: int = 0) -> Dict[str, Path]:
    """Writes ``root/<lang>.txt`` (``lines`` sentences each, the same concept sequences in every
    language: parallel text) and returns their paths."""
    rng = random.Random(seed)
    spell = _spellings(rng)
    succ = [rng.sample(range(CONCEPTS), SUCCESSORS) for _ in range(CONCEPTS)]
    weights = [1.0 / (k + 1) for k in range(SUCCESSORS)]
    sentences = []
    for _ in range(lines):
        c = rng.randrange(CONCEPTS)
        seq = [c]
        for _ in range(rng.randint(5, 12)):
            c = rng.choices(succ[c], weights)[0]
            seq.append(c)
        sentences.append(seq)
    root.mkdir(parents=True, exist_ok=True)
    paths = {}
    for lang in LANGS:
        p = root / f"{lang}.txt"
        p.write_text("".join(" ".join(spell[lang][c] for c in s) + " .\n" for s in sentences), encoding="utf-8")
        paths[lang] = p
    return paths


def bert_tokenizer(corpora: List[Path], out: Path):
    """A WordPiece tokenizer (BERT's layout) trained on ``corpora``, saved into ``out``."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok.train([str(p) for p in corpora], trainers.WordPieceTrainer(vocab_size=500, special_tokens=specials))
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]",
                                   cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
    fast.save_pretrained(out)
    return fast


def train_bert_teacher(out: Path, corpora: List[Path], steps: int = 300, layers: int = 4,
                       width: int = 64, seed: int = 0) -> Path:
    """A BertForMaskedLM trained with masked LM on ``corpora`` for ``steps`` steps (CPU, about
    ten seconds); written to ``out`` (safetensors, config, tokenizer)."""
    from transformers import BertConfig, BertForMaskedLM

    torch.manual_seed(seed)
    tok = bert_tokenizer(corpora, out)
    cfg = BertConfig(vocab_size=len(tok), hidden_size=width, num_hidden_layers=layers,
                     num_attention_heads=4, intermediate_size=2 * width, max_position_embeddings=64,
                     pad_token_id=tok.pad_token_id, hidden_dropout_prob=0.0,
                     attention_probs_dropout_prob=0.0)
    model = BertForMaskedLM(cfg)
    text = []
    for p in corpora:
        text += p.read_text(encoding="utf-8").splitlines()
    rng = random.Random(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1 - s / steps)
    g = torch.Generator().manual_seed(seed)
    special = torch.tensor(tok.all_special_ids)
    for _ in range(steps):
        batch = tok(rng.sample(text, 32), padding="max_length", truncation=True, max_length=24,
                    return_tensors="pt")
        ids = batch["input_ids"]
        chosen = (torch.rand(ids.shape, generator=g) < 0.15) & ~torch.isin(ids, special)
        labels = torch.where(chosen, ids, torch.full_like(ids, -100))
        inputs = torch.where(chosen, torch.full_like(ids, tok.mask_token_id), ids)
        loss = model(input_ids=inputs, attention_mask=batch["attention_mask"], labels=labels).loss
        loss.backward()
        opt.step()
        sched.step()
        opt.zero_grad()
    model.config.architectures = ["BertForMaskedLM"]
    model.save_pretrained(out, safe_serialization=True)
    (out / "train_loss.txt").write_text(f"{loss.item():.4f}\n")
    return out


def clp_gpu_bin() -> str:
    """The engine binary (CLP_GPU_BIN, else the checkout's debug build)."""
    b = os.environ.get("CLP_GPU_BIN") or str(REPO / "target" / "debug" / "clp-gpu")
    if not Path(b).is_file():
        raise RuntimeError(f"no clp-gpu binary at {b}: cargo build, or set CLP_GPU_BIN")
    return b


def engine(*args: str) -> None:
    """Runs ``clp-gpu ARGS`` (trim, shrink), failing the test with its stderr."""
    r = subprocess.run([clp_gpu_bin(), *args, "--quiet"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def random_bert(out: Path, tokenizer_dir: Path, layers: int = 2, width: int = 32, positions: int = 64,
                family: str = "bert", extra_tokens: List[str] = ()) -> Path:
    """An untrained masked-LM (``family`` bert or roberta) over the tokenizer in
    ``tokenizer_dir`` (plus ``extra_tokens``), for the bad-input tests."""
    from transformers import (AutoTokenizer, BertConfig, BertForMaskedLM, RobertaConfig,
                              RobertaForMaskedLM)

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    if extra_tokens:
        tok.add_tokens(list(extra_tokens))
    cls_cfg, cls_model = {"bert": (BertConfig, BertForMaskedLM),
                          "roberta": (RobertaConfig, RobertaForMaskedLM)}[family]
    cfg = cls_cfg(vocab_size=len(tok), hidden_size=width, num_hidden_layers=layers,
                  num_attention_heads=4, intermediate_size=2 * width,
                  max_position_embeddings=positions, pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    model = cls_model(cfg)
    model.config.architectures = [cls_model.__name__]
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    return out


def random_llama(out: Path, corpora: List[Path], layers: int = 4, width: int = 32) -> Path:
    """An untrained LlamaForCausalLM (untied head) with a byte-level BPE tokenizer trained on
    ``corpora`` (BOS added in front), for the decoder tests."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train([str(p) for p in corpora], trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<s>", "</s>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", tok.token_to_id("<s>"))])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    fast.save_pretrained(out)
    cfg = LlamaConfig(vocab_size=len(fast), hidden_size=width, intermediate_size=2 * width,
                      num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                      max_position_embeddings=64, tie_word_embeddings=False,
                      bos_token_id=fast.bos_token_id, eos_token_id=fast.eos_token_id,
                      pad_token_id=fast.pad_token_id)
    torch.manual_seed(1)
    model = LlamaForCausalLM(cfg)
    model.config.architectures = ["LlamaForCausalLM"]
    model.save_pretrained(out, safe_serialization=True)
    return out
