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
import math
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
        speaker_embedding_dim=16, text_embedding_dim=64, ssl_encoder_depths=[8, 8],
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
        # "a" is the DiT of the tiny four-component checkpoint (its text width is the tiny UMT5's).
        out_dir = (os.path.join(FIX, "tiny", "ace_step_transformer") if name == "a"
                   else os.path.join(FIX, f"dit_{name}", "ace_step_transformer"))
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



# Small music DCAE and vocoder in the real layout (4 DCAE stages so that a [2, 128, w] mel image
# maps to a [8, 16, w/8] latent, as in the real model; the vocoder keeps the real mel transform).
DCAE_CONFIG = dict(
    in_channels=2, latent_channels=8, attention_head_dim=8,
    encoder_block_types=["ResBlock", "ResBlock", "ResBlock", "EfficientViTBlock"],
    decoder_block_types=["ResBlock", "ResBlock", "ResBlock", "EfficientViTBlock"],
    encoder_block_out_channels=[8, 16, 16, 32], decoder_block_out_channels=[8, 16, 16, 32],
    encoder_layers_per_block=[1, 1, 2, 2], decoder_layers_per_block=[1, 2, 1, 2],
    encoder_qkv_multiscales=[[], [], [5], [5]], decoder_qkv_multiscales=[[], [], [5], [5]],
    upsample_block_type="interpolate", downsample_block_type="Conv",
    decoder_norm_types="rms_norm", decoder_act_fns="silu", scaling_factor=0.41407,
)
VOCODER_CONFIG = dict(
    sampling_rate=44100, n_mels=128, num_mels=24, n_fft=2048, win_length=2048, hop_length=512,
    f_min=40, f_max=16000, depths=[1, 2], dims=[16, 24], drop_path_rate=0.0, input_channels=128,
    kernel_sizes=[7], pre_conv_kernel_size=7, post_conv_kernel_size=5,
    resblock_dilation_sizes=[[1, 3, 5], [1, 2, 4]], resblock_kernel_sizes=[3, 5],
    upsample_initial_channel=32, upsample_kernel_sizes=[16, 16, 8], upsample_rates=[8, 8, 8],
    use_template=False,
)


def _music_signal(seconds, sr=44100, seed=3):
    """A real-looking stereo signal: detuned harmonic tones with an envelope, plus noise."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(int(seconds * sr), dtype=torch.float64) / sr
    out = []
    for ch in range(2):
        y = torch.zeros_like(t)
        for f0, amp in ((110.0, 0.3), (220.0 * (1.003 if ch else 1.0), 0.2), (329.6, 0.15), (1318.5, 0.05)):
            for h in range(1, 6):
                y += amp / h * torch.sin(2 * math.pi * f0 * h * t + float(torch.rand(1, generator=g)) * 6.28)
        env = 0.6 + 0.4 * torch.sin(2 * math.pi * 2.0 * t) ** 2
        y = y * env + 0.01 * torch.randn(t.shape, generator=g, dtype=torch.float64)
        out.append(y)
    return (torch.stack(out) / 1.2).float()


def make_dcae():
    """Tiny `music_dcae_f8c8/` + `music_vocoder/` and the reference MusicDCAE's outputs."""
    from diffusers import AutoencoderDC
    from acestep.music_dcae.music_vocoder import ADaMoSHiFiGANV1
    from acestep.music_dcae.music_dcae_pipeline import MusicDCAE

    root = os.path.join(FIX, "tiny")
    _seed(4)
    dcae = AutoencoderDC(**DCAE_CONFIG).eval()
    with torch.no_grad():
        for name, p in dcae.named_parameters():
            if name.endswith("norm.weight") or name.endswith("norm_out.weight"):
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
            elif name.endswith("bias"):
                p.normal_(0.0, 0.05)
    dcae.save_pretrained(os.path.join(root, "music_dcae_f8c8"), safe_serialization=True)
    _seed(5)
    voc = ADaMoSHiFiGANV1(**VOCODER_CONFIG).eval()
    with torch.no_grad():
        for name, p in voc.named_parameters():
            if name.endswith("gamma"):
                p.normal_(0.0, 0.3)
            elif "norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
            elif name.endswith("weight_g"):
                p.copy_(p * (1.0 + 0.2 * torch.rand_like(p)))
    voc.save_pretrained(os.path.join(root, "music_vocoder"), safe_serialization=True)

    m = MusicDCAE(
        dcae_checkpoint_path=os.path.join(root, "music_dcae_f8c8"),
        vocoder_checkpoint_path=os.path.join(root, "music_vocoder"),
    ).eval()
    g = torch.Generator().manual_seed(6)
    out = {}
    with torch.no_grad():
        # decode: batch of 2, 12 latent frames.
        lat = torch.randn(2, 8, 16, 12, generator=g)
        _, wavs = m.decode(lat)
        out.update(decode_latents=lat, decode_wav0=wavs[0], decode_wav1=wavs[1])
        # the DCAE decoder alone, and its quadratic-attention path (H*W <= head_dim at the last stage)
        z = torch.randn(1, 8, 16, 5, generator=g)
        out.update(dec_in=z, dec_out=m.dcae.decoder(z))
        zq = torch.randn(1, 8, 2, 2, generator=g)
        out.update(dec_quad_in=zq, dec_quad_out=m.dcae.decoder(zq))
        # the DCAE encoder alone
        img = torch.randn(1, 2, 128, 40, generator=g)
        out.update(enc_in=img, enc_out=m.dcae.encoder(img))
        # the vocoder alone
        mel = torch.randn(2, 128, 9, generator=g) * 2.0 - 4.0
        out.update(voc_in=mel, voc_out=m.vocoder.decode(mel))
        # the mel transform on a real-looking signal
        sig = _music_signal(0.75)
        out.update(mel_in=sig, mel_out=m.vocoder.mel_transform(sig))
        # encode at 44.1 kHz (no resampling), batch of 2 with a length that needs padding
        audio = torch.stack([_music_signal(0.5, seed=7), _music_signal(0.5, seed=8)])
        lens = torch.tensor([audio.shape[-1], audio.shape[-1] - 5000])
        lat_e, lat_len = m.encode(audio, audio_lengths=lens, sr=44100)
        out.update(enc_audio=audio, enc_lengths=lens, encode_latents=lat_e, encode_latent_lengths=lat_len)
        # decode_overlap on a latent long enough for 3 DCAE windows and ~13 vocoder windows;
        # the output is stored subsampled (every 31st sample) to keep the fixture small.
        lat_long = torch.randn(1, 8, 16, 800, generator=g)
        _, wl = m.decode_overlap(lat_long)
        out.update(overlap_latents=lat_long, overlap_len=torch.tensor([wl[0].shape[-1]]),
                   overlap_wav_sub31=wl[0][:, ::31].contiguous())
    save_file({k: v.contiguous() for k, v in out.items()}, os.path.join(FIX, "dcae_parity.safetensors"))
    print(f"dcae: decode {list(wavs[0].shape)}, overlap {list(wl[0].shape)} -> tests/fixtures/dcae_parity.safetensors")


def make_sampling():
    """Schedulers (euler, heun, pingpong; oss_steps sigmas) and guidance (apg with momentum, cfg,
    cfg_star, double condition) on recorded random inputs: tests/fixtures/sampling.safetensors."""
    from diffusers.pipelines.stable_diffusion_3.pipeline_stable_diffusion_3 import retrieve_timesteps
    from acestep.schedulers.scheduling_flow_match_euler_discrete import FlowMatchEulerDiscreteScheduler
    from acestep.schedulers.scheduling_flow_match_heun_discrete import FlowMatchHeunDiscreteScheduler
    from acestep.schedulers.scheduling_flow_match_pingpong import FlowMatchPingPongScheduler
    from acestep import apg_guidance as G

    g = torch.Generator().manual_seed(11)
    out = {}
    shape = (2, 8, 16, 7)
    kinds = {"euler": FlowMatchEulerDiscreteScheduler, "heun": FlowMatchHeunDiscreteScheduler,
             "pingpong": FlowMatchPingPongScheduler}
    for name, cls in kinds.items():
        for steps in (9, 60):
            sch = cls(num_train_timesteps=1000, shift=3.0)
            timesteps, n = retrieve_timesteps(sch, num_inference_steps=steps, device="cpu", timesteps=None)
            x = torch.randn(shape, generator=g)
            key = f"{name}_{steps}"
            out[f"{key}_timesteps"] = timesteps.float()
            out[f"{key}_x0"] = x.clone()
            if steps == 9:
                # A velocity that depends on the sample, so each step sees the previous one.
                w = torch.randn(shape, generator=g) * 0.5
                out[f"{key}_w"] = w
                noises = []
                for t in timesteps:
                    v = torch.tanh(x) * (t / 1000) + w
                    if name == "pingpong":
                        st = torch.Generator().manual_seed(int(t.item() * 1000) % 100000)
                        nz = torch.randn(shape, generator=st)
                        noises.append(nz)
                        orig = torch.Tensor.normal_
                        torch.Tensor.normal_ = lambda self, *a, _nz=nz, **k: self.copy_(_nz)
                        try:
                            x = sch.step(v, t, x, return_dict=False, omega=10.0, generator=None)[0]
                        finally:
                            torch.Tensor.normal_ = orig
                    else:
                        x = sch.step(v, t, x, return_dict=False, omega=10.0)[0]
                out[f"{key}_final"] = x
                if noises:
                    out[f"{key}_noise"] = torch.stack(noises)
    # oss_steps remapping, as text2music_diffusion_process does it (euler and pingpong).
    for name in ("euler", "pingpong"):
        oss = [1, 3, 7, 15, 30, 45, 60]
        sch = kinds[name](num_train_timesteps=1000, shift=3.0)
        timesteps, _ = retrieve_timesteps(sch, num_inference_steps=max(oss), device="cpu", timesteps=None)
        new_t = torch.zeros(len(oss), dtype=torch.float32)
        for idx in range(len(oss)):
            new_t[idx] = timesteps[oss[idx] - 1]
        sigmas = (new_t / 1000).float().cpu().numpy()
        sch = kinds[name](num_train_timesteps=1000, shift=3.0)
        timesteps, _ = retrieve_timesteps(sch, num_inference_steps=len(oss), device="cpu", sigmas=sigmas)
        out[f"oss_{name}_timesteps"] = timesteps.float()
        out[f"oss_{name}_sigmas"] = sch.sigmas.float()
    # Guidance.
    gs = (2, 8, 16, 11)
    cond = [torch.randn(gs, generator=g) for _ in range(3)]
    uncond = [c + 0.7 * torch.randn(gs, generator=g) for c in cond]
    only_text = cond[0] + 0.3 * torch.randn(gs, generator=g)
    mb = G.MomentumBuffer()
    for i in range(3):
        out[f"g_cond{i}"], out[f"g_uncond{i}"] = cond[i], uncond[i]
        out[f"apg_momentum{i}"] = G.apg_forward(cond[i], uncond[i], 15.0, momentum_buffer=mb)
    out["apg_plain"] = G.apg_forward(cond[0], uncond[0], 7.0)
    # Small differences: below the norm threshold, so no clipping.
    small = cond[1] + 0.01 * torch.randn(gs, generator=g)
    out["g_small"] = small
    out["apg_small"] = G.apg_forward(cond[1], small, 5.0)
    out["cfg"] = G.cfg_forward(cond[0], uncond[0], 7.5)
    out["cfg_star_step0"] = G.cfg_zero_star(cond[0], uncond[0], 7.5, 0)
    out["cfg_star_step2"] = G.cfg_zero_star(cond[0], uncond[0], 7.5, 2)
    out["g_only_text"] = only_text
    out["cfg_double"] = G.cfg_double_condition_forward(cond[0], uncond[0], only_text, 5.0, 2.5)
    save_file({k: v.contiguous() for k, v in out.items()}, os.path.join(FIX, "sampling.safetensors"))
    print(f"sampling: {len(out)} tensors -> tests/fixtures/sampling.safetensors")


DIFFUSION_CASES = {
    # name: (batch, settings under text2music_diffusion_process's argument names)
    "euler_apg_erg": (2, dict(scheduler_type="euler", cfg_type="apg", use_erg_lyric=True, use_erg_diffusion=True)),
    "euler_cfg_no_erg": (2, dict(scheduler_type="euler", cfg_type="cfg", guidance_scale=7.0,
                                 use_erg_lyric=False, use_erg_diffusion=False)),
    "heun_apg_erg": (2, dict(scheduler_type="heun", cfg_type="apg", use_erg_lyric=True, use_erg_diffusion=True)),
    "pingpong_apg_erg": (2, dict(scheduler_type="pingpong", cfg_type="apg", use_erg_lyric=True,
                                 use_erg_diffusion=True)),
    "euler_cfg_star": (2, dict(scheduler_type="euler", cfg_type="cfg_star", guidance_scale=5.0,
                               guidance_interval=1.0, use_erg_lyric=False, use_erg_diffusion=True)),
    "double_condition_erg": (2, dict(guidance_scale_text=5.0, guidance_scale_lyric=2.5, use_erg_lyric=True,
                                     use_erg_diffusion=True)),
    "double_condition_no_erg": (2, dict(guidance_scale_text=4.0, guidance_scale_lyric=1.5, use_erg_lyric=False,
                                        use_erg_diffusion=False)),
    "oss_steps": (2, dict(oss_steps=[1, 3, 5, 8, 12, 20], use_erg_lyric=True, use_erg_diffusion=True)),
    "interval_decay": (2, dict(guidance_interval=0.8, guidance_interval_decay=1.0, min_guidance_scale=3.0,
                               use_erg_lyric=True, use_erg_diffusion=True)),
    "batch_1_no_guidance": (1, dict(guidance_scale=1.0, use_erg_lyric=False, use_erg_diffusion=False)),
}
DIFFUSION_STEPS = 9
SETTING_KEYS = ("infer_steps", "guidance_scale", "omega_scale", "scheduler_type", "cfg_type", "zero_steps",
                "use_zero_init", "guidance_interval", "guidance_interval_decay", "min_guidance_scale",
                "oss_steps", "use_erg_lyric", "use_erg_diffusion", "guidance_scale_text",
                "guidance_scale_lyric")
DIFFUSION_DURATION = 1.2  # int(1.2 * 44100 / 512 / 8) = 12 latent frames


def make_diffusion():
    """The reference `text2music_diffusion_process` on the tiny DiT "a" (20 blocks, so the
    ERG-diffusion blocks exist) for each case in DIFFUSION_CASES: tests/fixtures/diffusion/."""
    from acestep.pipeline_ace_step import ACEStepPipeline

    pipe = _tiny_pipe()
    out, meta = {}, {}
    frames = int(DIFFUSION_DURATION * 44100 / 512 / 8)
    for ci, (name, (bsz, settings)) in enumerate(DIFFUSION_CASES.items()):
        g = torch.Generator().manual_seed(100 + ci)
        c = _random_condition(g, bsz)
        text, text_mask, lyric, lyric_mask = c["text"], c["text_mask"], c["lyric"], c["lyric_mask"]
        text_null, speaker = c["text_null"], c["speaker"]
        seeds = [1000 * ci + i for i in range(bsz)]
        gens = [torch.Generator().manual_seed(sd_) for sd_ in seeds]
        # randn_tensor with a list of generators draws each item from its own generator.
        init = torch.cat([torch.randn((1, 8, 16, frames), generator=torch.Generator().manual_seed(sd_))
                          for sd_ in seeds])
        noises = []
        step_gen = torch.Generator().manual_seed(7000 + ci)
        orig_normal = torch.Tensor.normal_

        def recorded_normal(self, *a, **k):
            nz = torch.randn(self.shape, generator=step_gen)
            noises.append(nz.clone())
            return self.copy_(nz)

        kwargs = dict(infer_steps=DIFFUSION_STEPS, guidance_scale=15.0, omega_scale=10.0)
        kwargs.update(settings)
        torch.Tensor.normal_ = recorded_normal
        try:
            with torch.no_grad():
                lat = pipe.text2music_diffusion_process(
                    duration=DIFFUSION_DURATION,
                    encoder_text_hidden_states=text,
                    text_attention_mask=text_mask,
                    speaker_embds=speaker,
                    lyric_token_ids=lyric,
                    lyric_mask=lyric_mask,
                    random_generators=gens,
                    encoder_text_hidden_states_null=text_null if kwargs.get("use_erg_lyric") else None,
                    **kwargs,
                )
        finally:
            torch.Tensor.normal_ = orig_normal
        out.update({f"{name}.text": text, f"{name}.text_mask": text_mask, f"{name}.text_null": text_null,
                    f"{name}.speaker": speaker, f"{name}.lyric": lyric, f"{name}.lyric_mask": lyric_mask,
                    f"{name}.init_noise": init, f"{name}.latents": lat})
        if noises:
            out[f"{name}.step_noise"] = torch.stack(noises)
        # Record every setting the run used: the process's own defaults differ from __call__'s
        # (e.g. guidance_interval_decay 1.0 there, 0.0 in __call__).
        import inspect
        params = inspect.signature(inspect.unwrap(ACEStepPipeline.text2music_diffusion_process)).parameters
        used = {k: params[k].default for k in SETTING_KEYS}
        used.update(kwargs)
        meta[name] = dict(settings=used, seeds=seeds, text_null=bool(kwargs.get("use_erg_lyric")),
                          step_noise=len(noises))
        print(f"diffusion {name}: latents {list(lat.shape)}, |x| max {lat.abs().max():.3f}, "
              f"{len(noises)} step noises")
    d = os.path.join(FIX, "diffusion")
    os.makedirs(d, exist_ok=True)
    save_file({k: v.contiguous() for k, v in out.items()}, os.path.join(d, "cases.safetensors"))
    with open(os.path.join(d, "cases.json"), "w") as f:
        json.dump(meta, f, indent=1)


def _tiny_pipe():
    """An ACEStepPipeline shell around the tiny DiT "a" of tests/fixtures/tiny (CPU, f32)."""
    from safetensors.torch import load_file
    from acestep.pipeline_ace_step import ACEStepPipeline

    model = _build_dit(DIT_CONFIGS["a"]).eval()
    sd = load_file(os.path.join(FIX, "tiny", "ace_step_transformer", "diffusion_pytorch_model.safetensors"))
    missing, unexpected = model.load_state_dict(sd, strict=False)
    assert not missing and not unexpected, (missing, unexpected)
    pipe = ACEStepPipeline.__new__(ACEStepPipeline)
    pipe.ace_step_transformer = model
    pipe.device = torch.device("cpu")
    pipe.dtype = torch.float32
    pipe.cpu_offload = False
    pipe.lora_path = "none"
    pipe.lora_weight = 1.0
    pipe.checkpoint_dir = os.path.join(FIX, "tiny")
    return pipe


def _random_condition(g, bsz, prefix=""):
    """Random prompt embeddings, lyric ids and masks for the tiny DiT "a" (item 1 padded)."""
    cfg = DIT_CONFIGS["a"]
    s_len, l_len = 7, 10
    text = torch.randn(bsz, s_len, cfg["text_embedding_dim"], generator=g)
    text_mask = torch.ones(bsz, s_len, dtype=torch.long)
    lyric = torch.randint(1, cfg["lyric_encoder_vocab_size"], (bsz, l_len), generator=g)
    lyric_mask = torch.ones(bsz, l_len, dtype=torch.long)
    if bsz > 1:
        text_mask[1, -2:] = 0
        lyric_mask[1, -3:] = 0
    text_null = torch.randn(bsz, s_len, cfg["text_embedding_dim"], generator=g)
    speaker = torch.randn(bsz, cfg["speaker_embedding_dim"], generator=g)
    return {f"{prefix}text": text, f"{prefix}text_mask": text_mask, f"{prefix}text_null": text_null,
            f"{prefix}speaker": speaker, f"{prefix}lyric": lyric, f"{prefix}lyric_mask": lyric_mask}


class _NoiseRecorder:
    """Records the reference's Gaussian draws: `randn_tensor` (initial, retake and FlowEdit
    forward noises) and `Tensor.normal_` (PingPong step noise), in call order."""

    def __init__(self, step_seed):
        import acestep.pipeline_ace_step as P
        self.P, self.draws, self.order = P, [], []
        self.step_gen = torch.Generator().manual_seed(step_seed)

    def __enter__(self):
        P, rec = self.P, self
        self.orig_randn, self.orig_normal = P.randn_tensor, torch.Tensor.normal_

        def randn(*a, **k):
            x = rec.orig_randn(*a, **k)
            rec.draws.append(x.clone())
            rec.order.append("randn")
            return x

        def normal(self_, *a, **k):
            nz = torch.randn(self_.shape, generator=rec.step_gen)
            rec.draws.append(nz.clone())
            rec.order.append("normal")
            return self_.copy_(nz)

        P.randn_tensor, torch.Tensor.normal_ = randn, normal
        return self

    def __exit__(self, *exc):
        self.P.randn_tensor, torch.Tensor.normal_ = self.orig_randn, self.orig_normal


EDIT_FRAMES = int(DIFFUSION_DURATION * 44100 / 512 / 8)
EDITING_CASES = {
    # name: (kind, settings, editing arguments); text2music cases use ERG and APG unless set.
    "retake": ("text2music", dict(scheduler_type="euler"), dict(retake_variance=0.3, task="retake")),
    "repaint": ("text2music", dict(scheduler_type="euler"),
                dict(retake_variance=0.6, repaint_start=0.3, repaint_end=0.8, task="repaint")),
    "repaint_heun_cfg": ("text2music", dict(scheduler_type="heun", cfg_type="cfg", guidance_scale=6.0,
                                            use_erg_lyric=False, use_erg_diffusion=False),
                         dict(retake_variance=0.8, repaint_start=0.0, repaint_end=0.5, task="repaint")),
    "extend_left": ("text2music", dict(scheduler_type="euler"),
                    dict(retake_variance=0.7, repaint_start=-0.4, repaint_end=DIFFUSION_DURATION, task="extend")),
    "extend_right": ("text2music", dict(scheduler_type="pingpong"),
                     dict(retake_variance=0.5, repaint_start=0.0, repaint_end=DIFFUSION_DURATION + 0.5,
                          task="extend")),
    "audio2audio_euler": ("text2music", dict(scheduler_type="euler"),
                          dict(ref_audio_strength=0.5, task="audio2audio")),
    "audio2audio_pingpong": ("text2music", dict(scheduler_type="pingpong"),
                             dict(ref_audio_strength=0.3, task="audio2audio")),
    "audio2audio_heun": ("text2music", dict(scheduler_type="heun", guidance_interval=1.0),
                         dict(ref_audio_strength=0.6, task="audio2audio")),
    "edit_euler": ("flowedit", dict(scheduler_type="euler", n_min=0.2, n_max=0.8, n_avg=2), dict(task="edit")),
    "edit_pingpong": ("flowedit", dict(scheduler_type="pingpong", n_min=0.0, n_max=0.6, n_avg=1,
                                       guidance_scale=7.0), dict(task="edit")),
    "edit_no_guidance": ("flowedit", dict(scheduler_type="euler", n_min=0.1, n_max=1.0, n_avg=1,
                                          guidance_scale=1.0), dict(task="edit")),
}


def make_editing():
    """The reference's editing tasks on the tiny DiT "a": retake / repaint / extend /
    audio2audio through `text2music_diffusion_process` and edit through
    `flowedit_diffusion_process`, with every noise recorded: tests/fixtures/editing/."""
    import inspect
    from acestep.pipeline_ace_step import ACEStepPipeline

    pipe = _tiny_pipe()
    params = inspect.signature(inspect.unwrap(ACEStepPipeline.text2music_diffusion_process)).parameters
    out, meta = {}, {}
    bsz = 2
    for ci, (name, (kind, settings, edit)) in enumerate(EDITING_CASES.items()):
        g = torch.Generator().manual_seed(500 + ci)
        cond = _random_condition(g, bsz)
        src = torch.randn(bsz, 8, 16, EDIT_FRAMES, generator=g)
        seeds = [2000 + 10 * ci + i for i in range(bsz)]
        retake_seeds = [3000 + 10 * ci + i for i in range(bsz)]
        gens = [torch.Generator().manual_seed(x) for x in seeds]
        retake_gens = [torch.Generator().manual_seed(x) for x in retake_seeds]
        task = edit["task"]
        rec = _NoiseRecorder(8000 + ci)
        with rec, torch.no_grad():
            if kind == "text2music":
                kwargs = dict(infer_steps=DIFFUSION_STEPS, guidance_scale=15.0, omega_scale=10.0,
                              use_erg_lyric=True, use_erg_diffusion=True)
                kwargs.update(settings)
                duration = DIFFUSION_DURATION
                if task in ("retake", "repaint", "extend"):
                    kwargs.update(add_retake_noise=True, retake_random_generators=retake_gens,
                                  retake_variance=edit["retake_variance"])
                    if task == "retake":
                        kwargs.update(repaint_start=0, repaint_end=duration)
                    else:
                        kwargs.update(repaint_start=edit["repaint_start"], repaint_end=edit["repaint_end"],
                                      src_latents=src)
                if task == "audio2audio":
                    kwargs.update(audio2audio_enable=True, ref_audio_strength=edit["ref_audio_strength"],
                                  ref_latents=src)
                lat = pipe.text2music_diffusion_process(
                    duration=duration, encoder_text_hidden_states=cond["text"],
                    text_attention_mask=cond["text_mask"], speaker_embds=cond["speaker"],
                    lyric_token_ids=cond["lyric"], lyric_mask=cond["lyric_mask"], random_generators=gens,
                    encoder_text_hidden_states_null=cond["text_null"] if kwargs["use_erg_lyric"] else None,
                    **kwargs)
                used = {k: params[k].default for k in SETTING_KEYS}
                used.update({k: v for k, v in kwargs.items() if k in SETTING_KEYS})
                rand = [d for d, o in zip(rec.draws, rec.order) if o == "randn"]
                steps = [d for d, o in zip(rec.draws, rec.order) if o == "normal"]
                out[f"{name}.init_noise"] = rand[0]
                if len(rand) > 1:
                    out[f"{name}.retake_noise"] = rand[1]
                if steps:
                    out[f"{name}.step_noise"] = torch.stack(steps)
                m = dict(kind=kind, settings=used, text_null=bool(kwargs["use_erg_lyric"]),
                         step_noise=len(steps), task=task,
                         edit={k: v for k, v in edit.items() if k != "task"})
                if task == "retake":
                    m["edit"].update(repaint_start=0.0, repaint_end=duration)
            else:
                target = _random_condition(g, bsz, "target_")
                fe = dict(infer_steps=DIFFUSION_STEPS, guidance_scale=15.0)
                fe.update(settings)
                lat = pipe.flowedit_diffusion_process(
                    encoder_text_hidden_states=cond["text"], text_attention_mask=cond["text_mask"],
                    speaker_embds=cond["speaker"], lyric_token_ids=cond["lyric"], lyric_mask=cond["lyric_mask"],
                    target_encoder_text_hidden_states=target["target_text"],
                    target_text_attention_mask=target["target_text_mask"],
                    target_speaker_embeds=target["target_speaker"],
                    target_lyric_token_ids=target["target_lyric"], target_lyric_mask=target["target_lyric_mask"],
                    src_latents=src, random_generators=retake_gens, **fe)
                out.update(target)
                out.update({f"{name}.{k}": v for k, v in target.items()})
                del out["target_text"], out["target_text_mask"], out["target_text_null"]
                del out["target_speaker"], out["target_lyric"], out["target_lyric_mask"]
                out[f"{name}.noise"] = torch.stack(rec.draws) if rec.draws else torch.zeros(0)
                m = dict(kind=kind, settings=fe, task=task, noise=len(rec.draws), order=rec.order)
        out.update({f"{name}.{k}": v for k, v in cond.items()})
        out[f"{name}.src_latents"] = src
        out[f"{name}.latents"] = lat
        m.update(seeds=seeds, retake_seeds=retake_seeds)
        meta[name] = m
        print(f"editing {name}: latents {list(lat.shape)}, |x| max {lat.abs().max():.3f}, "
              f"{len(rec.draws)} draws")
    d = os.path.join(FIX, "editing")
    os.makedirs(d, exist_ok=True)
    save_file({k: v.contiguous() for k, v in out.items()}, os.path.join(d, "cases.safetensors"))
    with open(os.path.join(d, "cases.json"), "w") as f:
        json.dump(meta, f, indent=1)


LORA_TARGETS = ["speaker_embedder", "linear_q", "linear_k", "linear_v", "to_q", "to_k", "to_v", "to_out.0"]


def make_lora():
    """A random LoRA (the trainer's target modules, rank 4) on the tiny DiT "a", saved as
    diffusers' `save_lora_adapter` writes it, and the reference's text2music sampling with it
    loaded by `ACEStepPipeline.load_lora` at weight 0.7: tests/fixtures/lora/."""
    from peft import LoraConfig

    d = os.path.join(FIX, "lora")
    adapter_dir = os.path.join(d, "tiny_lora")
    os.makedirs(adapter_dir, exist_ok=True)
    trainer_model = _tiny_pipe().ace_step_transformer
    _seed(41)
    trainer_model.add_adapter(LoraConfig(r=4, lora_alpha=8, target_modules=LORA_TARGETS,
                                         init_lora_weights=False), adapter_name="lora_adapter")
    with torch.no_grad():  # peft leaves lora_B at zero: give it a visible effect
        for n, p in trainer_model.named_parameters():
            if "lora_" in n:
                p.copy_(torch.randn(p.shape) * 0.3)
    trainer_model.save_lora_adapter(adapter_dir, adapter_name="lora_adapter")

    pipe = _tiny_pipe()
    g = torch.Generator().manual_seed(77)
    bsz = 2
    cond = _random_condition(g, bsz)
    seeds = [4001, 4002]
    out = dict(cond)

    def run():
        gens = [torch.Generator().manual_seed(x) for x in seeds]
        with torch.no_grad():
            return pipe.text2music_diffusion_process(
                duration=DIFFUSION_DURATION, encoder_text_hidden_states=cond["text"],
                text_attention_mask=cond["text_mask"], speaker_embds=cond["speaker"],
                lyric_token_ids=cond["lyric"], lyric_mask=cond["lyric_mask"], random_generators=gens,
                encoder_text_hidden_states_null=cond["text_null"], infer_steps=DIFFUSION_STEPS,
                guidance_scale=15.0, omega_scale=10.0, use_erg_lyric=True, use_erg_diffusion=True)

    out["base_latents"] = run()
    pipe.load_lora(adapter_dir, 0.7)
    out["lora_latents"] = run()
    pipe.load_lora("none", 1.0)
    again = run()
    assert torch.equal(again, out["base_latents"]), "reference unload did not restore the base"
    out["init_noise"] = torch.cat([torch.randn((1, 8, 16, EDIT_FRAMES), generator=torch.Generator().manual_seed(x))
                                   for x in seeds])
    save_file({k: v.contiguous() for k, v in out.items()}, os.path.join(d, "case.safetensors"))
    delta = (out["lora_latents"] - out["base_latents"]).abs().max()
    print(f"lora: {len(os.listdir(adapter_dir))} files, |lora - base| max {delta:.3f}")


def make_lyrics(vocab):
    """The reference lyric frontend over tests/fixtures/lyrics/corpus.tsv (`label<TAB>line`): per
    line the language `get_lang` detects, the language it tokenizes with, the ids of
    `tokenize_lyrics(line)` (framing included) and of `encode(line, lang)`; plus one multi-line
    song. Writes tests/fixtures/lyrics/reference.json. The vocab file is not committed."""
    from acestep.models.lyrics_utils.lyric_tokenizer import VoiceBpeTokenizer
    from acestep.language_segmentation import LangSegment, language_filters
    from acestep.pipeline_ace_step import ACEStepPipeline, SUPPORT_LANGUAGES, structure_pattern

    pipe = ACEStepPipeline.__new__(ACEStepPipeline)
    pipe.lyric_tokenizer = VoiceBpeTokenizer(vocab_file=vocab)
    seg = LangSegment()
    seg.setfilters(language_filters.default)
    pipe.lang_segment = seg
    d = os.path.join(FIX, "lyrics")
    rows = []
    with open(os.path.join(d, "corpus.tsv"), encoding="utf-8") as f:
        for raw in f:
            label, _, line = raw.rstrip("\n").partition("\t")
            stripped = line.strip()
            detected = pipe.get_lang(stripped) if stripped else None
            lang = detected
            if stripped:
                if lang not in SUPPORT_LANGUAGES:
                    lang = "en"
                if "zh" in lang:
                    lang = "zh"
                if "spa" in lang:
                    lang = "es"
            is_tag = bool(stripped and structure_pattern.match(stripped))
            rows.append(dict(label=label, line=line, detected=detected, lang=lang, structure=is_tag,
                             ids=pipe.tokenize_lyrics(line)))
    song = "\n".join(r["line"] for r in rows[:12]) + "\n\n" + "\n".join(r["line"] for r in rows[-8:])
    out = dict(support_languages=sorted(SUPPORT_LANGUAGES), lines=rows,
               song=dict(text=song, ids=pipe.tokenize_lyrics(song)))
    with open(os.path.join(d, "reference.json"), "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=0)
    print(f"lyrics: {len(rows)} lines -> tests/fixtures/lyrics/reference.json")


def make_numbers():
    """The reference's `expand_numbers_multilingual` (num2words underneath) on cardinals, ordinals,
    decimals and currency amounts, for the languages whose number words we implement. Writes
    tests/fixtures/lyrics/numbers.json: {lang: [[input, output], ...]}."""
    from acestep.models.lyrics_utils.lyric_tokenizer import expand_numbers_multilingual

    ordinal_suffix = {"en": "th", "de": ".", "fr": "e", "nl": "e", "es": "º", "it": "º", "pt": "º", "cs": ".", "hu": ".", "ko": "번째", "pl": "th", "ru": "-й", "tr": ".", "ar": "ون"}  # cs: num2words 0.5.14 has no "cz": digits stay
    bigs = [1985, 2020, 10007, 21000, 123456, 1000000, 1000001, 2500000, 10**9, 3500000000,
            10**12 + 1, 987654321012]
    decimals = ["0.5", "1.05", "3.5", "25,5", "12.75", "99.99", "0.01", "100.1", "7,25", "3.0"]
    money = ["$1", "$2", "$21", "$100", "$1.50", "$3.50", "$0.99", "$1,000", "£1", "£21", "£21.50",
             "£0.01", "1€", "21€", "50€", "3,50€", "€1.01", "€200"]
    out = {}
    for lang, suf in ordinal_suffix.items():
        cases = [str(n) for n in list(range(0, 1101)) + bigs]
        cases += [f"{n}{suf} x" for n in list(range(1, 131)) + [200, 1000, 1001, 1985, 10**6]]
        cases += decimals + money
        rows = []
        for c in cases:
            try:
                rows.append([c, expand_numbers_multilingual(c, lang)])
            except Exception:  # multilingual_cleaners then keeps the text as it is
                rows.append([c, c])
        out[lang] = rows
    # Chinese: zh_num2words' TextNorm (normalize_nsw, then punctuation to commas).
    zh = [str(n) for n in list(range(0, 1101)) + bigs] + decimals
    zh += [f"{n}{q}" for n in [1, 2, 3, 10, 12, 20, 22, 100, 200, 2000, 10000, 22000, 3.5] for q in
           ["个", "只", "年", "岁", "公斤", "千克", "厘米", "多个", "几天", "余人", "元", "块", "万元", "毛", "角",
            "%", "％", "分"]]
    zh += ["2023年5月1日", "1998年", "98年", "08年", "12月25日", "5月3号", "2008年8月8日", "2023年12月",
           "今天是2024年2月29日，天气很好", "1/2", "3/4", "10/100", "一共2/3的人", "增长了12.5%",
           "13812345678", "+86 13912345678", "电话010-12345678", "0755-1234567", "号码87654321",
           "12345", "007", "2024", "00", "0.05", "100.25", "P2P平台", "B2B和B2C", "O2O",
           "我有2个苹果和3.5元", "第1名", "共计1000000人", "100多个", "20几岁", "3.5万元", "5块5",
           "Ｉ have 3 apples.", "他跑了42.195公里！", "在2号线上", "我们在1999年相遇", "一起走过10000个日夜",
           "２０２４年", "价格：¥99", "温度-5度", "1,000,000", "1.2.3", "10:30", "50%的人喜欢"]
    out["zh"] = [[c, expand_numbers_multilingual(c, "zh")] for c in zh]
    d = os.path.join(FIX, "lyrics")
    with open(os.path.join(d, "numbers.json"), "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=0)
    print(f"numbers: {sum(len(v) for v in out.values())} cases -> tests/fixtures/lyrics/numbers.json")


def make_langdetect():
    """The reference's `get_lang` (LangSegment over py3langid, filters `language_filters.default`)
    on variants of the corpus lines that exercise its code paths: case changes, quotes and
    brackets, numbers, fragments, two lines of different languages joined, plus hand-written
    edge cases (other scripts, SSML-like tags, kana / kanji fragments, punctuation only).
    Writes tests/fixtures/lyrics/langdetect.json: [[line, detected], ...]."""
    from acestep.language_segmentation import LangSegment, language_filters
    from acestep.pipeline_ace_step import ACEStepPipeline

    pipe = ACEStepPipeline.__new__(ACEStepPipeline)
    seg = LangSegment()
    seg.setfilters(language_filters.default)
    pipe.lang_segment = seg
    d = os.path.join(FIX, "lyrics")
    with open(os.path.join(d, "corpus.tsv"), encoding="utf-8") as f:
        base = [raw.rstrip("\n").partition("\t")[2].strip() for raw in f]
    base = [b for b in base if b]
    lines = []
    for i, b in enumerate(base):
        words = b.split()
        other = base[(i * 7 + 3) % len(base)]
        lines += [b.upper(), b.lower(), f'"{b}"', f"'{b}'", f"({b})", f"「{b}」", f"《{b}》",
                  f"{b} 2024", f"1. {b}", f"{b}...", " ".join(words[:2]), words[0], " ".join(words[-3:]),
                  f"{b} {other}", f"{other}，{b}", b[: max(1, len(b) // 3)], f"{b} (yeah)", f"{b} oh oh"]
    lines += ["iPhone 15和Apple Watch", "<number>12345</number>", "<telephone>+8613812345678</telephone>",
              "<b>bold</b> text", "<ja>佐々木</ja>さん", "Я тебе кохаю, моя Україно", "Σ' αγαπώ πολύ",
              "אני אוהב אותך", "ฉันรักเธอมาก", "Anh yêu em nhiều lắm", "Tôi thích nghe nhạc",
              "...", "!!!", "123 456", "1, 2, 3, 4", "100%", "OK", "la la la", "Ooh ooh ooh", "yeah",
              "¿Dónde estás?", "ÉCOLE ÉTÉ", "Łzy płyną", "ありがとう", "東京", "東京タワー", "一",
              "漢字です。", "中文。English.", "佐藤さん、こんにちは", "嗯", "好的。", "啊啊啊",
              "Na na na 你好", "Hello 世界", "世界 Hello", "Love 사랑 愛", "A B C", "x", "Q&A",
              "rock'n'roll", "don't stop", "C'est la vie", "l'amour", "naïve café", "São Paulo",
              "Straße", "Ölçü", "çok güzel", "Ñandú", "Köln", "Zürich", "señor", "ça va",
              "“Quote” test", "‘single’ quotes", "(bracket)", "【Title】", "（中文括号）",
              "2024年8月24日", "10:30", "＃hash", "email@example.com", "https://example.com",
              "🎵🎶", "♪ la la ♪", "— dash —", "ｆｕｌｌｗｉｄｔｈ", "ＡＢＣ", "١٢٣", "مرحبا بالعالم",
              "नमस्ते दुनिया", "मैं तुमसे प्यार करता हूँ", "Ich bin müde", "Je suis fatigué"]
    rows = [[ln, pipe.get_lang(ln)] for ln in lines if ln.strip()]
    with open(os.path.join(d, "langdetect.json"), "w", encoding="utf-8") as f:
        json.dump(rows, f, ensure_ascii=False, indent=0)
    print(f"langdetect: {len(rows)} lines -> tests/fixtures/lyrics/langdetect.json")


def make_pinyin():
    """The reference's `chinese_transliterate` (pypinyin TONE3, neutral 5) on 3000 seeded strings:
    random concatenations of pypinyin phrases, phrase fragments and single characters (with
    punctuation, Latin letters and digits between), so that forward maximum matching meets
    overlapping phrases. Writes tests/fixtures/lyrics/pinyin.json: [[text, pinyin], ...]."""
    import random
    from pypinyin.constants import PHRASES_DICT, PINYIN_DICT
    from acestep.models.lyrics_utils.lyric_tokenizer import chinese_transliterate

    rng = random.Random(1234)
    phrases = sorted(PHRASES_DICT)
    chars = [chr(c) for c in sorted(PINYIN_DICT) if 0x4E00 <= c <= 0x9FFF]
    common = "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之过家学对可她里后小么心多天而能好都然没日于起还发成事只作当想看文无开手十用主行方又如前所本见经头面公同三已老从动两长知民样现分将外但身些与高意进把法此实回二理美点月明其种声全工己话儿者向情部正名定女问力机给等几很业最间新什打便位因重被走电四第门相次东政海口使教西再平真听世气信北少关并内加化由却代军产入先山五太水万市眼体别处总才场师书比住员九笑性通目华报立马命张活难神数件安表原车白应路期叫死常提感金何更反合放做系计或司利受光王果亲界及今京务制解各任至清物台象记边共风战干接它许八特觉望直服毛林题建南度统色字请交爱让认算论百吃义科怎元社术结六功指思非流每青管夫连远资队跟带花快条院变联言权往展该领传近留红治决周保达办运武半候七必城父强步完革深区即求品士转量空甚众技轻程告江语英基派满式李息写呢识极令黄德收脸钱党倒未持取设始版双历越史商千片容研像找友孩站广改议形委早房音火际则首单据导影失拿网香似斯专石若兵弟谁校读志飞观争究包组造落视济喜离虽坐集编宝谈府拉黑且随格尽剑讲布杀微怕母调局根曾准团段终乐切级克精哪官示冷域读"
    rows = []
    for _ in range(3000):
        parts = []
        for _ in range(rng.randint(1, 6)):
            r = rng.random()
            if r < 0.45:
                parts.append(rng.choice(phrases))
            elif r < 0.6:
                ph = rng.choice(phrases)
                parts.append(ph[rng.randint(0, len(ph) - 1):])
            elif r < 0.8:
                parts.append("".join(rng.choice(common) for _ in range(rng.randint(1, 4))))
            elif r < 0.9:
                parts.append(rng.choice(chars))
            else:
                parts.append(rng.choice(["，", " ", "a", "OK", "7", "！", "〇", "·"]))
        text = "".join(parts)
        rows.append([text, chinese_transliterate(text)])
    d = os.path.join(FIX, "lyrics")
    with open(os.path.join(d, "pinyin.json"), "w", encoding="utf-8") as f:
        json.dump(rows, f, ensure_ascii=False, indent=0)
    print(f"pinyin: {len(rows)} strings -> tests/fixtures/lyrics/pinyin.json")


def make_romaji():
    """The reference's `japanese_cleaners` (cutlet 0.5.2 over fugashi + unidic-lite 1.0.8, then
    lowercase) on the corpus's Japanese lines, hand-written lines that reach cutlet's rules
    (particles は/へ/を, っ, ー, ん before vowels, ゝゞ, loanwords with foreign lemmas, proper
    nouns, exceptions, digits, ASCII words, brackets, punctuation, unknown words) and variants
    of them. Writes tests/fixtures/lyrics/romaji.json: [[line, romaji or null], ...] (null:
    cutlet raises, and the reference's `tokenize_lyrics` drops the line)."""
    import cutlet
    from acestep.models.lyrics_utils.lyric_tokenizer import japanese_cleaners

    katsu = cutlet.Cutlet()
    d = os.path.join(FIX, "lyrics")
    with open(os.path.join(d, "corpus.tsv"), encoding="utf-8") as f:
        corpus = [raw.rstrip("\n").partition("\t") for raw in f]
    lines = [t.strip() for lab, _, t in corpus if lab in ("ja", "mixed") and t.strip()]
    lines += [
        "私は学校へ行きます", "これはペンです", "本を読む", "ちょっと待って", "きっと大丈夫",
        "コーヒーを飲もう", "ラーメンが食べたい", "カツカレーを食べた", "東京タワーに登った",
        "大阪と京都へ行こう", "柔道と弁当", "新しいパソコンを買った", "インターネットで調べた",
        "こんにちは、元気ですか？", "ありがとう！", "さようなら。", "「愛してる」と言った",
        "『星の王子さま』を読んだ", "（笑）", "【重要】お知らせ", "時々、人々", "いすゞ", "こゝろ",
        "ヴァイオリンを弾く", "ウィンドウを開けて", "ティーカップ", "ファンタジー", "チェック",
        "シャツとジャケット", "きゃりーぱみゅぱみゅ", "がっこう", "まっちゃ", "ほっとけ", "あっ",
        "せんえん", "こんや", "きんようび", "たんい", "ばんごはん", "かんおけ", "ん",
        "2024年の夏", "100%の愛", "3つのお願い", "第1章", "1、2、3", "午後3時30分",
        "iPhoneを使う", "YouTubeで見た", "OK、わかった", "Let's go 一緒に", "I love you 大好き",
        "ロックンロール", "ジョン・レノン", "東京・大阪", "Ａｂｃ全角", "ｶﾀｶﾅ半角", "〜夢〜",
        "雪が降る夜に君を想う", "走れ、走れ、どこまでも", "もう一度だけ", "ずっとずっと",
        "涙が止まらない", "君がいれば何もいらない", "明日はきっと晴れる", "さくら さくら",
        "夢見る少女じゃいられない", "風になりたい", "残酷な天使のテーゼ", "上を向いて歩こう",
        "ホッピーを飲む", "ヒルズに住む", "カービィが好き", "€100と¥500", "♪ラララ♪",
        "ヶ月", "ゐゑ", "ヷヸ", "〆切", "々", "ｷｬｯﾄ", "ﾃﾞｰﾀ", "ー", "っ", "ゝ", "A-B-C",
    ]
    lines += [f"{ln} yeah" for ln in lines[:40]] + [f"「{ln}」" for ln in lines[:40]]
    rows = []
    for ln in lines:
        try:
            out = japanese_cleaners(ln, katsu)
        except Exception:  # tokenize_lyrics then skips the line
            out = None
        rows.append([ln, out])
    with open(os.path.join(d, "romaji.json"), "w", encoding="utf-8") as f:
        json.dump(rows, f, ensure_ascii=False, indent=0)
    print(f"romaji: {len(rows)} lines ({sum(r[1] is None for r in rows)} raise) -> tests/fixtures/lyrics/romaji.json")


def make_audio():
    """Small encoded files for the audio reader: ogg/vorbis (which we read but do not write)."""
    import soundfile as sf

    os.makedirs(os.path.join(FIX, "audio"), exist_ok=True)
    sr = 22050
    t = torch.arange(sr // 2, dtype=torch.float64) / sr
    tone = 0.5 * torch.sin(2 * math.pi * 440.0 * t)
    path = os.path.join(FIX, "audio", "tone440_mono_22050.ogg")
    sf.write(path, tone.numpy(), sr, format="OGG", subtype="VORBIS")
    print(f"audio: {path} ({os.path.getsize(path)} bytes)")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reference", required=True, help="path to a checkout of ace-step/ACE-Step")
    ap.add_argument("--configs", default=os.path.join(ROOT, "..", "shared", "reference", "configs"),
                    help="folder with the real <component>.config.json files")
    ap.add_argument("--only", default="manifests,umt5,dit,dcae,audio,sampling,diffusion,editing,lora,lyrics,numbers,langdetect,pinyin,romaji", help="comma list of: manifests, umt5, dit, dcae, audio, sampling, diffusion, editing, lora, lyrics, numbers, langdetect, pinyin, romaji")
    ap.add_argument("--vocab", default=os.path.join(ROOT, "..", "shared", "reference", "vocab.json"),
                    help="the reference lyric tokenizer's vocab.json (lyrics fixtures)")
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
    if "dcae" in parts:
        make_dcae()
    if "audio" in parts:
        make_audio()
    if "sampling" in parts:
        make_sampling()
    if "diffusion" in parts:
        make_diffusion()
    if "editing" in parts:
        make_editing()
    if "lora" in parts:
        make_lora()
    if "lyrics" in parts:
        make_lyrics(args.vocab)
    if "numbers" in parts:
        make_numbers()
    if "langdetect" in parts:
        make_langdetect()
    if "pinyin" in parts:
        make_pinyin()
    if "romaji" in parts:
        make_romaji()


if __name__ == "__main__":
    main()
