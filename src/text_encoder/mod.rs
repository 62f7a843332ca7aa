//! The prompt encoder: the UMT5 tokenizer (`umt5-base/tokenizer.json`) and the UMT5 encoder.
//!
//! [`TextEncoder::encode`] is the reference's `get_text_embeddings`: tokenise a batch with padding
//! to the longest prompt and truncation to 256 tokens, run the encoder, return the last hidden state
//! and the attention mask. [`TextEncoder::encode_null`] is `get_text_embeddings_null`: the same
//! with the query projections of layers 8..10 scaled by tau = 0.01 (ERG-tag).
//!
//! ```no_run
//! use acestep::{Checkpoint, TextEncoder};
//! use candle_core::{DType, Device};
//!
//! let ckpt = Checkpoint::from_dir("/models/ACE-Step-v1-3.5B")?;
//! let enc = TextEncoder::load(&ckpt, &Device::Cpu, DType::F32)?;
//! let out = enc.encode(&["funk, groovy bass, 110 bpm"])?;
//! println!("{:?}", out.hidden_states.shape()); // [1, tokens, 768]
//! # Ok::<(), acestep::Error>(())
//! ```

pub mod umt5;

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use tokenizers::{PaddingDirection, PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

use crate::checkpoint::{Checkpoint, Component};
use crate::erg::QueryScale;
use crate::error::{Error, Result};
use crate::weights::load_safetensors;
pub use umt5::{Umt5Config, Umt5EncoderModel};

/// The reference's prompt length limit (`text_max_length`).
pub const TEXT_MAX_LENGTH: usize = 256;

/// Token ids and attention mask of a tokenised batch.
#[derive(Debug, Clone)]
pub struct TokenizedBatch {
    /// `[b, s]` u32 token ids, right-padded with the pad id.
    pub input_ids: Tensor,
    /// `[b, s]` f32, 1 for tokens, 0 for padding.
    pub attention_mask: Tensor,
    /// The unpadded length of each prompt.
    pub lengths: Vec<usize>,
}

/// The UMT5 tokenizer, configured as the reference calls it.
#[derive(Clone)]
pub struct TextTokenizer {
    tokenizer: Tokenizer,
    path: PathBuf,
}

impl TextTokenizer {
    /// Loads `tokenizer.json` and sets padding (to the longest prompt, right, `<pad>`) and
    /// truncation (`max_length` tokens, end-of-sequence token included).
    pub fn from_file(path: &Path, max_length: usize) -> Result<Self> {
        if !path.is_file() {
            return Err(Error::MissingPath {
                what: "tokenizer file".into(),
                path: path.to_path_buf(),
            });
        }
        let terr = |message: String| Error::Tokenizer {
            path: path.to_path_buf(),
            message,
        };
        let mut tokenizer = Tokenizer::from_file(path).map_err(|e| terr(e.to_string()))?;
        let pad_id = tokenizer.token_to_id("<pad>").unwrap_or(0);
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            direction: PaddingDirection::Right,
            pad_to_multiple_of: None,
            pad_id,
            pad_type_id: 0,
            pad_token: "<pad>".into(),
        }));
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length,
                ..Default::default()
            }))
            .map_err(|e| terr(e.to_string()))?;
        Ok(Self {
            tokenizer,
            path: path.to_path_buf(),
        })
    }

    /// Whether `text` fits the length limit without truncation (its tokens, end-of-sequence
    /// token included, number at most `max_length`).
    pub fn fits(&self, text: &str) -> Result<bool> {
        let enc = self
            .tokenizer
            .encode(text, true)
            .map_err(|e| Error::Tokenizer {
                path: self.path.clone(),
                message: e.to_string(),
            })?;
        Ok(enc.get_overflowing().is_empty())
    }

    /// Tokenises `texts` (with the end-of-sequence token) into padded ids and mask on `device`.
    pub fn encode_batch(&self, texts: &[&str], device: &Device) -> Result<TokenizedBatch> {
        if texts.is_empty() {
            return Err(Error::InvalidArgument {
                name: "prompts",
                value: "[]".into(),
                expected: "at least one prompt".into(),
            });
        }
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| Error::Tokenizer {
                path: self.path.clone(),
                message: e.to_string(),
            })?;
        let b = encodings.len();
        let s = encodings.first().map(|e| e.get_ids().len()).unwrap_or(0);
        let mut ids = Vec::with_capacity(b * s);
        let mut mask = Vec::with_capacity(b * s);
        let mut lengths = Vec::with_capacity(b);
        for e in &encodings {
            ids.extend_from_slice(e.get_ids());
            mask.extend(e.get_attention_mask().iter().map(|&m| m as f32));
            lengths.push(e.get_attention_mask().iter().filter(|&&m| m != 0).count());
        }
        Ok(TokenizedBatch {
            input_ids: Tensor::from_vec(ids, (b, s), device)?,
            attention_mask: Tensor::from_vec(mask, (b, s), device)?,
            lengths,
        })
    }
}

/// Output of [`TextEncoder::encode`].
#[derive(Debug, Clone)]
pub struct TextEmbeddings {
    /// `[b, s, d_model]` last hidden state, in the encoder's dtype.
    pub hidden_states: Tensor,
    /// `[b, s]` f32 attention mask (1 = token, 0 = padding).
    pub attention_mask: Tensor,
}

/// Tokenizer plus UMT5 encoder, loaded once.
pub struct TextEncoder {
    tokenizer: TextTokenizer,
    model: Umt5EncoderModel,
    device: Device,
}

impl TextEncoder {
    /// Loads `umt5-base/` of `checkpoint` onto `device` in `dtype`.
    pub fn load(checkpoint: &Checkpoint, device: &Device, dtype: DType) -> Result<Self> {
        Self::load_dir(
            &checkpoint.component_dir(Component::TextEncoder)?,
            device,
            dtype,
        )
    }

    /// Loads from a `umt5-base`-style folder (`config.json`, `model.safetensors`, `tokenizer.json`).
    pub fn load_dir(dir: &Path, device: &Device, dtype: DType) -> Result<Self> {
        let cfg_path = dir.join("config.json");
        let cfg: Umt5Config = crate::config::read_config(&cfg_path)?;
        cfg.activation().map_err(|message| Error::ConfigValue {
            path: cfg_path.clone(),
            message,
        })?;
        let tokenizer = TextTokenizer::from_file(&dir.join("tokenizer.json"), TEXT_MAX_LENGTH)?;
        let gguf = crate::quant::gguf_path(dir, Component::TextEncoder);
        let loaded = if gguf.is_file() {
            crate::quant::load_gguf(&gguf, dtype, device, |vb| Umt5EncoderModel::new(&cfg, vb))?
        } else {
            let weights = vec![dir.join(Component::TextEncoder.weights_file())];
            load_safetensors(&weights, dtype, device, |vb| {
                Umt5EncoderModel::new(&cfg, vb)
            })?
        };
        for k in &loaded.unused {
            tracing::debug!("umt5: unused checkpoint tensor {k}");
        }
        Ok(Self {
            tokenizer,
            model: loaded.model,
            device: device.clone(),
        })
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &TextTokenizer {
        &self.tokenizer
    }

    /// The encoder network.
    pub fn model(&self) -> &Umt5EncoderModel {
        &self.model
    }

    /// `get_text_embeddings`: the prompts' last hidden states and attention mask.
    pub fn encode(&self, texts: &[&str]) -> Result<TextEmbeddings> {
        self.encode_with(texts, None)
    }

    /// `get_text_embeddings_null` with the given ERG-tag scale (the reference: tau 0.01 on layers
    /// 8..10, [`QueryScale::text_default`]).
    pub fn encode_null(&self, texts: &[&str], erg: &QueryScale) -> Result<TextEmbeddings> {
        self.encode_with(texts, Some(erg))
    }

    /// Encodes with an optional query scale.
    pub fn encode_with(&self, texts: &[&str], erg: Option<&QueryScale>) -> Result<TextEmbeddings> {
        let batch = self.tokenizer.encode_batch(texts, &self.device)?;
        let hidden_states = self
            .model
            .forward(&batch.input_ids, &batch.attention_mask, erg)?;
        Ok(TextEmbeddings {
            hidden_states,
            attention_mask: batch.attention_mask,
        })
    }
}
