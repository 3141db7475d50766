# The type stub of clp_gpu, generated from the CLI's flags by
#     python -m clp_gpu._stub > python/clp_gpu/__init__.pyi
# (tests/python_pkg fails when it is out of date). Do not edit by hand.

import os
from typing import Any, Callable, Literal, NamedTuple, Sequence, Union

StrPath = Union[str, "os.PathLike[str]"]
ProgressArg = Union[bool, Callable[["Progress"], object], type]

__version__: str

class ClpError(Exception):
    """A clp-gpu command failed; the message is the one line the CLI prints after `error:`."""

class Progress(NamedTuple):
    """One progress update, as a `progress=` callback receives it."""

    task: str
    done: int
    total: int | None
    unit: str
    finished: bool

def main(argv: list[str] | None = None) -> int:
    """The `clp-gpu` command line: runs `argv` (default: `sys.argv[1:]`) and returns the exit code."""

from . import distill as distill  # BiStil's distillation, callable: clp_gpu.distill(**flags)

def distill_task(**kwargs: Any) -> dict[str, Any]:
    """BiStil phase 2 (`clp-gpu distill-task`); needs the `[distill]` extra."""

def apply_sparse_diff(student: StrPath, diff: StrPath, out: StrPath) -> dict[str, Any]:
    """Applies a `distill-task` sparse difference to its phase-1 student; writes `out`."""

def apply(
    source: StrPath,
    helper: StrPath | None,
    out: StrPath,
    *,
    helper_tokenizer: StrPath | None = None,
    top_k: int | Literal["all"] = 10,
    match: Literal["exact", "canonical"] = "canonical",
    weighting: Literal["clp", "softmax", "sparsemax", "omp", "fvt"] = "softmax",
    fallback: Literal["fvt", "mean"] = "fvt",
    temperature: float = 0.1,
    preset: Literal["original"] | None = None,
    backend: Literal["auto", "gpu", "cpu", "cpu-reference"] = "auto",
    gpu_memory: int | str = "1GiB",
    force: bool = False,
    provenance: StrPath | None = None,
    pad_to_multiple: int | None = None,
    pad_token: str | None = None,
    progress: ProgressArg = True,
) -> dict[str, Any]:
    """Build a target model: source weights + the helper's tokenizer (CLP-Transfer).

    The same as ``clp-gpu apply``: each keyword argument is the flag of the same name (``top_k``
    is ``--top-k``), with the same default and checks.

    Parameters
    ----------
    source : str or os.PathLike
        Source model: a Hugging Face model directory, or an `org/name` id in the local HF
        cache.
    helper : str or os.PathLike
        Helper model (speaks the target tokenizer): a directory or an `org/name` id in the
        local HF cache. Optional with --weighting fvt when --helper-tokenizer is given.
    out : str or os.PathLike
        Output model directory (must not exist unless --force).
    helper_tokenizer : str or os.PathLike
        Take the target tokenizer from here instead of the helper directory.
    top_k : int or 'all', default 10
        Neighbours per missing token: a number, or `all` (clp only: the original dense CLP).
    match : {'exact', 'canonical'}, default 'canonical'
        How target tokens find source tokens: `canonical` (the same bytes and word start
        whatever the spelling: GPT-2 `Ġhello` = Llama `▁hello` = BERT `hello`, `Ċ` =
        `<0x0A>` = "\\n") or `exact` (the same string, as the original CLP-Transfer). Preview
        with `clp-gpu inspect`.
    weighting : {'clp', 'softmax', 'sparsemax', 'omp', 'fvt'}, default 'softmax'
        How the selected neighbours are weighted: clp (cos / Σcos, the original), softmax
        (exp(cos/T), WECHSEL), sparsemax (FOCUS), omp (orthogonal matching pursuit with K
        atoms, tokensurgeon). All but clp need --top-k K. `clp-gpu evaluate` compares them
        on your pair. fvt (FVT) needs no helper weights: each missing token's row is the
        mean of the source rows of its text as the source tokenizer spells it (--top-k and
        --temperature refused).
    fallback : {'fvt', 'mean'}, default 'fvt'
        What rows the weighting cannot build get (a zero or non-finite helper row,
        cancelling weights, a non-finite result; target tokens without a helper row): fvt,
        the token's FVT row (the mean where the source tokenizer cannot spell it), or mean,
        the mean of the overlapping source rows. The report and --provenance say which row
        got which.
    temperature : float, default 0.1
        Softmax temperature (softmax only: refused with another weighting).
    preset : {'original'}
        A named method instead of --match/--weighting/--top-k/--temperature: `original` is
        the paper's CLP-Transfer exactly (exact match, clp over every overlapping token).
    backend : {'auto', 'gpu', 'cpu', 'cpu-reference'}, default 'auto'
        Which implementation computes the missing rows.
    gpu_memory : int or str (bytes, e.g. '512MiB'), default '1GiB'
        Memory budget of the tile buffers, e.g. 512MiB or 2GiB (GPU memory on the GPU, the
        working set on the CPU). Host memory stays near this plus a few MiB whatever the
        model size.
    force : bool
        Replace OUT if it exists.
    provenance : str or os.PathLike
        Write per-token provenance (JSON Lines) to this file.
    pad_to_multiple : int
        Round the number of embedding rows up to a multiple of N (extra rows are zeros).
    pad_token : str
        The target's pad token: a token of the target tokenizer, or a new one to add (it
        gets one more embedding row: the source's pad row, or zeros). Needed by
        RoBERTa-style models and encoder-decoders when the target tokenizer has no pad
        token.
    progress : bool, callable or tqdm-compatible class, default True
        True (the default): tqdm bars when tqdm is installed (notebook widgets in Jupyter),
        else progress lines on sys.stderr; notices are printed on sys.stderr too. False:
        nothing. A callable: called with a clp_gpu.Progress on every update (on the worker
        thread; an exception it raises stops the run and is raised by the call). A
        tqdm-compatible class: one bar of it per task.

    Returns
    -------
    dict[str, Any]
        The report that OUT/clp_transfer.json holds: arguments, adapter, inputs, counts,
        special-token mapping, fallback rows, notices and timings.

    Raises
    ------
    ClpError
        The command failed; the message is the CLI's one-line error. A failed run leaves
        nothing at its output path.
    KeyboardInterrupt
        Ctrl-C stopped the run (the engine stops between tiles and removes its temporary
        output: nothing is left at the output path).
    """

def inspect(
    source: StrPath,
    helper: StrPath,
    *,
    helper_tokenizer: StrPath | None = None,
    match: Literal["exact", "canonical"] = "canonical",
    examples: int = 5,
) -> dict[str, Any]:
    """Show how the helper's tokenizer overlaps the source's (tokenizer files only: no weights, no
    GPU).

    .

    Counts and examples of exact, canonical-only, special-by-role and missing target tokens.

    The same as ``clp-gpu inspect``: each keyword argument is the flag of the same name
    (``top_k`` is ``--top-k``), with the same default and checks.

    Parameters
    ----------
    source : str or os.PathLike
        Source model: a directory with tokenizer.json (config.json optional), or an
        `org/name` id in the local HF cache.
    helper : str or os.PathLike
        Helper model (speaks the target tokenizer): a directory or an `org/name` id in the
        local HF cache.
    helper_tokenizer : str or os.PathLike
        Take the target tokenizer from here instead of the helper directory.
    match : {'exact', 'canonical'}, default 'canonical'
        How target tokens find source tokens, as in `apply`: `canonical` (same bytes and
        word start across spellings: `Ġhello` = `▁hello`) or `exact` (same string).
    examples : int, default 5
        Examples of each kind to list (the first by target id).

    Returns
    -------
    dict[str, Any]
        The report `clp-gpu inspect --json` prints: counts and examples of exact,
        canonical-only, special-by-role and missing target tokens.

    Raises
    ------
    ClpError
        The command failed; the message is the CLI's one-line error. A failed run leaves
        nothing at its output path.
    KeyboardInterrupt
        Ctrl-C stopped the run (the engine stops between tiles and removes its temporary
        output: nothing is left at the output path).
    """

def evaluate(
    source: StrPath,
    helper: StrPath,
    *,
    helper_tokenizer: StrPath | None = None,
    match: Literal["exact", "canonical"] = "canonical",
    weighting: str | Sequence[str] = ...,
    top_k: int | Literal["all"] | Sequence[int | Literal["all"]] = ...,
    temperature: float | Sequence[float] = ...,
    holdout: float = 0.1,
    seed: int = 0,
    backend: Literal["auto", "gpu", "cpu", "cpu-reference"] = "auto",
    gpu_memory: int | str = "1GiB",
    progress: ProgressArg = True,
) -> list[dict[str, Any]]:
    """Score weightings (clp, softmax, sparsemax, omp; k and T) on a held-out share of the overlap:
    cosine between predicted and true source rows, next to two baselines.

    The same as ``clp-gpu evaluate``: each keyword argument is the flag of the same name
    (``top_k`` is ``--top-k``), with the same default and checks.

    Parameters
    ----------
    source : str or os.PathLike
        Source model: a directory, or an `org/name` id in the local HF cache.
    helper : str or os.PathLike
        Helper model: a directory, or an `org/name` id in the local HF cache.
    helper_tokenizer : str or os.PathLike
        Take the target tokenizer from here instead of the helper directory.
    match : {'exact', 'canonical'}, default 'canonical'
        How tokens are matched (see `apply --help`).
    weighting : str, or a list of them, default ('clp', 'softmax', 'sparsemax', 'omp')
        Weightings to score, comma separated. `fvt` (apply only) cannot be scored: the
        held-out tokens are overlap tokens, which the source tokenizer keeps whole, so FVT
        would just copy their rows.
    top_k : int or 'all', or a list of them, default ('all', 10, 64)
        k values, comma separated (`all` only applies to clp; omp uses k ≤ 64 as its atoms).
    temperature : float, or a list of them, default (0.05, 0.1, 0.2)
        Softmax temperatures, comma separated.
    holdout : float, default 0.1
        Share of the overlapping tokens hidden and scored.
    seed : int, default 0
        Seed of the hidden sample and of the random baseline.
    backend : {'auto', 'gpu', 'cpu', 'cpu-reference'}, default 'auto'
        Which implementation computes the rows.
    gpu_memory : int or str (bytes, e.g. '512MiB'), default '1GiB'
        Memory budget of the tile buffers, e.g. 512MiB.
    progress : bool, callable or tqdm-compatible class, default True
        True (the default): tqdm bars when tqdm is installed (notebook widgets in Jupyter),
        else progress lines on sys.stderr; notices are printed on sys.stderr too. False:
        nothing. A callable: called with a clp_gpu.Progress on every update (on the worker
        thread; an exception it raises stops the run and is raised by the call). A
        tqdm-compatible class: one bar of it per task.

    Returns
    -------
    list[dict[str, Any]]
        One dict per method, baselines included, best first (the `scores` of `clp-gpu
        evaluate --json`): rank, method, relative L2 error, norm ratio, cosine mean and
        quantiles, rejected rows, seconds.

    Raises
    ------
    ClpError
        The command failed; the message is the CLI's one-line error. A failed run leaves
        nothing at its output path.
    KeyboardInterrupt
        Ctrl-C stopped the run (the engine stops between tiles and removes its temporary
        output: nothing is left at the output path).
    """

def extend(
    model: StrPath,
    corpus: StrPath | Sequence[StrPath],
    add: int,
    out: StrPath,
    *,
    min_freq: int = 2,
    holdout: float = 0.1,
    helper: StrPath | None = None,
    weighting: Literal["clp", "softmax", "sparsemax", "omp", "fvt"] | None = None,
    top_k: int | Literal["all"] = 10,
    temperature: float = 0.1,
    match: Literal["exact", "canonical"] = "canonical",
    fallback: Literal["fvt", "mean"] = "fvt",
    backend: Literal["auto", "gpu", "cpu", "cpu-reference"] = "auto",
    gpu_memory: int | str = "1GiB",
    pad_to_multiple: int | None = None,
    provenance: StrPath | None = None,
    force: bool = False,
    progress: ProgressArg = True,
) -> dict[str, Any]:
    """Grow a model's own tokenizer with tokens learnt from your text, and give them rows.

    The same as ``clp-gpu extend``: each keyword argument is the flag of the same name
    (``top_k`` is ``--top-k``), with the same default and checks.

    Parameters
    ----------
    model : str or os.PathLike
        The model to extend: a Hugging Face model directory, or an `org/name` id in the
        local HF cache.
    corpus : str or os.PathLike, or a list of them
        Text in the language to add, one document per line (repeat for several files).
    add : int
        How many tokens to add at most (in order of usefulness: merge rank or score; the
        intermediate tokens a merge chain needs count).
    out : str or os.PathLike
        Output model directory (must not exist unless --force).
    min_freq : int, default 2
        Leave out tokens the trainer saw fewer than this many times.
    holdout : float, default 0.1
        Share of each corpus's lines held out from learning; the report gives tokens per
        byte on them too.
    helper : str or os.PathLike
        A model that already knows the language (any tokenizer): the new rows combine the
        model's rows of the tokens nearest in the helper's embedding space (--weighting).
    weighting : {'clp', 'softmax', 'sparsemax', 'omp', 'fvt'}
        How the new rows are built: fvt (default without --helper: the mean of the model's
        rows of the token's pieces) or, with --helper, clp, softmax (default with --helper),
        sparsemax or omp, as in `apply`.
    top_k : int or 'all', default 10
        Neighbours per new token (with --helper): a number, or `all` (clp only).
    temperature : float, default 0.1
        Softmax temperature (with --helper).
    match : {'exact', 'canonical'}, default 'canonical'
        How target tokens find source tokens: `canonical` (the same bytes and word start
        whatever the spelling: GPT-2 `Ġhello` = Llama `▁hello` = BERT `hello`, `Ċ` =
        `<0x0A>` = "\\n") or `exact` (the same string, as the original CLP-Transfer). Preview
        with `clp-gpu inspect`.
    fallback : {'fvt', 'mean'}, default 'fvt'
        What rows the weighting cannot build get: fvt (the token's FVT row) or mean.
    backend : {'auto', 'gpu', 'cpu', 'cpu-reference'}, default 'auto'
        Which implementation computes weighted rows (with --helper).
    gpu_memory : int or str (bytes, e.g. '512MiB'), default '1GiB'
        Memory budget of the tile buffers, e.g. 512MiB or 2GiB.
    pad_to_multiple : int
        Round the number of embedding rows up to a multiple of N (extra rows are zeros).
    provenance : str or os.PathLike
        Write per-token provenance (JSON Lines) to this file.
    force : bool
        Replace OUT if it exists.
    progress : bool, callable or tqdm-compatible class, default True
        True (the default): tqdm bars when tqdm is installed (notebook widgets in Jupyter),
        else progress lines on sys.stderr; notices are printed on sys.stderr too. False:
        nothing. A callable: called with a clp_gpu.Progress on every update (on the worker
        thread; an exception it raises stops the run and is raised by the call). A
        tqdm-compatible class: one bar of it per task.

    Returns
    -------
    dict[str, Any]
        The report that OUT/extend_report.json holds: the tokens added with their pieces,
        tokens per byte before and after per corpus, how the rows were built, timings.

    Raises
    ------
    ClpError
        The command failed; the message is the CLI's one-line error. A failed run leaves
        nothing at its output path.
    KeyboardInterrupt
        Ctrl-C stopped the run (the engine stops between tiles and removes its temporary
        output: nothing is left at the output path).
    """

def trim(
    model: StrPath,
    corpus: StrPath | Sequence[StrPath],
    out: StrPath,
    *,
    min_freq: float = 1e-06,
    keep: StrPath | None = None,
    force: bool = False,
    no_verify: bool = False,
    progress: ProgressArg = True,
) -> dict[str, Any]:
    """Cut a model's vocabulary down to the tokens its corpora use.

    .

    Each corpus is tokenized line by line with the model's own tokenizer. A token is kept when
    its relative frequency in at least one corpus reaches --min-freq, or it is a special or
    added token, or it is listed in --keep; the tokenizer also keeps what it needs to stay
    consistent (BPE merge closure, the byte alphabet of byte-level BPE). The kept tokens get ids
    0.. in their old order; the input embedding, an untied lm_head and output biases keep those
    rows (bytes copied); every other tensor is copied unchanged. A line of a corpus whose tokens
    were all kept tokenizes to the same tokens as before (checked unless --no-verify).

    The same as ``clp-gpu trim``: each keyword argument is the flag of the same name (``top_k``
    is ``--top-k``), with the same default and checks.

    Parameters
    ----------
    model : str or os.PathLike
        The model: a Hugging Face model directory, or an `org/name` id in the local HF
        cache.
    corpus : str or os.PathLike, or a list of them
        A UTF-8 text file, one sentence or paragraph per line (repeat for each language).
    out : str or os.PathLike
        Output model directory (must not exist unless --force).
    min_freq : float, default 1e-06
        Keep a token whose relative frequency in some corpus is at least this (0 keeps every
        token that occurs).
    keep : str or os.PathLike
        A file of token strings to keep as well, one per line, written as in the vocabulary
        (e.g. Ġthe for GPT-2).
    force : bool
        Replace OUT if it exists.
    no_verify : bool
        Skip tokenizing the corpora again to check the trimmed tokenizer (halves the time).
    progress : bool, callable or tqdm-compatible class, default True
        True (the default): tqdm bars when tqdm is installed (notebook widgets in Jupyter),
        else progress lines on sys.stderr; notices are printed on sys.stderr too. False:
        nothing. A callable: called with a clp_gpu.Progress on every update (on the worker
        thread; an exception it raises stops the run and is raised by the call). A
        tqdm-compatible class: one bar of it per task.

    Returns
    -------
    dict[str, Any]
        The report that OUT/trim_report.json holds.

    Raises
    ------
    ClpError
        The command failed; the message is the CLI's one-line error. A failed run leaves
        nothing at its output path.
    KeyboardInterrupt
        Ctrl-C stopped the run (the engine stops between tiles and removes its temporary
        output: nothing is left at the output path).
    """

def shrink(
    model: StrPath,
    out: StrPath,
    *,
    keep_every: int | None = None,
    layers: int | Sequence[int] | None = None,
    decoder_layers: int | Sequence[int] | None = None,
    hidden_size: int | None = None,
    force: bool = False,
    progress: ProgressArg = True,
) -> dict[str, Any]:
    """Make a student skeleton: fewer transformer layers, optionally a narrower embedding.

    .

    The kept layers' tensors are copied byte-for-byte and renumbered 0, 1, ... (e.g.
    model.layers.4. becomes model.layers.2.); config.json's layer count follows. With
    --hidden-size D the input embedding E (and an untied lm_head of the same shape) is replaced
    by its truncated-SVD coordinates E V_D = U_D Σ_D (top-D left singular vectors scaled by the
    singular values), and V_Dᵀ is written to embedding_projection.safetensors (E ≈ reduced @
    projection). Only those tensors change width: all other tensors (attention, MLP, norms,
    position embeddings) keep the old hidden size, as does config.json, so the result is a
    skeleton to be trained (distilled) or projected before it runs.

    Encoder-decoders (T5, mT5, BART, mBART, M2M100, Whisper) have an encoder and a decoder
    stack: --keep-every R applies to each; --layers LIST applies to both (every index must exist
    in both) unless --decoder-layers LIST gives the decoder's own list, and then --layers (or
    --keep-every, or nothing: all) is the encoder's. config.json's per-stack counts follow
    (num_layers / num_decoder_layers, encoder_layers / decoder_layers / num_hidden_layers). T5's
    relative_attention_bias lives in block 0 of each stack only: when block 0 is dropped, its
    bias goes to the new block 0. --hidden-size reduces the shared embedding, its stored tied
    copies and an untied lm_head alike.

    The same as ``clp-gpu shrink``: each keyword argument is the flag of the same name
    (``top_k`` is ``--top-k``), with the same default and checks.

    Parameters
    ----------
    model : str or os.PathLike
        The model: a Hugging Face model directory, or an `org/name` id in the local HF
        cache.
    out : str or os.PathLike
        Output model directory (must not exist unless --force).
    keep_every : int
        Keep layers 0, R, 2R, ... and always the last layer.
    layers : int, or a list of them
        Keep exactly these layers (0-based, increasing), e.g. 1,3,5.
    decoder_layers : int, or a list of them
        Encoder-decoders only: keep exactly these decoder layers (0-based, increasing);
        --layers or --keep-every then picks the encoder's.
    hidden_size : int
        Reduce the input embedding (and an untied lm_head of the same shape) to width D.
    force : bool
        Replace OUT if it exists.
    progress : bool, callable or tqdm-compatible class, default True
        True (the default): tqdm bars when tqdm is installed (notebook widgets in Jupyter),
        else progress lines on sys.stderr; notices are printed on sys.stderr too. False:
        nothing. A callable: called with a clp_gpu.Progress on every update (on the worker
        thread; an exception it raises stops the run and is raised by the call). A
        tqdm-compatible class: one bar of it per task.

    Returns
    -------
    dict[str, Any]
        The report that OUT/shrink_report.json holds.

    Raises
    ------
    ClpError
        The command failed; the message is the CLI's one-line error. A failed run leaves
        nothing at its output path.
    KeyboardInterrupt
        Ctrl-C stopped the run (the engine stops between tiles and removes its temporary
        output: nothing is left at the output path).
    """

def perplexity(
    model: StrPath | Sequence[StrPath],
    text: StrPath,
    *,
    context: int = 1024,
    max_bytes: int | str | None = None,
    progress: ProgressArg = True,
) -> dict[str, Any]:
    """Score models on a text: bits per UTF-8 byte (comparable across tokenizers), perplexity per
    token, tokens per byte.

    .

    Each document is tokenized with the model's own tokenizer.json (no special tokens), prefixed
    with the config's bos_token_id when it has one, and scored in consecutive windows of
    --context tokens on the CPU (candle, f32), one forward pass per window. Masked-LM encoders
    (BERT, RoBERTa, ModernBERT, ...) are scored by pseudo-log-likelihood and reported as pseudo
    bits per byte. Several --model give one table over exactly the same documents.

    The same as ``clp-gpu perplexity``: each keyword argument is the flag of the same name
    (``top_k`` is ``--top-k``), with the same default and checks.

    Parameters
    ----------
    model : str or os.PathLike, or a list of them
        A model to score: a directory, or an `org/name` id in the local HF cache. Repeat for
        a table.
    text : str or os.PathLike
        UTF-8 documents: JSON Lines with a "text" field, or plain text with one document per
        line.
    context : int, default 1024
        Window length in tokens, BOS included; clamped to max_position_embeddings.
    max_bytes : int or str (bytes, e.g. '512MiB')
        Stop before the document that would take the text past this many bytes (e.g. 1MiB).
    progress : bool, callable or tqdm-compatible class, default True
        True (the default): tqdm bars when tqdm is installed (notebook widgets in Jupyter),
        else progress lines on sys.stderr; notices are printed on sys.stderr too. False:
        nothing. A callable: called with a clp_gpu.Progress on every update (on the worker
        thread; an exception it raises stops the run and is raised by the call). A
        tqdm-compatible class: one bar of it per task.

    Returns
    -------
    dict[str, Any]
        The documents and bytes scored and, under `models`, each model's bits/byte,
        nats/token, perplexity and tokens/byte.

    Raises
    ------
    ClpError
        The command failed; the message is the CLI's one-line error. A failed run leaves
        nothing at its output path.
    KeyboardInterrupt
        Ctrl-C stopped the run (the engine stops between tiles and removes its temporary
        output: nothing is left at the output path).
    """

def devices() -> list[dict[str, Any]]:
    """List every GPU adapter wgpu can use, with the limits that matter to clp-gpu.

    The same as ``clp-gpu devices``: each keyword argument is the flag of the same name
    (``top_k`` is ``--top-k``), with the same default and checks.

    Returns
    -------
    list[dict[str, Any]]
        One dict per adapter wgpu can use, with the limits that matter to clp-gpu (empty
        without a GPU driver).

    Raises
    ------
    ClpError
        The command failed; the message is the CLI's one-line error. A failed run leaves
        nothing at its output path.
    KeyboardInterrupt
        Ctrl-C stopped the run (the engine stops between tiles and removes its temporary
        output: nothing is left at the output path).
    """
