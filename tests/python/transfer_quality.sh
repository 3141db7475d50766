#!/usr/bin/env bash
# Bits per byte of every transfer method on a trained pair (tests/python/trained_pair.py).
#
# Usage: tests/python/transfer_quality.sh CLP_GPU_BINARY PAIRDIR WORKDIR
#
# For each method below, runs `clp-gpu apply --backend cpu` from PAIRDIR/source with
# PAIRDIR/helper's tokenizer into WORKDIR/<n>-<name>, then scores every output on
# PAIRDIR/text_target.jsonl, the source on text_source.jsonl and text_target.jsonl and the
# helper on text_target.jsonl with `clp-gpu perplexity --json`, and prints one markdown table
# of bits per byte (lower is better). A method whose flags the binary rejects is listed as
# "n/a (flag missing)". Two baselines are built in Python from apply outputs: "random rows"
# (every row apply did not copy from the source, i.e. every row listed in --provenance except
# special tokens taken by role, replaced by N(column mean, column sd) of the source matrix, for
# embed_tokens and lm_head) after exact matching (--preset original) and after canonical
# matching; and an "oracle" (canonical + softmax k=10, then every T-only word token takes the
# source row of its translation from PAIRDIR/dictionary.json), an upper bound no method can
# know. Finally prints `clp-gpu evaluate --backend cpu` on the pair.
#
# Environment: PYTHON (default python3; needs numpy and safetensors), MAX_BYTES (text scored
# per model, default 40KB: a debug build scores Llama token by token, ~50-100 tokens/s on a
# busy 2-core machine), CONTEXT (default 128).
set -u
if [ $# -ne 3 ]; then
    echo "usage: $0 CLP_GPU_BINARY PAIRDIR WORKDIR" >&2
    exit 2
fi
BIN=$1 PAIR=$2 WORK=$3
PY=${PYTHON:-python3}
MAX_BYTES=${MAX_BYTES:-40KB}
CONTEXT=${CONTEXT:-128}
mkdir -p "$WORK"
LOG=$WORK/log.txt
: > "$LOG"
START=$(date +%s)

# name|flags
METHODS=(
    "original preset|--preset original"
    "exact clp k=all|--match exact --weighting clp --top-k all"
    "exact softmax k=10|--match exact --weighting softmax --top-k 10"
    "canonical clp k=all|--match canonical --weighting clp --top-k all"
    "canonical softmax k=10|--match canonical --weighting softmax --top-k 10"
    "canonical sparsemax k=64|--match canonical --weighting sparsemax --top-k 64"
    "canonical omp k=10|--match canonical --weighting omp --top-k 10"
    "fvt|--weighting fvt"
    "default (no flags)|"
)

# Waits for the binary when it is being rebuilt.
bin_ready() {
    for _ in $(seq 60); do [ -x "$BIN" ] && return 0; sleep 5; done
    echo "binary $BIN missing" >&2
    return 1
}

# apply NAME FLAGS... -> sets DIR and STATUS ("ok", or why not)
run_apply() {
    local n=$1; shift
    DIR=$WORK/$n
    bin_ready || exit 1
    local err=$WORK/$n.stderr
    echo "+ $BIN apply --backend cpu --source $PAIR/source --helper $PAIR/helper --out $DIR $* --provenance $DIR.prov.jsonl --force --quiet" >> "$LOG"
    if "$BIN" apply --backend cpu --source "$PAIR/source" --helper "$PAIR/helper" --out "$DIR" "$@" \
        --provenance "$DIR.prov.jsonl" --force --quiet > "$WORK/$n.stdout" 2> "$err"; then
        STATUS=ok
    elif grep -qiE "unexpected argument|invalid value|unrecognized|isn't a valid value|possible values" "$err"; then
        STATUS="n/a (flag missing)"
    else
        STATUS="n/a (apply failed: $(grep -m1 -v '^\s*$' "$err"))"
    fi
    cat "$err" >> "$LOG"
}

# bpb MODEL TEXT -> prints "bits_per_byte tokens_per_byte" or "n/a (...)"
bpb() {
    bin_ready || exit 1
    local out
    echo "+ $BIN perplexity --model $1 --text $2 --context $CONTEXT --max-bytes $MAX_BYTES --json --quiet" >> "$LOG"
    if out=$("$BIN" perplexity --model "$1" --text "$2" --context "$CONTEXT" --max-bytes "$MAX_BYTES" --json --quiet 2>> "$LOG"); then
        echo "$out" | "$PY" -c 'import json,sys; m=json.load(sys.stdin)["models"][0]; b, t = m.get("bits_per_byte"), m.get("tokens_per_byte"); print("%.3f %.3f" % (b, t) if b is not None else "n/a (nothing scored)")'
    else
        echo "n/a (perplexity failed, see $LOG)"
    fi
}

counts() {  # counts from clp_transfer.json
    "$PY" -c 'import json,sys; c=json.load(open(sys.argv[1]))["counts"]; print(", ".join(f"{k} {v}" for k,v in c.items()))' "$1/clp_transfer.json" 2>/dev/null || echo "-"
}

# derive MODE BASE OUT: the random-rows and oracle baselines (see the header).
derive() {
    "$PY" - "$@" "$PAIR" <<'EOF'
import glob, json, os, shutil, sys
import numpy as np
from safetensors.numpy import load_file, save_file

mode, base, out, pair = sys.argv[1:5]
if os.path.exists(out):
    shutil.rmtree(out)
shutil.copytree(base, out)
prov = [json.loads(l) for l in open(base + ".prov.jsonl")]
replace = sorted(p["id"] for p in prov if p["method"] != "special_role")
src = {}
for f in glob.glob(f"{pair}/source/*.safetensors"):
    src.update(load_file(f))
names = [n for n in ("model.embed_tokens.weight", "lm_head.weight") if n in src]
rows = {}
if mode == "random":
    rng = np.random.default_rng(0)
    for n in names:
        s = src[n].astype(np.float64)
        rows[n] = {i: (s.mean(0) + s.std(0) * rng.standard_normal(s.shape[1])).astype(src[n].dtype)
                   for i in replace}
else:  # oracle: T-only word tokens take the source row of their translation
    # GPT-2 byte-level alphabet, to read the target tokens as text
    bs = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    cs = bs[:] + [256 + k for k in range(256) if k not in bs]
    bs = bs + [k for k in range(256) if k not in bs]
    unbyte = {chr(c): b for b, c in zip(bs, cs)}
    dictionary = json.load(open(f"{pair}/dictionary.json"))
    svocab = json.load(open(f"{pair}/source/tokenizer.json"))["model"]["vocab"]
    hits = 0
    for p in prov:
        if p["method"] == "special_role":
            continue
        try:
            text = bytes(unbyte[ch] for ch in p["token"]).decode()
        except (KeyError, UnicodeDecodeError):
            continue
        lead, w = text.startswith(" "), text.strip()
        if not w or w[0].lower() + w[1:] not in dictionary:
            continue
        sw = dictionary[w[0].lower() + w[1:]]
        if w[0].isupper():
            sw = sw[0].upper() + sw[1:]
        for cand in (("▁" if lead else "") + sw, "▁" + sw, sw):
            if cand in svocab:
                for n in names:
                    rows.setdefault(n, {})[p["id"]] = src[n][svocab[cand]]
                hits += 1
                break
    print(f"oracle: {hits} of {len(replace)} computed rows taken from their translation", file=sys.stderr)
for f in glob.glob(f"{out}/*.safetensors"):
    t = {k: np.array(x) for k, x in load_file(f).items()}
    changed = False
    for n, rs in rows.items():
        if n in t:
            for i, r in rs.items():
                t[n][i] = r
            changed = True
    if changed:
        save_file(t, f, metadata={"format": "pt"})
EOF
}

echo "building transfers into $WORK (log: $LOG)"
NAMES=() DIRS=() STATUSES=() FLAGS=()
i=0
for m in "${METHODS[@]}"; do
    i=$((i + 1))
    name=${m%%|*} flags=${m#*|}
    # shellcheck disable=SC2086
    run_apply "$i-$(echo "$name" | tr -c 'a-z0-9=\n' '_')" $flags
    NAMES+=("$name") DIRS+=("$DIR") STATUSES+=("$STATUS") FLAGS+=("${flags:-(none)}")
    echo "  $name: $STATUS"
done
# baselines
for b in "random rows, exact overlap kept|random|1" "random rows, canonical overlap kept|random|4" \
         "oracle: canonical softmax k=10 + dictionary rows|oracle|5"; do
    IFS='|' read -r name mode from <<< "$b"
    base=${DIRS[$((from - 1))]} st=${STATUSES[$((from - 1))]}
    out=$WORK/b-$mode-$from
    if [ "$st" = ok ] && derive "$mode" "$base" "$out" 2>> "$LOG"; then st=ok; else st="n/a (base ${NAMES[$((from - 1))]}: $st)"; fi
    NAMES+=("$name") DIRS+=("$out") STATUSES+=("$st") FLAGS+=("from ${NAMES[$((from - 1))]}")
    echo "  $name: $st"
done

TS=$PAIR/text_source.jsonl TT=$PAIR/text_target.jsonl
echo "scoring (max $MAX_BYTES per text, context $CONTEXT)"
SRC_S=$(bpb "$PAIR/source" "$TS"); SRC_T=$(bpb "$PAIR/source" "$TT"); HLP_T=$(bpb "$PAIR/helper" "$TT")
ROWS=()
for k in "${!NAMES[@]}"; do
    if [ "${STATUSES[$k]}" = ok ]; then
        r=$(bpb "${DIRS[$k]}" "$TT")
        c=$(counts "${DIRS[$k]}")
    else
        r=${STATUSES[$k]} c=-
    fi
    ROWS+=("$r|$c")
    echo "  ${NAMES[$k]}: $r"
done

v() { echo "$1" | awk '{print $1}'; }
tpb() { echo "$1" | awk 'NF==2 {print $2} NF!=2 {print "-"}'; }
echo
echo "Bits per byte (lower is better; $MAX_BYTES of each held-out text, context $CONTEXT; $(basename "$BIN"))"
echo
echo "| model | flags | bpb S text | bpb T text | tokens/byte T | rows |"
echo "|---|---|---|---|---|---|"
echo "| source (own tokenizer) | - | $(v "$SRC_S") | $(v "$SRC_T") | $(tpb "$SRC_T") | - |"
echo "| helper (own tokenizer) | - | - | $(v "$HLP_T") | $(tpb "$HLP_T") | - |"
for k in "${!NAMES[@]}"; do
    r=${ROWS[$k]%%|*} c=${ROWS[$k]#*|}
    case $r in n/a*) echo "| ${NAMES[$k]} | \`${FLAGS[$k]}\` | - | $r | - | - |" ;;
        *) echo "| ${NAMES[$k]} | \`${FLAGS[$k]}\` | - | $(v "$r") | $(tpb "$r") | $c |" ;; esac
done
echo
echo "clp-gpu evaluate --backend cpu --source $PAIR/source --helper $PAIR/helper"
echo
bin_ready || exit 1
echo "+ $BIN evaluate --backend cpu --source $PAIR/source --helper $PAIR/helper" >> "$LOG"
"$BIN" evaluate --backend cpu --source "$PAIR/source" --helper "$PAIR/helper" 2>> "$LOG" || echo "evaluate failed, see $LOG"
echo
echo "notices and warnings seen (full log: $LOG):"
grep -iE "notice|warn|error" "$LOG" | sort | uniq -c | head -40
echo "total $(( $(date +%s) - START ))s"
