#!/usr/bin/env python3
"""Times the PyTorch reference modules at their full configs with random weights, to put beside
our criterion benches (same machine, same thread count, same shapes).

    python tools/bench_reference.py umt5 --threads 2
    ACESTEP_REFERENCE=/path/to/ACE-Step python tools/bench_reference.py dit --threads 2 --reps 3
    ACESTEP_REFERENCE=/path/to/ACE-Step python tools/bench_reference.py dcae --threads 2 --reps 3
    ACESTEP_REFERENCE=/path/to/ACE-Step python tools/bench_reference.py lyrics --reps 10
    python tools/bench_reference.py kernels --threads 2 --reps 5
    ACESTEP_REFERENCE=... python tools/bench_reference.py dit --device cuda --dtype bf16 --reps 5
    ACESTEP_REFERENCE=... python tools/bench_reference.py pipeline --checkpoint DIR --seconds 10 --steps 27

`pipeline` runs one whole text2music generation with the reference's `ACEStepPipeline` on a
checkpoint folder (e.g. the full-size random one of `examples/random_checkpoint.rs`), with its
defaults (Euler, APG at 15, ERG on, seed 42, no lyrics), and prints the load time, the
generation's wall time and the process's peak resident memory; put it beside
`/usr/bin/time -v acestep generate --checkpoint-dir DIR --duration 10 --steps 27 --seed 42`.

`--device` / `--dtype` (umt5, dit, dcae) move the models and their float inputs there; each timed
call ends with a device synchronization. The figures' names keep their `_f32` prefix (the
benches' names); the header line says where they ran.
"""

import argparse
import json
import os
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# Where the umt5 / dit / dcae benches run (--device, --dtype).
DEVICE = torch.device("cpu")
DTYPE = torch.float32


def _on(x):
    """`x` on the bench's device; floating-point tensors in its dtype."""
    return x.to(DEVICE, DTYPE) if x.is_floating_point() else x.to(DEVICE)


def _sync():
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


def _timeit(fn, reps):
    fn()  # warm-up
    _sync()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        _sync()
        times.append(time.perf_counter() - t)
    times.sort()
    return times[len(times) // 2]


def bench_umt5(reps):
    from transformers import UMT5Config, UMT5EncoderModel

    with open(os.path.join(ROOT, "tests", "fixtures", "manifests", "umt5-base.json")) as f:
        cfg = json.load(f)["config"]
    model = UMT5EncoderModel(UMT5Config(**cfg)).eval().to(DEVICE, DTYPE)
    for length in (64, 256):
        ids = _on((torch.arange(length) * 37 % 256000)[None])
        mask = _on(torch.ones(1, length, dtype=torch.long))
        with torch.no_grad():
            t = _timeit(lambda: model(input_ids=ids, attention_mask=mask), reps)
        print(f"umt5_base_encode_f32/tokens/{length}: {t * 1e3:.1f} ms (median of {reps})")


def _full_dit():
    """The reference DiT at the full config (default init) and the bench's condition inputs:
    64 prompt tokens, 256 lyric tokens, batch 1."""
    import sys
    ref = os.environ.get("ACESTEP_REFERENCE")
    if not ref:
        raise SystemExit("set ACESTEP_REFERENCE=/path/to/ACE-Step (the reference checkout)")
    sys.path.insert(0, ref)
    from acestep.models.ace_step_transformer import ACEStepTransformer2DModel

    with open(os.path.join(ROOT, "tests", "fixtures", "manifests", "ace_step_transformer.json")) as f:
        cfg = json.load(f)["config"]
    model = ACEStepTransformer2DModel(**cfg).eval().to(DEVICE, DTYPE)
    inputs = (torch.randn(1, 64, 768), torch.ones(1, 64, dtype=torch.long), torch.zeros(1, 512),
              (torch.arange(256) * 7 % 6000)[None], torch.ones(1, 256, dtype=torch.long))
    return model, tuple(_on(x) for x in inputs)


def _decode_fn(model, enc, enc_mask, length):
    """One `decode` of random latents of `length` frames at timestep 500."""
    lat = _on(torch.randn(1, 8, 16, length))
    mask = _on(torch.ones(1, length))
    ts = torch.tensor([500.0], device=DEVICE)  # the pipeline passes timesteps in f32
    return lambda: model.decode(hidden_states=lat, attention_mask=mask, encoder_hidden_states=enc,
                                encoder_hidden_mask=enc_mask, timestep=ts, output_length=length)


def bench_dit(reps):
    """One decode at T=107 and T=646 and one encode, full config, 64 prompt + 256 lyric tokens."""
    model, inputs = _full_dit()
    with torch.no_grad():
        t = _timeit(lambda: model.encode(*inputs), reps)
        print(f"dit_full_f32/encode: {t * 1e3:.1f} ms (median of {reps})")
        enc, enc_mask = model.encode(*inputs)
        for length in (107, 646):
            t = _timeit(_decode_fn(model, enc, enc_mask, length), reps)
            print(f"dit_full_f32/decode/T={length}: {t * 1e3:.1f} ms (median of {reps})")


def bench_dit_lora(reps):
    """decode at T=107 with a random rank-256 LoRA on the trainer's target modules
    (config/zh_rap_lora_config.json), as `load_lora` leaves the model (peft, unmerged), and
    without it, back to back."""
    from peft import LoraConfig

    model, inputs = _full_dit()
    with torch.no_grad():
        enc, enc_mask = model.encode(*inputs)
        fn = _decode_fn(model, enc, enc_mask, 107)
        t = _timeit(fn, reps)
        print(f"dit_full_f32/decode/T=107: {t * 1e3:.1f} ms (median of {reps})")
        model.add_adapter(LoraConfig(r=256, lora_alpha=32, use_rslora=True, init_lora_weights=False,
                                     target_modules=["speaker_embedder", "linear_q", "linear_k", "linear_v",
                                                     "to_q", "to_k", "to_v", "to_out.0"]),
                          adapter_name="bench")
        t = _timeit(fn, reps)
        print(f"dit_full_f32/decode_lora/T=107: {t * 1e3:.1f} ms (median of {reps})")


def bench_dcae(reps, only=None):
    """MusicDCAE.decode for 10 s (T=107) and 60 s (T=646), decode_overlap for 60 s and encode
    of 10 s of audio; full configs, random weights (default init). `only`: run just the benches
    whose name contains it (as criterion's filter: `--only encode`)."""
    import sys
    import tempfile
    ref = os.environ.get("ACESTEP_REFERENCE")
    if not ref:
        raise SystemExit("set ACESTEP_REFERENCE=/path/to/ACE-Step (the reference checkout)")
    sys.path.insert(0, ref)
    from diffusers import AutoencoderDC
    from acestep.music_dcae.music_vocoder import ADaMoSHiFiGANV1
    from acestep.music_dcae.music_dcae_pipeline import MusicDCAE

    def cfg(name):
        with open(os.path.join(ROOT, "tests", "fixtures", "manifests", name + ".json")) as f:
            c = json.load(f)["config"]
        return {k: v for k, v in c.items() if not k.startswith("_")}

    with tempfile.TemporaryDirectory() as d:
        AutoencoderDC(**cfg("music_dcae_f8c8")).save_pretrained(os.path.join(d, "dcae"))
        ADaMoSHiFiGANV1(**cfg("music_vocoder")).save_pretrained(os.path.join(d, "vocoder"))
        m = MusicDCAE(dcae_checkpoint_path=os.path.join(d, "dcae"),
                      vocoder_checkpoint_path=os.path.join(d, "vocoder")).eval().to(DEVICE, DTYPE)
    with torch.no_grad():
        def run(name, fn):
            if only is None or only in name:
                t = _timeit(fn, reps)
                print(f"music_dcae_full_f32/{name}: {t * 1e3:.1f} ms (median of {reps})")

        for length, secs in ((107, 10), (646, 60)):
            lat = _on(torch.randn(1, 8, 16, length))
            run(f"decode/{secs}s", lambda: m.decode(lat))
            if length > 516:
                run(f"decode_overlap/{secs}s", lambda: m.decode_overlap(lat))
        audio = _on(torch.randn(1, 2, 441000) * 0.1)
        run("encode/10s", lambda: m.encode(audio))


def bench_lyrics(reps):
    """The reference's `tokenize_lyrics` (and `get_lang` alone) on the committed corpus read as
    one song, as benches/lyrics.rs."""
    import sys

    sys.path.insert(0, os.environ.get("ACESTEP_REFERENCE", "."))
    from acestep.language_segmentation import LangSegment, language_filters
    from acestep.models.lyrics_utils.lyric_tokenizer import VoiceBpeTokenizer
    from acestep.pipeline_ace_step import ACEStepPipeline

    vocab = os.environ.get("ACESTEP_LYRIC_VOCAB",
                           os.path.join(ROOT, "..", "shared", "reference", "vocab.json"))
    pipe = ACEStepPipeline.__new__(ACEStepPipeline)
    pipe.lyric_tokenizer = VoiceBpeTokenizer(vocab_file=vocab)
    seg = LangSegment()
    seg.setfilters(language_filters.default)
    pipe.lang_segment = seg
    with open(os.path.join(ROOT, "tests", "fixtures", "lyrics", "reference.json"), encoding="utf-8") as f:
        song = "\n".join(r["line"] for r in json.load(f)["lines"])
    pipe.tokenize_lyrics(song)  # loads cutlet / MeCab
    t = _timeit(lambda: [pipe.get_lang(ln.strip()) for ln in song.split("\n") if ln.strip()], reps)
    print(f"lyrics_corpus_403_lines/detect_language: {t * 1e3:.1f} ms (median of {reps})")
    t = _timeit(lambda: pipe.tokenize_lyrics(song), reps)
    print(f"lyrics_corpus_403_lines/tokenize_lyrics: {t * 1e3:.1f} ms (median of {reps})")


def bench_kernels(reps):
    """PyTorch's own ops at the shapes of benches/kernels.rs (as the reference model runs them:
    separate activations, channel-last RMSNorm between movedims)."""
    import torch.nn.functional as F

    def report(name, fn, amount, unit="GFLOP/s"):
        t = _timeit(fn, reps)
        print(f"{name}: {t * 1e3:.2f} ms, {amount / t / 1e9:.1f} {unit} (median of {reps})")

    with torch.no_grad():
        for ch, length, k, d in ((512, 3424, 13, 1), (256, 13696, 11, 3), (128, 27392, 7, 5),
                                 (512, 3424, 3, 1), (64, 54784, 13, 1), (8, 438272, 3, 1)):
            x = torch.randn(2, ch, length)
            w = torch.randn(ch, ch, k) * 0.02
            b = torch.randn(ch) * 0.02
            report(f"conv1d/c{ch}_k{k}_d{d}_l{length}x2",
                   lambda: F.silu(F.conv1d(F.silu(x), w, b, padding=d * (k - 1) // 2, dilation=d)),
                   2 * 2 * ch * ch * k * length)
        x = torch.randn(2, 1024, 856)
        w = torch.randn(1024, 512, 8) * 0.02
        b = torch.randn(512) * 0.02
        report("conv_transpose1d/c1024to512_k8_s4_l856x2",
               lambda: F.conv_transpose1d(F.silu(x), w, b, stride=4, padding=2), 2 * 2 * 1024 * 512 * 8 * 856)
        for cin, cout, h, wd, k, stride, groups in ((128, 128, 128, 856, 3, 1, 1), (512, 512, 32, 214, 3, 1, 1),
                                                     (128, 256, 128, 856, 3, 2, 1), (512, 1024, 32, 214, 3, 2, 1),
                                                     (2, 128, 128, 856, 3, 1, 1), (8192, 8192, 16, 107, 3, 1, 8192),
                                                     (1024, 8192, 16, 107, 1, 1, 1)):
            x = torch.randn(1, cin, h, wd)
            w = torch.randn(cout, cin // groups, k, k) * 0.02
            b = torch.randn(cout) * 0.02
            report(f"conv2d/{cin}to{cout}_k{k}_s{stride}_g{groups}_{h}x{wd}",
                   lambda: F.conv2d(x, w, b, stride=stride, padding=k // 2, groups=groups),
                   2 * cout * (cin // groups) * k * k * (h // stride) * (wd // stride))
        for m, k, n in ((64, 768, 2048), (256, 1024, 4096), (107, 2560, 2560), (646, 2560, 2560)):
            x = torch.randn(1, m, k)
            lin = torch.nn.Linear(k, n)
            report(f"linear/{m}x{k}x{n}", lambda: lin(x), 2 * m * k * n)
        x = torch.randn(1, 128, 128, 856)
        norm = torch.nn.RMSNorm(128, eps=1e-5) if hasattr(torch.nn, "RMSNorm") else None
        if norm is not None:
            report("rms_norm_channels/128_128x856", lambda: norm(x.movedim(1, -1)).movedim(-1, 1),
                   2 * 4 * 128 * 128 * 856, unit="GB/s")


def bench_pipeline(args):
    import resource
    import sys
    import tempfile
    ref = os.environ.get("ACESTEP_REFERENCE")
    if not ref:
        raise SystemExit("set ACESTEP_REFERENCE=/path/to/ACE-Step (the reference checkout)")
    if not args.checkpoint:
        raise SystemExit("pipeline needs --checkpoint DIR")
    sys.path.insert(0, ref)
    import torchaudio
    import wave
    from acestep.pipeline_ace_step import ACEStepPipeline

    def save(path, wav, sample_rate, **_):
        # torchaudio >= 2.9 saves through torchcodec; a plain 16-bit WAV writer instead.
        pcm = (wav.float().clamp(-1, 1) * 32767).short().t().contiguous().cpu().numpy()
        with wave.open(str(path), "wb") as f:
            f.setnchannels(pcm.shape[1])
            f.setsampwidth(2)
            f.setframerate(sample_rate)
            f.writeframes(pcm.tobytes())

    torchaudio.save = save
    t = time.perf_counter()
    pipe = ACEStepPipeline(checkpoint_dir=args.checkpoint,
                           dtype="bfloat16" if DTYPE == torch.bfloat16 else "float32")
    pipe.load_checkpoint(args.checkpoint)
    _sync()
    print(f"reference pipeline load: {time.perf_counter() - t:.1f} s")
    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        pipe(audio_duration=args.seconds, prompt="pop, rock, upbeat, electric guitar, drums, 120 bpm",
             lyrics="", infer_step=args.steps, manual_seeds=[42], save_path=os.path.join(d, "out.wav"))
        _sync()
        wall = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"reference pipeline generate {args.seconds} s, {args.steps} steps: {wall:.1f} s; "
          f"peak RSS {peak:.2f} GiB")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["umt5", "dit", "dit-lora", "dcae", "lyrics", "kernels", "pipeline"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--device", default="cpu", help="umt5 / dit / dcae: cpu, cuda, cuda:N")
    ap.add_argument("--dtype", default="f32", choices=["f32", "bf16", "f16"])
    ap.add_argument("--checkpoint", help="pipeline: the checkpoint folder")
    ap.add_argument("--seconds", type=float, default=10.0, help="pipeline: audio duration")
    ap.add_argument("--steps", type=int, default=27, help="pipeline: diffusion steps")
    ap.add_argument("--only", help="dcae: only the benches whose name contains this (e.g. encode)")
    args = ap.parse_args()
    global DEVICE, DTYPE
    DEVICE = torch.device(args.device)
    DTYPE = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}[args.dtype]
    print(f"reference {args.what} on {DEVICE}, {args.dtype}, torch {torch.__version__}")
    torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    if args.what == "pipeline":
        bench_pipeline(args)
        return
    if args.what == "dcae":
        bench_dcae(args.reps, args.only)
        return
    {"umt5": bench_umt5, "dit": bench_dit, "dit-lora": bench_dit_lora,
     "lyrics": bench_lyrics, "kernels": bench_kernels}[args.what](args.reps)


if __name__ == "__main__":
    main()
