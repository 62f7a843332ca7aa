#!/usr/bin/env python3
"""Parity fixture generator for acestep.

Builds modules of the reference implementation (the ACE-Step repository, plus transformers and
diffusers from PyPI) with small configs and seeded random weights, saves each module in the real
checkpoint format (``save_pretrained`` layout) with inputs and reference outputs as safetensors
under ``tests/fixtures/``, and writes full-size tensor manifests of the four checkpoint components.

Nothing of the reference is copied: it is imported from the checkout given on the command line.

Usage (from the repository root):

    python3 -m venv .venv && .venv/bin/pip install -r tools/requirements.txt
    .venv/bin/python tools/make_fixtures.py --reference /path/to/ACE-Step \
        --configs ../shared/reference/configs [--only manifests,umt5]

Outputs:
    tests/fixtures/manifests/<component>.json   full-size name -> shape of every checkpoint tensor
    tests/fixtures/tiny/umt5-base/              tiny UMT5 checkpoint (config, weights, tokenizer)
    tests/fixtures/umt5/parity.safetensors      inputs and reference outputs of the tiny UMT5
    tests/fixtures/umt5/prompts.json            the prompts, and the reference token ids
"""

import argparse
import json
import os
import sys

import torch
from safetensors.torch import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(ROOT, "tests", "fixtures")

# Prompts in the style of ACE-Step tags, a few languages and scripts, and lengths that differ.
PROMPT_CORPUS = [
    "upbeat electronic dance, 128 bpm, female vocals, synth lead, four on the floor",
    "piano",
    "lofi hip hop, mellow piano, vinyl crackle, relaxed, 80 bpm",
    "cinematic orchestral trailer, epic drums, brass, choir, rising tension",
    "acoustic folk ballad with fingerpicked guitar and soft male vocals",
    "heavy metal, distorted guitars, double kick drums, aggressive screaming",
    "jazz trio, walking bass, brushed drums, swing feel, late night club",
    "k-pop, bright synths, catchy chorus, energetic, 120 bpm",
    "reggaeton, dembow rhythm, spanish vocals, party",
    "ambient drone, evolving pads, field recordings, no drums",
    "chanson française, accordéon, voix douce, mélancolique",
    "deutscher schlager, fröhlich, akkordeon, mitsingen",
    "中国风, 古筝, 笛子, 女声, 抒情",
    "j-pop, アニメ, 明るい, ギター, ドラム",
    "trap beat, 808 bass, hi-hat rolls, dark melody, 140 bpm",
    "bossa nova, nylon guitar, soft percussion, portuguese vocals",
    "country, pedal steel, banjo, storytelling, twang",
    "drum and bass, fast breakbeats, deep sub bass, 174 bpm",
    "blues rock, slide guitar, hammond organ, gritty vocals",
    "classical string quartet, baroque counterpoint, harpsichord",
    "synthwave, retro 80s, arpeggiated bass, gated reverb snare",
    "gospel choir, organ, handclaps, uplifting, call and response",
    "dubstep, wobble bass, heavy drops, 150 bpm",
    "indie pop, jangly guitars, dreamy vocals, summer vibes",
]


def _seed(n=0):
    torch.manual_seed(n)


def _meta_state_shapes(model, drop=()):
    sd = model.state_dict()
    return {k: list(v.shape) for k, v in sd.items() if k not in set(drop)}


def _write_manifest(name, tensors, config, ignored_prefixes=()):
    os.makedirs(os.path.join(FIX, "manifests"), exist_ok=True)
    path = os.path.join(FIX, "manifests", f"{name}.json")
    with open(path, "w") as f:
        json.dump(
            {
                "component": name,
                "config": config,
                "tensors": dict(sorted(tensors.items())),
                "ignored_prefixes": list(ignored_prefixes),
            },
            f,
            indent=1,
        )
    print(f"manifest {name}: {len(tensors)} tensors -> {os.path.relpath(path, ROOT)}")


def _load_cfg(configs, name):
    with open(os.path.join(configs, f"{name}.config.json")) as f:
        cfg = json.load(f)
    return {k: v for k, v in cfg.items() if not k.startswith("_") and k != "architectures"}


def make_manifests(configs):
    """Full-size manifests, built on the meta device (no allocation)."""
    from transformers import UMT5Config, UMT5EncoderModel
    from diffusers import AutoencoderDC
    from acestep.models.ace_step_transformer import ACEStepTransformer2DModel
    from acestep.music_dcae.music_vocoder import ADaMoSHiFiGANV1

    with torch.device("meta"):
        cfg = _load_cfg(configs, "umt5-base")
        umt5 = UMT5EncoderModel(UMT5Config(**cfg))
        # save_pretrained drops tied aliases; the manifest lists what the checkpoint file holds.
        _write_manifest("umt5-base", _meta_state_shapes(umt5, drop=umt5._tied_weights_keys), cfg)

        cfg = _load_cfg(configs, "ace_step_transformer")
        dit = ACEStepTransformer2DModel(**cfg)
        _write_manifest("ace_step_transformer", _meta_state_shapes(dit), cfg, ignored_prefixes=["projectors."])

        cfg = _load_cfg(configs, "music_dcae_f8c8")
        dcae = AutoencoderDC(**cfg)
        _write_manifest("music_dcae_f8c8", _meta_state_shapes(dcae), cfg)

    # The vocoder calls .item() in its constructor, which meta tensors refuse; it is small enough
    # (~200M parameters) to build on the CPU.
    cfg = _load_cfg(configs, "music_vocoder")
    voc = ADaMoSHiFiGANV1(**cfg)
    _write_manifest("music_vocoder", _meta_state_shapes(voc), cfg)
    del voc


def _train_tokenizer(vocab_size):
    """A small Unigram tokenizer with the structure of the UMT5 tokenizer.json (Metaspace
    pre-tokenizer, `</s>` appended by the post-processor, <pad>=0 </s>=1 <unk>=2)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, decoders, processors, trainers

    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Replace(" {2,}", " ")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
    trainer = trainers.UnigramTrainer(
        vocab_size=vocab_size,
        special_tokens=["<pad>", "</s>", "<unk>"],
        unk_token="<unk>",
        shrinking_factor=0.75,
    )
    tok.train_from_iterator(PROMPT_CORPUS * 4, trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", 1)]
    )
    assert tok.token_to_id("<pad>") == 0 and tok.token_to_id("</s>") == 1 and tok.token_to_id("<unk>") == 2
    return tok


def make_umt5():
    """Tiny UMT5 encoder + tokenizer in the `umt5-base/` layout, and its reference outputs."""
    from transformers import T5TokenizerFast, UMT5Config, UMT5EncoderModel

    tok = _train_tokenizer(vocab_size=600)
    hf_tok = T5TokenizerFast(
        tokenizer_object=tok, eos_token="</s>", unk_token="<unk>", pad_token="<pad>", extra_ids=0
    )
    vocab = tok.get_vocab_size()

    cfg = UMT5Config(
        vocab_size=vocab + 40,  # like umt5-base, the embedding is larger than the tokenizer
        d_model=64,
        d_kv=16,
        d_ff=96,
        num_layers=12,  # >= 10 so that the ERG-tag layers 8..10 exist
        num_heads=4,
        relative_attention_num_buckets=32,
        relative_attention_max_distance=20,  # small, so short prompts reach the log and clamped buckets
        feed_forward_proj="gated-gelu",
        dense_act_fn="gelu_new",
        layer_norm_epsilon=1e-6,
        dropout_rate=0.1,
        is_encoder_decoder=True,
        scalable_attention=True,
    )
    _seed(0)
    model = UMT5EncoderModel(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "relative_attention_bias" in name:
                p.normal_(0.0, 1.0)  # make the bias matter
            elif "layer_norm" in name:
                p.copy_(1.0 + 0.1 * torch.randn_like(p))

    out_dir = os.path.join(FIX, "tiny", "umt5-base")
    os.makedirs(out_dir, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    hf_tok.save_pretrained(out_dir)
    for junk in ("generation_config.json",):
        p = os.path.join(out_dir, junk)
        if os.path.exists(p):
            os.remove(p)

    # The parity batch: two prompts of different lengths, padded, as get_text_embeddings calls it.
    batch = [PROMPT_CORPUS[0], PROMPT_CORPUS[14] + ", " + PROMPT_CORPUS[1]]
    inputs = hf_tok(batch, return_tensors="pt", padding=True, truncation=True, max_length=256)
    assert inputs["attention_mask"][1].sum() < inputs["attention_mask"][0].sum() or \
        inputs["attention_mask"][0].sum() < inputs["attention_mask"][1].sum()
    with torch.no_grad():
        hidden = model(**inputs).last_hidden_state

        # ERG-tag null condition: queries of layers 8..10 scaled by tau, by a forward hook on
        # SelfAttention.q as get_text_embeddings_null does.
        tau, l_min, l_max = 0.01, 8, 10

        def hook(_module, _inp, output):
            output[:] *= tau
            return output

        handles = [model.encoder.block[i].layer[0].SelfAttention.q.register_forward_hook(hook)
                   for i in range(l_min, l_max)]
        hidden_null = model(**inputs).last_hidden_state
        for h in handles:
            h.remove()

    # Relative-position bucket tables, tiny config and full umt5-base (32 buckets, distance 128).
    attn = model.encoder.block[0].layer[0].SelfAttention
    rel = torch.arange(300)[None, :] - torch.arange(300)[:, None]
    buckets_tiny = attn._relative_position_bucket(rel)
    attn.relative_attention_max_distance = 128
    buckets_full = attn._relative_position_bucket(rel)

    fix_dir = os.path.join(FIX, "umt5")
    os.makedirs(fix_dir, exist_ok=True)
    save_file(
        {
            "input_ids": inputs["input_ids"].to(torch.int64).contiguous(),
            "attention_mask": inputs["attention_mask"].to(torch.int64).contiguous(),
            "hidden": hidden.contiguous(),
            "hidden_null": hidden_null.contiguous(),
            "buckets_tiny": buckets_tiny.to(torch.int64).contiguous(),
            "buckets_full": buckets_full.to(torch.int64).contiguous(),
        },
        os.path.join(fix_dir, "parity.safetensors"),
    )

    # Token ids of many prompts (and one far longer than 256 tokens) for the tokenizer test.
    long_prompt = ", ".join(PROMPT_CORPUS * 3)
    token_cases = PROMPT_CORPUS + [long_prompt, "  spaced   out  ", "UPPER case Ünïcödé ½"]
    ids = [hf_tok([p], truncation=True, max_length=256)["input_ids"][0] for p in token_cases]
    assert max(len(i) for i in ids) == 256
    with open(os.path.join(fix_dir, "prompts.json"), "w") as f:
        json.dump({"parity_batch": batch, "tokenizer_cases": token_cases, "tokenizer_ids": ids,
                   "erg": {"tau": tau, "l_min": l_min, "l_max": l_max}},
                  f, ensure_ascii=False, indent=1)
    print(f"umt5: vocab {vocab}, parity batch lengths {inputs['attention_mask'].sum(1).tolist()}, "
          f"hidden {list(hidden.shape)} -> {os.path.relpath(fix_dir, ROOT)}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reference", required=True, help="path to a checkout of ace-step/ACE-Step")
    ap.add_argument("--configs", default=os.path.join(ROOT, "..", "shared", "reference", "configs"),
                    help="folder with the real <component>.config.json files")
    ap.add_argument("--only", default="manifests,umt5", help="comma list of: manifests, umt5")
    args = ap.parse_args()
    sys.path.insert(0, os.path.abspath(args.reference))
    torch.set_grad_enabled(False)
    parts = set(args.only.split(","))
    if "manifests" in parts:
        make_manifests(args.configs)
    if "umt5" in parts:
        make_umt5()


if __name__ == "__main__":
    main()
