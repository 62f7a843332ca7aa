//! Writing generated songs to disk: the audio files and the reference-style `.json` sidecar of
//! every parameter (shared by `acestep generate` and the job manager).

use std::path::{Path, PathBuf};

use super::{GeneratedAudio, GenerationParams};
use crate::audio::{self, Format};
use crate::error::{Error, Result};

/// One song written to disk.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct WrittenSong {
    /// The audio file.
    pub audio_path: PathBuf,
    /// Its `.json` sidecar (every parameter, the seed, timings).
    pub params_path: PathBuf,
    /// The seed of its initial noise.
    pub seed: u64,
    /// Its length in seconds.
    pub duration_seconds: f64,
    /// Its sample rate.
    pub sample_rate: u32,
}

/// Writes `songs` in `params.format` next to `output` (`output` itself for one song,
/// `<stem>_<i>.<ext>` for a batch), each with a `.json` sidecar holding the serialised `params`,
/// `actual_seeds`, the song's `seed`, `audio_path`, `sample_rate` and every key of `extra`.
pub fn write_songs(
    songs: &[GeneratedAudio],
    params: &GenerationParams,
    output: &Path,
    extra: &serde_json::Value,
) -> Result<Vec<WrittenSong>> {
    let format = Format::from_name(&params.format)?;
    let mut base = serde_json::to_value(params).map_err(|e| Error::InvalidArgument {
        name: "params",
        value: "serialisation".into(),
        expected: e.to_string(),
    })?;
    base["actual_seeds"] = serde_json::json!(songs.iter().map(|s| s.seed).collect::<Vec<_>>());
    base["task"] = serde_json::json!(params.effective_task().name());
    if songs.iter().any(|s| s.retake_seed.is_some()) {
        base["actual_retake_seeds"] =
            serde_json::json!(songs.iter().map(|s| s.retake_seed).collect::<Vec<_>>());
    }
    if let Some(map) = extra.as_object() {
        for (k, v) in map {
            base[k] = v.clone();
        }
    }
    let mut out = Vec::with_capacity(songs.len());
    for (i, song) in songs.iter().enumerate() {
        let path = if songs.len() > 1 {
            let stem = output
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            output.with_file_name(format!("{stem}_{i}.{}", format.extension()))
        } else {
            output.to_path_buf()
        };
        let path = audio::write(&path, &song.audio, Some(format))?;
        let mut sidecar = base.clone();
        sidecar["seed"] = serde_json::json!(song.seed);
        if let Some(r) = song.retake_seed {
            sidecar["retake_seed"] = serde_json::json!(r);
        }
        sidecar["audio_path"] = serde_json::json!(path);
        sidecar["sample_rate"] = serde_json::json!(song.audio.sample_rate);
        let json_path = path.with_extension("json");
        let text = serde_json::to_string_pretty(&sidecar).unwrap_or_default();
        std::fs::write(&json_path, text).map_err(|e| Error::io(&json_path, e))?;
        out.push(WrittenSong {
            audio_path: path,
            params_path: json_path,
            seed: song.seed,
            duration_seconds: song.audio.duration(),
            sample_rate: song.audio.sample_rate,
        });
    }
    Ok(out)
}
