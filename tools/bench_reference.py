#!/usr/bin/env python3
"""Times the PyTorch reference modules at their full configs with random weights, to put beside
our criterion benches (same machine, same thread count, same shapes).

    python tools/bench_reference.py umt5 --threads 2
"""

import argparse
import json
import os
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _timeit(fn, reps):
    fn()  # warm-up
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    times.sort()
    return times[len(times) // 2]


def bench_umt5(reps):
    from transformers import UMT5Config, UMT5EncoderModel

    with open(os.path.join(ROOT, "tests", "fixtures", "manifests", "umt5-base.json")) as f:
        cfg = json.load(f)["config"]
    model = UMT5EncoderModel(UMT5Config(**cfg)).eval()
    for length in (64, 256):
        ids = (torch.arange(length) * 37 % 256000)[None]
        mask = torch.ones(1, length, dtype=torch.long)
        with torch.no_grad():
            t = _timeit(lambda: model(input_ids=ids, attention_mask=mask), reps)
        print(f"umt5_base_encode_f32/tokens/{length}: {t * 1e3:.1f} ms (median of {reps})")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["umt5"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=10)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    {"umt5": bench_umt5}[args.what](args.reps)


if __name__ == "__main__":
    main()
