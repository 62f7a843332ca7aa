//! # acestep
//!
//! A pure-Rust ([candle](https://github.com/huggingface/candle)) inference engine for the
//! **ACE-Step v1 3.5B** music generation model, loading the real checkpoint layout of
//! `ACE-Step/ACE-Step-v1-3.5B` from a local directory or the Hugging Face Hub.
//!
//! Components (one module each, named after the pipeline stage):
//!
//! | module | component | status |
//! | --- | --- | --- |
//! | [`checkpoint`] | checkpoint layout (paths and files) | done |
//! | [`hub`] | downloads: Hugging Face Hub, pinned PyPI files | done |
//! | [`text_encoder`] | UMT5-base prompt encoder + tokenizer, ERG-tag | done, at parity |
//! | [`dit`] | ACE-Step DiT + Conformer lyric encoder, ERG | done, at parity |
//! | [`dcae`] | music DCAE (AutoencoderDC), log-mel, `MusicDCAE` | done, at parity |
//! | [`vocoder`] | ADaMoSHiFiGAN vocoder | done, at parity |
//! | [`audio`] | audio read / write / resample | done |
//! | [`schedulers`] | flow-matching Euler, Heun, PingPong | done, at parity |
//! | [`pipeline`] | text2music and editing (retake, repaint, extend, edit, audio2audio) diffusion processes, `Pipeline::generate` | done, at parity |
//! | [`lora`] | LoRA adapters on the DiT (peft / diffusers files) | done, at parity |
//! | [`lyrics`] | lyric tokenizer, cleaners, number words, Korean romanisation | 15 of 17 languages exact |
//! | [`guidance`] | APG, CFG, CFG-zero*, double condition, guidance interval | done, at parity |
//! | [`jobs`] | local job manager: queue, workers, SQLite persistence, callbacks | done |
//! | [`server`] | HTTP server: the three async-task API dialects | done |
//!
//! ```no_run
//! use acestep::{Checkpoint, TextEncoder};
//! use candle_core::Device;
//!
//! let device = acestep::device::default_device();
//! let dtype = acestep::device::default_dtype(&device);
//! let ckpt = Checkpoint::resolve(None)?; // $ACESTEP_CHECKPOINT_DIR or a hub download
//! let enc = TextEncoder::load(&ckpt, &device, dtype)?;
//! let emb = enc.encode(&["lofi hip hop, mellow piano"])?;
//! assert_eq!(emb.hidden_states.dim(2)?, 768);
//! # Ok::<(), acestep::Error>(())
//! ```

pub mod audio;
pub mod checkpoint;
pub(crate) mod config;
pub mod dcae;
pub mod device;
pub mod dit;
pub mod erg;
pub mod error;
pub mod guidance;
pub mod hub;
#[cfg(feature = "server")]
pub mod jobs;
pub mod lora;
pub mod lyrics;
pub mod pipeline;
pub mod quant;
pub mod schedulers;
#[cfg(feature = "server")]
pub mod server;
#[cfg(feature = "testing")]
pub mod testing;
pub mod text_encoder;
pub mod vocoder;
pub(crate) mod weights;

pub use audio::Audio;
pub use checkpoint::{Checkpoint, Component, DEFAULT_REPO_ID};
pub use erg::QueryScale;
pub use error::{Error, Result};
pub use hub::HubOptions;
pub use pipeline::{
    Control, GeneratedAudio, GenerationParams, Latents, Pipeline, PipelineOptions, Progress, Task,
};
pub use text_encoder::{TextEmbeddings, TextEncoder};
