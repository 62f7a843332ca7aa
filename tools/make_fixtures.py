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
        # Training-only SSL projectors, and the cross-attention's context projections that the
        # reference's attention processor never calls, are in the checkpoint but not used.
        unused = ["projectors."] + [
            f"transformer_blocks.{i}.cross_attn.{m}."
            for i in range(cfg["num_layers"])
            for m in ("add_q_proj", "add_k_proj", "add_v_proj", "to_add_out")
        ]
        _write_manifest("ace_step_transformer", _meta_state_shapes(dit), cfg, ignored_prefixes=unused)

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



# Two small DiT configs: "a" has 20 blocks (so the ERG-diffusion blocks 15..20 exist) and a
# 6-block Conformer (ERG-lyric layers 4..6); "b" is shallow with other widths and RoPE base.
DIT_CONFIGS = {
    "a": dict(
        in_channels=8, num_layers=20, inner_dim=32, attention_head_dim=16, num_attention_heads=2,
        mlp_ratio=2.5, out_channels=8, max_position=4096, rope_theta=1000000.0,
        speaker_embedding_dim=16, text_embedding_dim=24, ssl_encoder_depths=[8, 8],
        ssl_names=["mert", "m-hubert"], ssl_latent_dims=[8, 6], lyric_encoder_vocab_size=300,
        lyric_hidden_size=32, patch_size=[16, 1], max_height=16, max_width=4096,
        lyric_encoder_output_size=32, lyric_encoder_attention_heads=4,
        lyric_encoder_linear_units=64, lyric_encoder_num_blocks=6,
    ),
    "b": dict(
        in_channels=8, num_layers=3, inner_dim=48, attention_head_dim=8, num_attention_heads=6,
        mlp_ratio=4.0, out_channels=8, max_position=2048, rope_theta=10000.0,
        speaker_embedding_dim=12, text_embedding_dim=20, ssl_encoder_depths=[1, 2],
        ssl_names=["mert", "m-hubert"], ssl_latent_dims=[4, 4], lyric_encoder_vocab_size=120,
        lyric_hidden_size=24, patch_size=[16, 1], max_height=16, max_width=2048,
        lyric_encoder_output_size=24, lyric_encoder_attention_heads=2,
        lyric_encoder_linear_units=40, lyric_encoder_num_blocks=2,
    ),
}
# ERG ranges exercised per config (the reference's defaults where the layers exist).
DIT_ERG = {"a": dict(lyric=(4, 6), diffusion=(15, 20)), "b": dict(lyric=(1, 2), diffusion=(1, 3))}
LYRIC_KEYS = ("lyric_encoder_output_size", "lyric_encoder_attention_heads",
              "lyric_encoder_linear_units", "lyric_encoder_num_blocks")


def _build_dit(cfg):
    """The reference ACEStepTransformer2DModel, its hard-coded Conformer sized from our keys."""
    import functools
    import acestep.models.ace_step_transformer as ast
    from acestep.models.lyrics_utils.lyric_encoder import ConformerEncoder

    args = {k: v for k, v in cfg.items() if k not in LYRIC_KEYS}
    ast.LyricEncoder = functools.partial(
        ConformerEncoder,
        output_size=cfg["lyric_encoder_output_size"],
        attention_heads=cfg["lyric_encoder_attention_heads"],
        linear_units=cfg["lyric_encoder_linear_units"],
        num_blocks=cfg["lyric_encoder_num_blocks"],
    )
    try:
        model = ast.ACEStepTransformer2DModel(**args)
    finally:
        ast.LyricEncoder = ConformerEncoder
    return model


def _scaled_q_hooks(modules, tau):
    def hook(_module, _inp, output):
        output[:] *= tau
        return output
    return [m.register_forward_hook(hook) for m in modules]


def make_dit():
    """Tiny DiT checkpoints in the `ace_step_transformer/` layout and reference encode/decode."""
    for name, cfg in DIT_CONFIGS.items():
        _seed(1 if name == "a" else 2)
        model = _build_dit(cfg).eval()
        with torch.no_grad():
            # Make every parameter matter: the reference initialises some of them to zero or one.
            for pname, p in model.named_parameters():
                if pname.endswith("bias"):
                    p.normal_(0.0, 0.1)
                elif "norm" in pname and p.dim() == 1:
                    p.copy_(1.0 + 0.1 * torch.randn_like(p))
                elif "scale_shift_table" in pname:
                    p.normal_(0.0, 0.3)
                elif "pos_bias" in pname:
                    p.normal_(0.0, 0.5)
        out_dir = os.path.join(FIX, f"dit_{name}", "ace_step_transformer")
        os.makedirs(out_dir, exist_ok=True)
        model.save_pretrained(out_dir, safe_serialization=True)
        cfg_path = os.path.join(out_dir, "config.json")
        with open(cfg_path) as f:
            saved = json.load(f)
        saved.update({k: cfg[k] for k in LYRIC_KEYS})
        with open(cfg_path, "w") as f:
            json.dump(saved, f, indent=2)

        g = torch.Generator().manual_seed(10)
        B, T, St, Sl = 2, 27, 7, 11
        text = torch.randn(B, St, cfg["text_embedding_dim"], generator=g)
        text_mask = torch.ones(B, St, dtype=torch.long)
        text_mask[1, 4:] = 0
        speaker = torch.randn(B, cfg["speaker_embedding_dim"], generator=g)
        lyric_ids = torch.randint(0, cfg["lyric_encoder_vocab_size"], (B, Sl), generator=g)
        lyric_mask = torch.ones(B, Sl, dtype=torch.long)
        lyric_mask[0, 8:] = 0
        lyric_ids[0, 8:] = 0
        latents = torch.randn(B, 8, 16, T, generator=g)
        attn_mask = torch.ones(B, T)
        timestep = torch.tensor([873.5, 120.25])
        erg = DIT_ERG[name]
        tau = 0.01

        with torch.no_grad():
            enc, enc_mask = model.encode(text, text_mask, speaker, lyric_ids, lyric_mask)
            hooks = _scaled_q_hooks(
                [model.lyric_encoder.encoders[i].self_attn.linear_q for i in range(*erg["lyric"])], tau)
            enc_erg, _ = model.encode(text, text_mask, speaker, lyric_ids, lyric_mask)
            for h in hooks:
                h.remove()
            kw = dict(attention_mask=attn_mask, encoder_hidden_states=enc, encoder_hidden_mask=enc_mask,
                      timestep=timestep, output_length=T)
            vel = model.decode(hidden_states=latents, **kw).sample
            blocks = model.transformer_blocks
            hooks = _scaled_q_hooks(
                [blocks[i].attn.to_q for i in range(*erg["diffusion"])]
                + [blocks[i].cross_attn.to_q for i in range(*erg["diffusion"])], tau)
            vel_erg = model.decode(hidden_states=latents, **kw).sample
            for h in hooks:
                h.remove()
            # output_length longer and shorter than the latent: zero padding / trimming.
            vel_long = model.decode(hidden_states=latents, **{**kw, "output_length": T + 5}).sample
            vel_short = model.decode(hidden_states=latents, **{**kw, "output_length": T - 4}).sample

        save_file(
            {
                "text_hidden_states": text, "text_attention_mask": text_mask, "speaker_embeds": speaker,
                "lyric_token_ids": lyric_ids, "lyric_mask": lyric_mask, "latents": latents,
                "attention_mask": attn_mask, "timestep": timestep,
                "encoder_hidden_states": enc.contiguous(), "encoder_hidden_mask": enc_mask.float().contiguous(),
                "encoder_hidden_states_erg_lyric": enc_erg.contiguous(),
                "velocity": vel.contiguous(), "velocity_erg_diffusion": vel_erg.contiguous(),
                "velocity_long": vel_long.contiguous(), "velocity_short": vel_short.contiguous(),
                "erg_lyric_range": torch.tensor(erg["lyric"]), "erg_diffusion_range": torch.tensor(erg["diffusion"]),
            },
            os.path.join(FIX, f"dit_{name}", "parity.safetensors"),
        )
        n = sum(p.numel() for p in model.parameters())
        print(f"dit_{name}: {n} parameters, velocity {list(vel.shape)} -> tests/fixtures/dit_{name}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reference", required=True, help="path to a checkout of ace-step/ACE-Step")
    ap.add_argument("--configs", default=os.path.join(ROOT, "..", "shared", "reference", "configs"),
                    help="folder with the real <component>.config.json files")
    ap.add_argument("--only", default="manifests,umt5,dit", help="comma list of: manifests, umt5, dit")
    args = ap.parse_args()
    sys.path.insert(0, os.path.abspath(args.reference))
    torch.set_grad_enabled(False)
    parts = set(args.only.split(","))
    if "manifests" in parts:
        make_manifests(args.configs)
    if "umt5" in parts:
        make_umt5()
    if "dit" in parts:
        make_dit()


if __name__ == "__main__":
    main()
