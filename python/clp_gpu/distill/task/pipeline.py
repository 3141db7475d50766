"""The training side of ``distill_task``: teacher, student, phase A, mask, reset, phase B,
evaluations, and the files in the staging directory."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Dict, Optional

import torch

from .. import layermap, projection, vocab
from . import data, metrics, models, sparse, train
from .errors import TaskError
from .loss import Weights, task_loss
from .prepare import DIFF_FILE, REPORT_FILE, Options, Prepared, say


def evaluate(model, p: Prepared, tok, cfg, o: Options, device) -> Dict[str, Dict[str, Any]]:
    """Accuracy / F1 of ``model`` (under tokenizer ``tok``) on every evaluation file."""
    out = {}
    pad = models.pad_id(tok, cfg)
    for f in p.evals:
        enc = data.encode(f, tok, p.names, o.max_seq_len)
        pred = train.predict(model, enc, pad, p.task, max(o.batch_size, 32), device)
        if p.task == data.SEQUENCE:
            out[f.name] = metrics.sequence_scores(enc.labels, pred, len(p.names))
        else:
            out[f.name] = metrics.token_scores(enc.word_labels, pred, p.names)
    return out


def fine_tune_teacher(acc, p: Prepared, o: Options, stage: Path) -> Dict[str, Any]:
    """``--train-teacher``: the base teacher with a fresh task head, trained on the training
    file (its own tokenizer, hard labels); saved to OUT/teacher."""
    model, _ = models.load_task_model(p.teacher_dir, "teacher", p.task, p.names,
                                      o.weights.attention > 0, o.seed)
    enc = data.encode(p.train, p.teacher_tok, p.names, o.max_seq_len)
    pad = models.pad_id(p.teacher_tok, p.teacher_cfg)
    steps = train.steps_for(len(p.train), o.batch_size, acc.num_processes, o.teacher_epochs,
                            o.teacher_steps)
    sched = train.Schedule(steps, o.teacher_lr or o.lr, o.warmup_steps, o.weight_decay, o.max_grad_norm)
    wrapped = acc.prepare(model)
    only_labels = Weights(0, 0, 0, 1, o.temperature)

    def step(batch):
        out = wrapped(**{k: v for k, v in batch.items() if k != "labels"})
        return task_loss(p.task, only_labels, out, None, batch["labels"], batch["attention_mask"])

    log = train.train(acc, wrapped, enc, pad, p.task, sched, o.batch_size, o.seed + 1, step,
                      "teacher fine-tuning", o.quiet)
    model = acc.unwrap_model(wrapped)
    if acc.is_main_process:
        model.save_pretrained(stage / "teacher", safe_serialization=True)
        p.teacher_tok.save_pretrained(stage / "teacher")
    return {"model": model, "order": torch.arange(len(p.names)), "log": log}


def _teacher(acc, p: Prepared, o: Options, stage: Path):
    """(frozen teacher on the device or None, label order, fine-tuning log or None)."""
    if p.teacher_dir is None:
        return None, None, None
    if o.train_teacher:
        r = fine_tune_teacher(acc, p, o, stage)
        model, order, log = r["model"], r["order"], r["log"]
    else:
        model, order = models.load_task_teacher(p.teacher_dir, p.task, p.names, o.weights.attention > 0)
        log = None
    return models.frozen(model).to(acc.device), order, log


def _projections(teacher, enc, pad: int, p: Prepared, lmap, table, o: Options, device):
    """Fixed per-state projections when the student is narrower than the teacher."""
    s_w, t_w = int(p.student_cfg.hidden_size), int(p.teacher_cfg.hidden_size)
    if s_w == t_w or o.weights.hidden == 0:
        return None
    if s_w > t_w:
        raise TaskError(f"the student {p.student_dir} is wider ({s_w}) than the teacher "
                        f"{p.teacher_dir} ({t_w}); a student must not be wider")
    states, masks = [], []
    n = len(enc.input_ids)
    for start in range(0, min(n, max(512, s_w)), 32):
        rows = list(range(start, min(n, start + 32)))
        b = data.collate(enc, rows, pad, p.task)
        b.pop("labels")
        b["input_ids"] = vocab.to_teacher_ids(b["input_ids"], table)
        with torch.no_grad():
            out = teacher(**{k: v.to(device) for k, v in b.items()}, output_hidden_states=True)
        states.append([s.float().cpu() for s in out.hidden_states])
        masks.append(b["attention_mask"])
    idx = sorted({t for _, t in lmap.hidden})
    try:
        by_state = projection.fit_projections(states, masks, idx, s_w, seed=o.seed)
    except ValueError as e:
        raise TaskError(f"width projection for the student {p.student_dir}: {e} (from --train "
                        f"{p.train.path}, {n} records)") from None
    return [m.to(device) for m in projection.projections_for_pairs(lmap.hidden, by_state)]


def _step_fn(wrapped, teacher, table, order, lmap, projections, p: Prepared, o: Options):
    w = o.weights

    def step(batch):
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        flags = dict(output_hidden_states=w.hidden > 0, output_attentions=w.attention > 0)
        s_out = wrapped(**inputs, **flags)
        t_out = None
        if teacher is not None and w.needs_teacher:
            t_in = dict(inputs, input_ids=vocab.to_teacher_ids(inputs["input_ids"], table))
            with torch.no_grad():
                t_out = teacher(**t_in, **flags)
        return task_loss(p.task, w, s_out, t_out, batch["labels"], batch["attention_mask"],
                         lmap, projections, order)

    return step


def _layer_map(p: Prepared):
    if p.teacher_cfg is None:
        return None
    try:
        return layermap.layer_map(int(p.student_cfg.num_hidden_layers),
                                  int(p.teacher_cfg.num_hidden_layers),
                                  layermap.recorded_kept_layers(p.student_dir))
    except ValueError as e:
        raise TaskError(f"student {p.student_dir}: {e}") from None


def _vocab_table(p: Prepared):
    if p.teacher_tok is None:
        return None
    try:
        return vocab.vocab_map(p.student_tok, p.teacher_tok, f"student {p.student_dir}",
                               f"teacher {p.teacher_dir}")
    except vocab.VocabError as e:
        raise TaskError(str(e)) from None


def run_pipeline(acc, p: Prepared, o: Options, stage: Path) -> Dict[str, Any]:
    t0 = time.perf_counter()
    lmap, table = _layer_map(p), _vocab_table(p)
    teacher, order, teacher_log = _teacher(acc, p, o, stage)
    student, new = models.load_task_model(p.student_dir, "student", p.task, p.names,
                                          o.weights.attention > 0, o.seed)
    body, head, frozen = sparse.split_params(student, new, o.train_layer_norm)
    for n, prm in student.named_parameters():
        prm.requires_grad_(n not in frozen)
    originals = sparse.snapshot(student, body + head)
    enc = data.encode(p.train, p.student_tok, p.names, o.max_seq_len)
    pad = models.pad_id(p.student_tok, p.student_cfg)
    projections = None
    if teacher is not None:
        projections = _projections(teacher, enc, pad, p, lmap, table, o, acc.device)
    wrapped = acc.prepare(student)
    inner = acc.unwrap_model(wrapped)
    step = _step_fn(wrapped, teacher, table, order, lmap, projections, p, o)
    world = acc.num_processes
    sched_a = train.Schedule(train.steps_for(len(p.train), o.batch_size, world, o.full_epochs, o.full_steps),
                             o.lr, o.warmup_steps, o.weight_decay, o.max_grad_norm)
    log_a = train.train(acc, wrapped, enc, pad, p.task, sched_a, o.batch_size, o.seed + 2, step,
                        "phase A (dense)", o.quiet)
    dense_eval = evaluate(inner, p, p.student_tok, p.student_cfg, o, acc.device)
    masks, k = sparse.select_mask(inner, originals, body, o.density)
    sparse.reset(inner, originals)
    say(o, f"kept {k} of {sum(originals[n].numel() for n in body)} body entries "
           f"(density {o.density}); reset to the phase-1 student")
    sched_b = train.Schedule(train.steps_for(len(p.train), o.batch_size, world, o.sparse_epochs, o.sparse_steps),
                             o.lr, o.warmup_steps, o.weight_decay, o.max_grad_norm)
    log_b = train.train(acc, wrapped, enc, pad, p.task, sched_b, o.batch_size, o.seed + 3, step,
                        "phase B (sparse)", o.quiet, masks=masks)
    sparse.check_untouched(inner, originals, masks)
    sparse_eval = evaluate(inner, p, p.student_tok, p.student_cfg, o, acc.device)
    teacher_eval = (evaluate(teacher, p, p.teacher_tok, p.teacher_cfg, o, acc.device)
                    if teacher is not None else None)
    report = {
        "task": p.task, "labels": p.names,
        "args": dict(vars(o)),
        "layer_map": lmap.as_dict() if lmap is not None else None,
        "teacher": _teacher_info(teacher, p, o, acc, teacher_log),
        "student": _student_info(inner, p, o, acc, body, head, frozen, new),
        "phases": {"full": log_a, "sparse": log_b},
        "eval": {f.name: {"file": str(f.path), "examples": len(f),
                          "teacher": teacher_eval[f.name] if teacher_eval else None,
                          "dense_student": dense_eval[f.name],
                          "sparse_student": sparse_eval[f.name]} for f in p.evals},
    }
    report["sparse"] = _write(acc, inner, p, o, stage, masks, k, head, body)
    report["wall_seconds"] = round(time.perf_counter() - t0, 3)
    _print_summary(o, report)
    if acc.is_main_process:
        with open(stage / REPORT_FILE, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2, sort_keys=True)
            f.write("\n")
    acc.wait_for_everyone()
    return report


def _timing_file(p: Prepared) -> data.TaskFile:
    return p.evals[0] if p.evals else p.train


def _teacher_info(teacher, p: Prepared, o: Options, acc, log) -> Optional[Dict[str, Any]]:
    if teacher is None:
        return None
    f = _timing_file(p)
    enc = data.encode(f, p.teacher_tok, p.names, o.max_seq_len)
    ms = train.forward_ms(teacher, enc, models.pad_id(p.teacher_tok, p.teacher_cfg), p.task,
                          max(o.batch_size, 32), acc.device)
    return {"path": str(p.teacher_dir), "fine_tuned_here": bool(o.train_teacher),
            "saved_to": "teacher" if o.train_teacher else None, "training": log,
            "parameters": models.parameter_count(teacher), "layers": int(p.teacher_cfg.num_hidden_layers),
            "width": int(p.teacher_cfg.hidden_size), "forward_ms_per_example": ms,
            "timed_on": f.name}


def _student_info(inner, p: Prepared, o: Options, acc, body, head, frozen, new) -> Dict[str, Any]:
    params = dict(inner.named_parameters())
    f = _timing_file(p)
    enc = data.encode(f, p.student_tok, p.names, o.max_seq_len)
    ms = train.forward_ms(inner, enc, models.pad_id(p.student_tok, p.student_cfg), p.task,
                          max(o.batch_size, 32), acc.device)
    return {"path": str(p.student_dir), "parameters": models.parameter_count(inner),
            "body_parameters": sum(params[n].numel() for n in body),
            "head_parameters": sum(params[n].numel() for n in head),
            "frozen_parameters": sum(params[n].numel() for n in frozen),
            "head_tensors": sorted(head), "initialised_tensors": sorted(new),
            "layers": int(p.student_cfg.num_hidden_layers), "width": int(p.student_cfg.hidden_size),
            "forward_ms_per_example": ms, "forward_batch_size": max(o.batch_size, 32),
            "timed_on": f.name}


def _write(acc, inner, p: Prepared, o: Options, stage: Path, masks, k: int, head, body) -> Dict[str, Any]:
    """OUT/student (the whole task student) and OUT/sparse_diff.safetensors."""
    tensors = sparse.diff_tensors(inner, masks, head)
    meta = {"task": p.task, "labels": json.dumps(p.names), "k": str(k), "density": repr(o.density),
            "model_type": str(p.student_cfg.model_type), "base_sha256": sparse.fingerprint(p.student_dir)}
    if acc.is_main_process:
        inner.save_pretrained(stage / "student", safe_serialization=True)
        p.student_tok.save_pretrained(stage / "student")
        sparse.save_diff(stage / DIFF_FILE, tensors, meta)
    acc.wait_for_everyone()
    size = (stage / DIFF_FILE).stat().st_size if (stage / DIFF_FILE).exists() else None
    student_bytes = sum(f.stat().st_size for f in (stage / "student").glob("*.safetensors")) \
        if (stage / "student").exists() else None
    return {"density": o.density, "kept_entries": k,
            "body_entries": sum(m.numel() for m in masks.values()),
            "diff_file": DIFF_FILE, "diff_bytes": size, "student_weight_bytes": student_bytes,
            "dense_tensors_in_diff": sorted(head)}


def _print_summary(o: Options, r: Dict[str, Any]) -> None:
    if o.quiet:
        return
    for name, e in r["eval"].items():
        parts = []
        for who in ("teacher", "dense_student", "sparse_student"):
            if e[who] is not None:
                parts.append(f"{who} acc {e[who]['accuracy']:.4f} F1 {e[who]['f1']:.4f}")
        say(o, f"{name}: " + "; ".join(parts))
    s, t = r["student"], r["teacher"]
    line = f"student {s['parameters']} parameters, {s['forward_ms_per_example']} ms/example"
    if t:
        line += f"; teacher {t['parameters']} parameters, {t['forward_ms_per_example']} ms/example"
    say(o, line + f"; diff {r['sparse']['diff_bytes']} bytes ({r['sparse']['kept_entries']} entries)")
