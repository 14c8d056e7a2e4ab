#!/usr/bin/env python3
"""Writes a random-weight GGUF with Qwen3-8B's exact shapes for llama.cpp, the baseline of the side-by-side CPU
benchmark (bench/cpu-vs-llama-cpp.mjs). Speed depends only on shapes and formats, not on the values, as long as
they are finite and of a sane size, which the random blocks here are.

  python make-gguf.py OUT.gguf --head q6_k   # Q4_0 linears + Q6_K lm_head (llama-quantize's Q4_0 choice)
  python make-gguf.py OUT.gguf --head f16    # Q4_0 linears + F16 lm_head (the same head bytes as an AWQ checkpoint)

Needs the `gguf` and `numpy` pip packages. No vocabulary is stored (tokenizer model "none" with vocab_size set):
llama-bench and llama-batched-bench draw token ids at random.
"""
import argparse

import numpy as np
from gguf import GGMLQuantizationType as Q
from gguf import GGUFWriter

# Qwen3-8B (config.json of Qwen/Qwen3-8B)
HIDDEN, LAYERS, INTER, HEADS, KV_HEADS, HEAD_DIM, VOCAB = 4096, 36, 12288, 32, 8, 128, 151936

BLOCK = {Q.Q4_0: (32, 18), Q.Q6_K: (256, 210)}  # weights per block, bytes per block


def random_blocks(rng: np.random.Generator, qtype: Q, rows: int, cols: int) -> np.ndarray:
    """(rows, bytes per row) uint8: random quants, with every block's fp16 scale set to a small finite value."""
    per, size = BLOCK[qtype]
    data = rng.integers(0, 256, size=(rows, cols // per, size), dtype=np.uint8)
    d = rng.uniform(0.001, 0.004, size=(rows, cols // per)).astype(np.float16).view(np.uint8).reshape(rows, -1, 2)
    if qtype == Q.Q4_0:  # block_q4_0 = {fp16 d; uint8 qs[16]}
        data[:, :, 0:2] = d
    else:  # block_q6_K = {uint8 ql[128]; uint8 qh[64]; int8 scales[16]; fp16 d}
        data[:, :, 192:208] = rng.integers(1, 32, size=(rows, cols // per, 16), dtype=np.uint8)
        data[:, :, 208:210] = d
    return data.reshape(rows, -1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--head", choices=["q6_k", "f16"], default="q6_k")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)

    # (name, rows = out_features, cols = in_features, type); ggml's shape is (cols, rows)
    tensors = [("token_embd.weight", VOCAB, HIDDEN, Q.Q4_0)]
    for i in range(LAYERS):
        b = f"blk.{i}."
        tensors += [
            (b + "attn_norm.weight", 1, HIDDEN, Q.F32),
            (b + "attn_q.weight", HEADS * HEAD_DIM, HIDDEN, Q.Q4_0),
            (b + "attn_k.weight", KV_HEADS * HEAD_DIM, HIDDEN, Q.Q4_0),
            (b + "attn_v.weight", KV_HEADS * HEAD_DIM, HIDDEN, Q.Q4_0),
            (b + "attn_q_norm.weight", 1, HEAD_DIM, Q.F32),
            (b + "attn_k_norm.weight", 1, HEAD_DIM, Q.F32),
            (b + "attn_output.weight", HIDDEN, HEADS * HEAD_DIM, Q.Q4_0),
            (b + "ffn_norm.weight", 1, HIDDEN, Q.F32),
            (b + "ffn_gate.weight", INTER, HIDDEN, Q.Q4_0),
            (b + "ffn_up.weight", INTER, HIDDEN, Q.Q4_0),
            (b + "ffn_down.weight", HIDDEN, INTER, Q.Q4_0),
        ]
    tensors += [("output_norm.weight", 1, HIDDEN, Q.F32),
                ("output.weight", VOCAB, HIDDEN, Q.Q6_K if args.head == "q6_k" else Q.F16)]

    w = GGUFWriter(args.out, "qwen3")
    w.add_name(f"random Qwen3-8B shapes, Q4_0 + {args.head} head")
    w.add_file_type(2)  # MOSTLY_Q4_0
    w.add_context_length(40960)
    w.add_embedding_length(HIDDEN)
    w.add_block_count(LAYERS)
    w.add_feed_forward_length(INTER)
    w.add_head_count(HEADS)
    w.add_head_count_kv(KV_HEADS)
    w.add_key_length(HEAD_DIM)
    w.add_value_length(HEAD_DIM)
    w.add_rope_freq_base(1e6)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_vocab_size(VOCAB)
    w.add_tokenizer_model("none")
    w.add_quantization_version(2)

    def payload(rows: int, cols: int, qtype: Q) -> np.ndarray:
        if qtype == Q.F32:  # norm weights near 1
            return rng.uniform(0.9, 1.1, size=cols).astype(np.float32)
        if qtype == Q.F16:
            return (rng.standard_normal(size=(rows, cols), dtype=np.float32) * 0.02).astype(np.float16)
        return random_blocks(rng, qtype, rows, cols)

    for name, rows, cols, qtype in tensors:
        if qtype in (Q.F32, Q.F16):
            shape = (cols,) if rows == 1 else (rows, cols)
            nbytes = rows * cols * (4 if qtype == Q.F32 else 2)
            w.add_tensor_info(name, shape, np.float32 if qtype == Q.F32 else np.float16, nbytes)
        else:
            per, size = BLOCK[qtype]
            w.add_tensor_info(name, (rows, cols // per * size), np.uint8, rows * cols // per * size, raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    for name, rows, cols, qtype in tensors:  # one tensor in memory at a time
        w.write_tensor_data(payload(rows, cols, qtype))
    w.close()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
