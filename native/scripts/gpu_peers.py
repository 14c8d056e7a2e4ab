#!/usr/bin/env python3
"""Peer baselines for gpu-check.sh, measured in the same run as our kernels: torch fp16 matmul (cuBLAS) on
dequantized weights and torch._weight_int4pack_mm (tinygemm, bf16, group 128). Prints "value<TAB>unit<TAB>name"
lines on stdout for gpu_check --peers; anything unavailable is reported as a skip line on stderr."""
import sys

quick = "--quick" in sys.argv
try:
    import torch
    assert torch.cuda.is_available(), "torch sees no CUDA device"
except Exception as e:  # noqa: BLE001
    print(f"peers: skipped ({e})", file=sys.stderr)
    sys.exit(0)

SHAPES = [(4096, 12288, "4096->12288"), (12288, 4096, "12288->4096"), (4096, 6144, "4096->6144"), (4096, 4096, "4096->4096")]
MS = [1, 16, 256, 1024] if quick else [1, 16, 64, 256, 1024, 4096]


def bench(fn, reps=30):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        ts.append(a.elapsed_time(b))
    ts.sort()
    return ts[len(ts) // 2]  # ms


def emit(value, unit, name):
    print(f"{value:.4f}\t{unit}\t{name}", flush=True)


torch.manual_seed(0)
print(f"peers: torch {torch.__version__} on {torch.cuda.get_device_name()}", file=sys.stderr)
for K, N, tag in SHAPES:
    copies = [torch.randn(K, N, device="cuda", dtype=torch.float16) * 0.02 for _ in range(3)]
    for M in MS:
        x = torch.randn(M, K, device="cuda", dtype=torch.float16)
        i = [0]

        def mm():
            i[0] += 1
            return x @ copies[i[0] % 3]

        ms = bench(mm)
        if M <= 16:
            emit((K * N * 2 + M * K * 2) / (ms * 1e-3) / 1e9, "GB/s", f"torch fp16 matmul {tag} M={M} GB/s (fp16 weights)")
        emit(2 * M * N * K / (ms * 1e-3) / 1e12, "TFLOP/s", f"torch fp16 matmul {tag} M={M} TFLOP/s")
    del copies

try:
    for K, N, tag in SHAPES:
        w = torch.randint(0, 16, (N, K), dtype=torch.int32, device="cuda")
        w_u8 = ((w[:, ::2] << 4) | w[:, 1::2]).to(torch.uint8)
        packed = torch._convert_weight_to_int4pack(w_u8, 8)
        sz = torch.randn(K // 128, N, 2, device="cuda", dtype=torch.bfloat16) * 0.01
        for M in MS:
            x = torch.randn(M, K, device="cuda", dtype=torch.bfloat16)
            ms = bench(lambda: torch._weight_int4pack_mm(x, packed, 128, sz))
            if M <= 16:
                emit((K * N / 2 + K // 128 * N * 4) / (ms * 1e-3) / 1e9, "GB/s", f"torch int4pack_mm {tag} M={M} GB/s")
            else:
                emit(2 * M * N * K / (ms * 1e-3) / 1e12, "TFLOP/s", f"torch int4pack_mm {tag} M={M} TFLOP/s")
except Exception as e:  # noqa: BLE001
    print(f"peers: torch._weight_int4pack_mm skipped ({type(e).__name__}: {e})", file=sys.stderr)
