#!/usr/bin/env python3
"""The local embedder against an anchor: the same all-MiniLM-L6-v2 in ONNX
Runtime, one thread each, on the same texts, interleaved (issue #19).

    python tests/semantic/anchor.py --model-dir MODEL_DIR \
        --bin target/release/examples/embed_anchor [--rounds 10] [--out FILE]

There is no ONNX file of this model on PyPI and no PyTorch here, so the
graph is built from model.safetensors with onnx.helper, op for op as
reference.py computes it (embeddings + LayerNorm, 6 encoder layers with
12-head self-attention, erf GELU, mean pooling, L2 normalisation), float32,
opset 17. ONNX Runtime runs it on the CPU with one intra-op and one
inter-op thread, sequential execution and ORT_ENABLE_ALL (the fused ops it
made are listed). Tollgate's side is the `embed_anchor` example (the
proxy's own LocalEmbedder), run with RAYON_NUM_THREADS=1 and the proxy
binary's jemalloc settings.

Texts: prompts of tests/semantic/pairs.jsonl and heldout.jsonl (5-42
tokens), and texts of 64, 128 and 200 tokens (whole words, so up to 2
fewer) made by joining those prompts, and longer ones cut at 256 by
truncation.
Both sides tokenise with the same tokenizer.json, truncating at 256. Each
round times every text once on each side, the order rotating from round to
round; a time covers text to unit vector (tokenising included) for both,
as the process's CPU time and as wall time.

Prints per length bucket the median and p90 CPU time per text of each
side (wall-time medians beside them), the ratio Tollgate/ORT, the worst
component difference between the two vectors, and the load average before
and after; --out writes the figures as JSON. --tollgate adds other builds
or settings of the example to the same run. Needs onnx, onnxruntime, numpy
and tokenizers (not part of the test suite; see tests/semantic/REPORT.md).
"""
import argparse
import collections
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from tokenizers import Tokenizer

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from reference import load_safetensors  # noqa: E402

MAX_TOKENS = 256
SYNTHETIC = (64, 128, 200, 256)


# === the ONNX graph ===


def build_graph(model_dir):
    """all-MiniLM-L6-v2 as an ONNX model: input_ids [1, n] int64 -> [1, 384]."""
    cfg = json.load(open(model_dir / "config.json"))
    w = {k: v.astype(np.float32) for k, v in load_safetensors(model_dir / "model.safetensors").items()}
    h, heads = cfg["hidden_size"], cfg["num_attention_heads"]
    d = h // heads
    eps = cfg["layer_norm_eps"]
    inits, nodes = [], []

    def const(name, array):
        inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def node(op, inputs, **attrs):
        out = f"{op.lower()}_{len(nodes)}"
        nodes.append(helper.make_node(op, inputs, [out], **attrs))
        return out

    def linear(x, prefix):
        # x @ W^T + b, as a PyTorch export writes nn.Linear.
        wt = const(prefix + ".weight_t", w[prefix + ".weight"].T.copy())
        return node("Add", [node("MatMul", [x, wt]), const(prefix + ".bias", w[prefix + ".bias"])])

    def layer_norm(x, prefix):
        return node(
            "LayerNormalization",
            [x, const(prefix + ".weight", w[prefix + ".weight"]), const(prefix + ".bias", w[prefix + ".bias"])],
            axis=-1,
            epsilon=eps,
        )

    e = "embeddings."
    words = node("Gather", [const(e + "word", w[e + "word_embeddings.weight"]), "input_ids"])
    n = node("Slice", [node("Shape", ["input_ids"]), const("one", np.array([1])), const("two", np.array([2]))])
    positions = node("Slice", [const(e + "position", w[e + "position_embeddings.weight"]), const("zero", np.array([0])), n, const("axis0", np.array([0]))])
    x = node("Add", [node("Add", [words, positions]), const(e + "type0", w[e + "token_type_embeddings.weight"][0])])
    x = layer_norm(x, e + "LayerNorm")
    split = const("split_shape", np.array([0, -1, heads, d]))
    merge = const("merge_shape", np.array([0, -1, h]))
    scale = const("sqrt_d", np.array(math.sqrt(d), dtype=np.float32))
    sqrt2 = const("sqrt2", np.array(math.sqrt(2), dtype=np.float32))
    one = const("one_f", np.array(1, dtype=np.float32))
    half = const("half_f", np.array(0.5, dtype=np.float32))
    for i in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        q = node("Transpose", [node("Reshape", [linear(x, p + "attention.self.query"), split])], perm=[0, 2, 1, 3])
        k = node("Transpose", [node("Reshape", [linear(x, p + "attention.self.key"), split])], perm=[0, 2, 3, 1])
        v = node("Transpose", [node("Reshape", [linear(x, p + "attention.self.value"), split])], perm=[0, 2, 1, 3])
        s = node("Softmax", [node("Div", [node("MatMul", [q, k]), scale])], axis=-1)
        ctx = node("Reshape", [node("Transpose", [node("MatMul", [s, v])], perm=[0, 2, 1, 3]), merge])
        a = layer_norm(node("Add", [linear(ctx, p + "attention.output.dense"), x]), p + "attention.output.LayerNorm")
        inter = linear(a, p + "intermediate.dense")
        gelu = node("Mul", [node("Mul", [inter, node("Add", [node("Erf", [node("Div", [inter, sqrt2])]), one])]), half])
        x = layer_norm(node("Add", [linear(gelu, p + "output.dense"), a]), p + "output.LayerNorm")
    pooled = node("ReduceMean", [x], axes=[1], keepdims=0)
    nodes.append(helper.make_node("LpNormalization", [pooled], ["embedding"], axis=-1, p=2))
    graph = helper.make_graph(
        nodes,
        "all-MiniLM-L6-v2",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, [1, "n"])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, [1, h])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model


def session(model_path, optimized_path):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.optimized_model_filepath = str(optimized_path)
    return ort.InferenceSession(str(model_path), so, providers=["CPUExecutionProvider"])


def op_counts(path):
    return dict(sorted(collections.Counter(n.op_type for n in onnx.load(str(path)).graph.node).items()))


# === the texts ===


def texts(tok):
    """(bucket, text) pairs: a spread of the labelled prompts by length, and
    joined prompts of (at most) 64, 128 and 200 tokens and of 256 after
    truncation."""
    prompts = []
    for name in ("pairs.jsonl", "heldout.jsonl"):
        for line in open(HERE / name):
            if line.strip():
                p = json.loads(line)
                prompts += [p["a"], p["b"]]
    prompts = list(dict.fromkeys(prompts))
    size = {t: len(tok.encode(t).ids) for t in prompts}
    out = []
    for bucket, lo, hi, count in (("5-16", 0, 16, 16), ("17-42", 17, 1000, 16)):
        inside = sorted((t for t in prompts if lo <= size[t] <= hi), key=lambda t: (size[t], t))
        step = max(1, len(inside) // count)
        out += [(bucket, t) for t in inside[::step][:count]]
    for target in SYNTHETIC:
        for j in range(6):
            words = " ".join(prompts[(j * 97 + i) % len(prompts)] for i in range(60)).split()
            text = ""
            for word in words:
                longer = f"{text} {word}".strip()
                if len(tok.encode(longer).ids) > target:
                    break
                text = longer
            if target == MAX_TOKENS:
                text = " ".join(words)  # longer than 256: cut by truncation
            out.append((str(target), text))
    return out


# === the contenders ===


class Tollgate:
    """The embed_anchor example, one text per request line."""

    def __init__(self, binary, model_dir, env):
        # One thread (unless the contender says otherwise), and the proxy
        # binary's jemalloc options.
        env = {
            **os.environ,
            "RAYON_NUM_THREADS": "1",
            "_RJEM_MALLOC_CONF": "background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0",
            **env,
        }
        self.proc = subprocess.Popen(
            [binary, str(model_dir)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True
        )

    def embed(self, text):
        self.proc.stdin.write(json.dumps({"text": text}) + "\n")
        self.proc.stdin.flush()
        r = json.loads(self.proc.stdout.readline())
        return r["ms"], r["cpu_ms"], np.array(r["vector"], dtype=np.float32), r["tokens"]

    def close(self):
        self.proc.stdin.close()
        self.proc.wait()


class Ort:
    def __init__(self, sess, tok):
        self.sess, self.tok = sess, tok

    def embed(self, text):
        cpu, start = time.process_time(), time.perf_counter()
        ids = np.array([self.tok.encode(text).ids], dtype=np.int64)
        v = self.sess.run(None, {"input_ids": ids})[0][0]
        return (time.perf_counter() - start) * 1e3, (time.process_time() - cpu) * 1e3, v, ids.shape[1]

    def close(self):
        pass


def contender(spec):
    """LABEL=PATH[,NAME=VALUE...]: an embed_anchor binary and its extra environment."""
    label, _, rest = spec.partition("=")
    binary, *env = rest.split(",")
    if not label or not binary:
        raise argparse.ArgumentTypeError(f"expected LABEL=PATH[,NAME=VALUE...], got {spec!r}")
    return label, binary, dict(e.split("=", 1) for e in env)


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", required=True, type=Path)
    ap.add_argument("--bin", help="the embed_anchor example, built --release --features local-embeddings")
    ap.add_argument(
        "--tollgate",
        type=contender,
        action="append",
        default=[],
        metavar="LABEL=PATH[,NAME=VALUE...]",
        help="another embed_anchor build or setting, in the same run (repeatable)",
    )
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--reference", type=int, default=2, help="texts also checked against reference.py (slow)")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    tollgates = ([("tollgate", args.bin, {})] if args.bin else []) + args.tollgate
    if not tollgates:
        ap.error("--bin or --tollgate is needed")

    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    tok = Tokenizer.from_file(str(args.model_dir / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(MAX_TOKENS)
    with tempfile.TemporaryDirectory(prefix="tollgate-anchor-") as tmp:
        work = Path(tmp)
        onnx.save(build_graph(args.model_dir), work / "minilm.onnx")
        sess = session(work / "minilm.onnx", work / "minilm.opt.onnx")
        fused = op_counts(work / "minilm.opt.onnx")
    sides = {"ort": Ort(sess, tok)}
    for label, binary, env in tollgates:
        sides[label] = Tollgate(binary, args.model_dir, env)
    items = texts(tok)
    load_before = os.getloadavg()

    # Warm all up (first calls allocate), then the timed rounds: each text
    # on every side in turn, the order rotating from round to round.
    for _, text in items[:: max(1, len(items) // 8)]:
        for side in sides.values():
            side.embed(text)
    names = list(sides)
    wall = {name: [[] for _ in items] for name in names}
    cpu = {name: [[] for _ in items] for name in names}
    worst = {name: [0.0] * len(items) for name in names[1:]}
    tokens = [0] * len(items)
    for r in range(args.rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        if r // len(names) % 2:
            order.reverse()
        for i, (_, text) in enumerate(items):
            vecs = {}
            for name in order:
                ms, cpu_ms, vecs[name], tokens[i] = sides[name].embed(text)
                wall[name][i].append(ms)
                cpu[name][i].append(cpu_ms)
            for name in names[1:]:
                worst[name][i] = max(worst[name][i], float(np.abs(vecs[name] - vecs["ort"]).max()))
    load_after = os.getloadavg()
    for side in sides.values():
        side.close()

    # ORT against the independent NumPy implementation, on a few texts.
    reference_diff = None
    if args.reference:
        import reference

        picks = [items[0][1], items[-1][1]][: args.reference]
        reference_diff = max(
            float(np.abs(reference.embed(str(args.model_dir), t)[1] - sides["ort"].embed(t)[2]).max()) for t in picks
        )

    rows = []
    for b in dict.fromkeys(b for b, _ in items):
        idx = [i for i, (bb, _) in enumerate(items) if bb == b]
        row = {"bucket": b, "texts": len(idx), "tokens": [min(tokens[i] for i in idx), max(tokens[i] for i in idx)]}
        for name in names:
            ws = [t for i in idx for t in wall[name][i]]
            cs = [t for i in idx for t in cpu[name][i]]
            row[name] = {
                "median_ms": statistics.median(ws),
                "p90_ms": pct(ws, 0.9),
                "cpu_median_ms": statistics.median(cs),
                "cpu_p90_ms": pct(cs, 0.9),
            }
            if name != "ort":
                row[name]["ratio"] = row[name]["median_ms"] / row["ort"]["median_ms"]
                row[name]["cpu_ratio"] = row[name]["cpu_median_ms"] / row["ort"]["cpu_median_ms"]
                row[name]["worst_diff"] = max(worst[name][i] for i in idx)
        rows.append(row)

    result = {
        "rounds": args.rounds,
        "load_before": load_before,
        "load_after": load_after,
        "cpu": cpu_name(),
        "onnxruntime": ort.__version__,
        "python": platform.python_version(),
        "contenders": {label: {"bin": binary, "env": env} for label, binary, env in tollgates},
        "ort_ops_after_optimisation": fused,
        "ort_vs_reference_py_worst_diff": reference_diff,
        "buckets": rows,
    }
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(table(result))


def cpu_name():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def table(res):
    la = lambda t: " ".join(f"{x:.2f}" for x in t)  # noqa: E731
    labels = list(res["contenders"])
    lines = [
        f"{res['cpu']}; onnxruntime {res['onnxruntime']}; {res['rounds']} rounds; "
        f"load before {la(res['load_before'])}, after {la(res['load_after'])}",
        "",
        "CPU time per text, median / p90 (wall-time medians in brackets):",
        "",
        "| tokens | texts | ORT | " + " | ".join(f"{l} | {l}/ORT" for l in labels) + " |",
        "|---|---|---|" + "---|---|" * len(labels),
    ]
    for r in res["buckets"]:
        lo, hi = r["tokens"]
        cells = [f"{lo}" if lo == hi else f"{lo}-{hi}", str(r["texts"])]
        for name in ["ort"] + labels:
            c = r[name]
            cells.append(f"{c['cpu_median_ms']:.2f} / {c['cpu_p90_ms']:.2f} ms ({c['median_ms']:.2f})")
            if name != "ort":
                cells.append(f"{c['cpu_ratio']:.2f}× ({c['ratio']:.2f}×)")
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    for l in labels:
        w = max(r[l]["worst_diff"] for r in res["buckets"])
        lines.append(f"{l}: worst component difference from ORT's vector {w:.1e}")
    lines.append("ORT's graph after ORT_ENABLE_ALL: " + ", ".join(f"{k} {v}" for k, v in res["ort_ops_after_optimisation"].items()))
    if res["ort_vs_reference_py_worst_diff"] is not None:
        lines.append(f"ORT against reference.py: worst component difference {res['ort_vs_reference_py_worst_diff']:.1e}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
