#!/usr/bin/env python3
"""An independent NumPy implementation of a BERT sentence embedder
(mean pooling, unit length), to check the proxy's candle implementation.

    python tests/semantic/reference.py MODEL_DIR "A man is eating food."

Prints the first components of the embedding. Needs numpy and tokenizers
(not part of the test suite; the Rust test holds the numbers it printed).
"""
import json
import math
import struct
import sys

import numpy as np
from tokenizers import Tokenizer


def load_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, meta in header.items():
        if name == "__metadata__" or meta["dtype"] != "F32":
            continue
        a, b = meta["data_offsets"]
        out[name] = np.frombuffer(data[a:b], dtype="<f4").reshape(meta["shape"]).astype(np.float64)
    return out


def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


erf = np.vectorize(math.erf)


def embed(model_dir, text, max_tokens=256):
    cfg = json.load(open(f"{model_dir}/config.json"))
    w = load_safetensors(f"{model_dir}/model.safetensors")
    tok = Tokenizer.from_file(f"{model_dir}/tokenizer.json")
    tok.no_padding()
    tok.enable_truncation(max_tokens)
    ids = tok.encode(text).ids
    n, h, heads = len(ids), cfg["hidden_size"], cfg["num_attention_heads"]
    d = h // heads
    eps = cfg["layer_norm_eps"]
    lin = lambda x, p: x @ w[p + ".weight"].T + w[p + ".bias"]
    x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:n] + w["embeddings.token_type_embeddings.weight"][0]
    x = layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps)
    for i in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        q = lin(x, p + "attention.self.query").reshape(n, heads, d).transpose(1, 0, 2)
        k = lin(x, p + "attention.self.key").reshape(n, heads, d).transpose(1, 0, 2)
        v = lin(x, p + "attention.self.value").reshape(n, heads, d).transpose(1, 0, 2)
        s = q @ k.transpose(0, 2, 1) / math.sqrt(d)
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        ctx = (s @ v).transpose(1, 0, 2).reshape(n, h)
        a = layer_norm(lin(ctx, p + "attention.output.dense") + x, w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"], eps)
        inter = lin(a, p + "intermediate.dense")
        inter = 0.5 * inter * (1 + erf(inter / math.sqrt(2)))
        x = layer_norm(lin(inter, p + "output.dense") + a, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"], eps)
    pooled = x.mean(0)
    return ids, pooled / np.linalg.norm(pooled)


if __name__ == "__main__":
    ids, v = embed(sys.argv[1], sys.argv[2])
    print("tokens:", len(ids))
    print(", ".join(f"{x:.6f}" for x in v[:8]))
