//! Audio I/O and resampling.
//!
//! - [`read`]: any common format (wav, flac, mp3, ogg/vorbis) to planar f32, via symphonia.
//! - [`Audio::to_stereo`]: mono is duplicated to two channels (as the reference does); more than
//!   two channels keep the first two.
//! - [`Audio::resample`]: band-limited sinc resampling (rubato).
//! - [`write()`]: wav (32-bit float, as the reference's soundfile save of float tensors; or 16-bit),
//!   flac (24-bit) and mp3 (LAME, 320 kbit/s CBR), chosen by the file extension.

use std::fs::File;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};

use crate::error::{Error, Result};

/// Planar audio: one `Vec<f32>` per channel, all of the same length.
#[derive(Debug, Clone, PartialEq)]
pub struct Audio {
    /// The samples of each channel, nominally in [-1, 1].
    pub channels: Vec<Vec<f32>>,
    /// Samples per second.
    pub sample_rate: u32,
}

/// Output container/codec, from the file extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// RIFF WAVE, 32-bit float.
    Wav,
    /// RIFF WAVE, 16-bit PCM.
    Wav16,
    /// FLAC, 24-bit.
    Flac,
    /// MPEG-1 layer III, 320 kbit/s.
    Mp3,
}

impl Format {
    /// The format of a path's extension (`wav`, `flac`, `mp3`).
    pub fn from_path(path: &Path) -> Result<Self> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(|e| e.to_ascii_lowercase())
            .unwrap_or_default();
        Self::from_name(&ext).map_err(|_| Error::InvalidArgument {
            name: "output format",
            value: path.display().to_string(),
            expected: "a file name ending in .wav, .flac or .mp3".into(),
        })
    }

    /// Parses `wav`, `wav16`, `flac`, `mp3`.
    pub fn from_name(name: &str) -> Result<Self> {
        match name.to_ascii_lowercase().as_str() {
            "wav" => Ok(Format::Wav),
            "wav16" => Ok(Format::Wav16),
            "flac" => Ok(Format::Flac),
            "mp3" => Ok(Format::Mp3),
            other => Err(Error::InvalidArgument {
                name: "format",
                value: other.to_string(),
                expected: "one of wav, wav16, flac, mp3".into(),
            }),
        }
    }

    /// The usual file extension.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Wav | Format::Wav16 => "wav",
            Format::Flac => "flac",
            Format::Mp3 => "mp3",
        }
    }
}

fn audio_err(path: &Path, message: impl std::fmt::Display) -> Error {
    Error::Audio {
        path: path.to_path_buf(),
        message: message.to_string(),
    }
}

impl Audio {
    /// Number of samples per channel.
    pub fn len(&self) -> usize {
        self.channels.first().map(Vec::len).unwrap_or(0)
    }

    /// True when there are no samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Duration in seconds.
    pub fn duration(&self) -> f64 {
        self.len() as f64 / self.sample_rate as f64
    }

    /// Two channels: mono duplicated, extra channels dropped.
    pub fn to_stereo(mut self) -> Self {
        match self.channels.len() {
            0 => self,
            1 => {
                let c = self.channels[0].clone();
                self.channels.push(c);
                self
            }
            _ => {
                self.channels.truncate(2);
                self
            }
        }
    }

    /// Resamples every channel to `rate` with a windowed-sinc filter; the output has
    /// `round(len * rate / sample_rate)` samples and no added delay.
    pub fn resample(&self, rate: u32) -> Result<Self> {
        if rate == self.sample_rate || self.is_empty() {
            return Ok(Self {
                channels: self.channels.clone(),
                sample_rate: rate,
            });
        }
        use rubato::{FftFixedIn, Resampler};
        let chunk = 4096;
        let n_ch = self.channels.len();
        let rerr = |e: &dyn std::fmt::Display| Error::InvalidArgument {
            name: "resample",
            value: format!("{} -> {} Hz", self.sample_rate, rate),
            expected: format!("a supported ratio ({e})"),
        };
        // Synchronous FFT resampling: a fixed rational ratio, a windowed-sinc anti-aliasing
        // filter, and an integer delay that is trimmed exactly.
        let mut rs =
            FftFixedIn::<f32>::new(self.sample_rate as usize, rate as usize, chunk, 1, n_ch)
                .map_err(|e| rerr(&e))?;
        let delay = rs.output_delay();
        let want = (self.len() as f64 * rate as f64 / self.sample_rate as f64).round() as usize;
        let mut out: Vec<Vec<f32>> = vec![Vec::with_capacity(want + delay + chunk); n_ch];
        let mut pos = 0;
        let total = self.len();
        // Feed the signal, then zeros, until the delayed output is complete.
        while out[0].len() < want + delay {
            let need = rs.input_frames_next();
            let block: Vec<Vec<f32>> = self
                .channels
                .iter()
                .map(|c| {
                    (pos..pos + need)
                        .map(|i| if i < total { c[i] } else { 0.0 })
                        .collect()
                })
                .collect();
            pos += need;
            let res = rs.process(&block, None).map_err(|e| rerr(&e))?;
            for (o, r) in out.iter_mut().zip(res) {
                o.extend(r);
            }
        }
        let channels = out
            .into_iter()
            .map(|c| c[delay..delay + want].to_vec())
            .collect();
        Ok(Self {
            channels,
            sample_rate: rate,
        })
    }

    /// `[channels, samples]` f32 tensor.
    pub fn to_tensor(&self, device: &Device) -> Result<Tensor> {
        let n = self.len();
        let flat: Vec<f32> = self.channels.iter().flatten().copied().collect();
        Ok(Tensor::from_vec(flat, (self.channels.len(), n), device)?)
    }

    /// From a `[channels, samples]` tensor.
    pub fn from_tensor(t: &Tensor, sample_rate: u32) -> Result<Self> {
        let channels: Vec<Vec<f32>> = t.to_dtype(candle_core::DType::F32)?.to_vec2()?;
        Ok(Self {
            channels,
            sample_rate,
        })
    }
}

/// Decodes an audio file (wav, flac, mp3, ogg/vorbis, ...) to planar f32 at its own rate.
/// A file the decoder cannot read is an [`Error::Audio`], never a panic.
pub fn read(path: impl AsRef<Path>) -> Result<Audio> {
    let path = path.as_ref();
    let (interleaved, n_ch, sample_rate, _) = decode(path, true, None)?;
    let frames = interleaved.len() / n_ch;
    let channels = (0..n_ch)
        .map(|c| (0..frames).map(|i| interleaved[i * n_ch + c]).collect())
        .collect();
    Ok(Audio {
        channels,
        sample_rate,
    })
}

/// What [`probe`] learns of an audio file without keeping its samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AudioInfo {
    /// Channels.
    pub channels: usize,
    /// Samples per second.
    pub sample_rate: u32,
    /// Length in seconds (of the part decoded: at most a little past `max_seconds`).
    pub seconds: f64,
}

/// Sample rates an input file may have (Hz).
pub const INPUT_SAMPLE_RATES: std::ops::RangeInclusive<u32> = 8_000..=192_000;
/// Channels an input file may have.
pub const INPUT_CHANNELS: std::ops::RangeInclusive<usize> = 1..=2;

/// Decodes `path` through without keeping the samples, stopping once more than `max_seconds`
/// were read: its format, channels, rate and length (a truncated or damaged file is an error).
pub fn probe(path: impl AsRef<Path>, max_seconds: f64) -> Result<AudioInfo> {
    let path = path.as_ref();
    let (_, channels, sample_rate, frames) = decode(path, false, Some(max_seconds))?;
    Ok(AudioInfo {
        channels,
        sample_rate,
        seconds: frames as f64 / sample_rate as f64,
    })
}

/// Checks an input clip of a request (`name`: its field): decodable audio with 1 or 2
/// channels, a rate in [`INPUT_SAMPLE_RATES`], and at most
/// [`crate::pipeline::MAX_DURATION_SECONDS`] long. The error names the field and the range.
pub fn probe_input(name: &'static str, path: &Path) -> Result<AudioInfo> {
    let max = crate::pipeline::MAX_DURATION_SECONDS;
    let file = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let bad = |value: String, expected: String| Error::InvalidArgument {
        name,
        value,
        expected,
    };
    let info = probe(path, max).map_err(|e| match e {
        Error::Audio { message, .. } => {
            bad(file.clone(), format!("a readable audio file ({message})"))
        }
        other => other,
    })?;
    if !INPUT_CHANNELS.contains(&info.channels) {
        return Err(bad(
            format!("{} channels", info.channels),
            "audio with 1 or 2 channels".into(),
        ));
    }
    if !INPUT_SAMPLE_RATES.contains(&info.sample_rate) {
        return Err(bad(
            format!("{} Hz", info.sample_rate),
            "a sample rate of 8000 to 192000 Hz".into(),
        ));
    }
    if info.seconds > max {
        return Err(bad(
            format!("longer than {max} s"),
            format!("audio of at most {max} s (the longest song the model makes)"),
        ));
    }
    Ok(info)
}

/// The sample rate a RIFF/WAVE file's `fmt ` chunk states, when the file is one.
fn wav_header_rate(path: &Path) -> Option<u32> {
    use std::io::Read;
    let mut head = Vec::with_capacity(4096);
    File::open(path)
        .ok()?
        .take(4096)
        .read_to_end(&mut head)
        .ok()?;
    if head.len() < 12 || &head[0..4] != b"RIFF" || &head[8..12] != b"WAVE" {
        return None;
    }
    let mut pos = 12;
    while pos + 8 <= head.len() {
        let id = &head[pos..pos + 4];
        let size = u32::from_le_bytes(head[pos + 4..pos + 8].try_into().ok()?) as usize;
        if id == b"fmt " {
            let rate = head.get(pos + 12..pos + 16)?;
            return Some(u32::from_le_bytes(rate.try_into().ok()?));
        }
        pos = pos.checked_add(8 + size + (size & 1))?;
    }
    None
}

/// Decodes `path`: the interleaved samples (when `keep`), channels, rate and frames decoded;
/// stops after `max_seconds` (plus a packet) when given. Panics inside the decoder (which some
/// malformed headers cause) are turned into [`Error::Audio`].
fn decode(
    path: &Path,
    keep: bool,
    max_seconds: Option<f64>,
) -> Result<(Vec<f32>, usize, u32, u64)> {
    if wav_header_rate(path) == Some(0) {
        return Err(audio_err(path, "the WAV header states a sample rate of 0"));
    }
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        decode_unchecked(path, keep, max_seconds)
    })) {
        Ok(r) => r,
        Err(p) => {
            let msg = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown error".into());
            Err(audio_err(
                path,
                format!("corrupt audio (the decoder failed: {msg})"),
            ))
        }
    }
}

fn decode_unchecked(
    path: &Path,
    keep: bool,
    max_seconds: Option<f64>,
) -> Result<(Vec<f32>, usize, u32, u64)> {
    use symphonia::core::audio::SampleBuffer;
    use symphonia::core::codecs::{DecoderOptions, CODEC_TYPE_NULL};
    use symphonia::core::errors::Error as SymError;
    use symphonia::core::formats::FormatOptions;
    use symphonia::core::io::MediaSourceStream;
    use symphonia::core::meta::MetadataOptions;
    use symphonia::core::probe::Hint;

    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mss = MediaSourceStream::new(Box::new(file), Default::default());
    let mut hint = Hint::new();
    if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
        hint.with_extension(ext);
    }
    let probed = symphonia::default::get_probe()
        .format(
            &hint,
            mss,
            &FormatOptions {
                // Trim encoder delay and padding (LAME/iTunes gapless info), so an mp3 we wrote
                // reads back at its original length.
                enable_gapless: true,
                ..Default::default()
            },
            &MetadataOptions::default(),
        )
        .map_err(|e| audio_err(path, format!("unsupported or corrupt audio ({e})")))?;
    let mut format = probed.format;
    let track = format
        .tracks()
        .iter()
        .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
        .ok_or_else(|| audio_err(path, "no audio track"))?;
    let track_id = track.id;
    let mut sample_rate = track.codec_params.sample_rate.unwrap_or(0);
    // Refuse absurd layouts before any buffer is sized by them.
    if let Some(ch) = track.codec_params.channels {
        if ch.count() == 0 || ch.count() > 32 {
            return Err(audio_err(path, format!("{} channels", ch.count())));
        }
    }
    let mut decoder = symphonia::default::get_codecs()
        .make(&track.codec_params, &DecoderOptions::default())
        .map_err(|e| audio_err(path, format!("unsupported codec ({e})")))?;
    let mut interleaved: Vec<f32> = Vec::new();
    let mut n_ch = 0usize;
    let mut frames = 0u64;
    let mut bad_packets = 0usize;
    loop {
        let packet = match format.next_packet() {
            Ok(p) => p,
            Err(SymError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(SymError::ResetRequired) => break,
            Err(e) => return Err(audio_err(path, format!("corrupt audio ({e})"))),
        };
        if packet.track_id() != track_id {
            continue;
        }
        match decoder.decode(&packet) {
            Ok(buf) => {
                let spec = *buf.spec();
                n_ch = spec.channels.count();
                sample_rate = spec.rate;
                if sample_rate == 0 {
                    return Err(audio_err(path, "a sample rate of 0"));
                }
                frames += buf.frames() as u64;
                if keep {
                    let mut sb = SampleBuffer::<f32>::new(buf.capacity() as u64, spec);
                    sb.copy_interleaved_ref(buf);
                    interleaved.extend_from_slice(sb.samples());
                }
                if max_seconds.is_some_and(|m| frames as f64 > m * sample_rate as f64) {
                    break;
                }
            }
            // A damaged frame inside an otherwise good stream is skipped, as players do.
            Err(SymError::DecodeError(_)) => bad_packets += 1,
            Err(e) => return Err(audio_err(path, format!("corrupt audio ({e})"))),
        }
    }
    if n_ch == 0 || frames == 0 {
        return Err(audio_err(
            path,
            format!("no decodable audio ({bad_packets} damaged packets)"),
        ));
    }
    if bad_packets > 0 {
        tracing::warn!("{}: skipped {bad_packets} damaged packets", path.display());
    }
    Ok((interleaved, n_ch, sample_rate, frames))
}

fn clamp_i(x: f32, max: f32) -> i32 {
    (x.clamp(-1.0, 1.0) * max).round() as i32
}

/// Writes `audio` to `path` in `format` (or the path's extension when `None`).
pub fn write(path: impl AsRef<Path>, audio: &Audio, format: Option<Format>) -> Result<PathBuf> {
    let path = path.as_ref();
    let format = match format {
        Some(f) => f,
        None => Format::from_path(path)?,
    };
    if audio.channels.is_empty() || audio.channels.iter().any(|c| c.len() != audio.len()) {
        return Err(audio_err(
            path,
            "audio must have at least one channel, all of equal length",
        ));
    }
    // Encode next to the destination and rename into place, so a failed or interrupted write
    // never leaves a truncated file under the final name.
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.partial"));
    let result = encode_to(&tmp, audio, format);
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(match e {
            Error::Audio { message, .. } => audio_err(path, message),
            Error::Io { source, .. } => Error::io(path, source),
            other => other,
        });
    }
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
    Ok(path.to_path_buf())
}

fn encode_to(path: &Path, audio: &Audio, format: Format) -> Result<()> {
    let ch = audio.channels.len();
    let n = audio.len();
    match format {
        Format::Wav | Format::Wav16 => {
            let float = format == Format::Wav;
            let spec = hound::WavSpec {
                channels: ch as u16,
                sample_rate: audio.sample_rate,
                bits_per_sample: if float { 32 } else { 16 },
                sample_format: if float {
                    hound::SampleFormat::Float
                } else {
                    hound::SampleFormat::Int
                },
            };
            let mut w = hound::WavWriter::create(path, spec).map_err(|e| audio_err(path, e))?;
            for i in 0..n {
                for c in &audio.channels {
                    if float {
                        w.write_sample(c[i]).map_err(|e| audio_err(path, e))?;
                    } else {
                        w.write_sample(clamp_i(c[i], 32767.0) as i16)
                            .map_err(|e| audio_err(path, e))?;
                    }
                }
            }
            w.finalize().map_err(|e| audio_err(path, e))?;
        }
        Format::Flac => {
            use flacenc::component::BitRepr;
            use flacenc::error::Verify;
            let samples: Vec<i32> = (0..n)
                .flat_map(|i| {
                    audio
                        .channels
                        .iter()
                        .map(move |c| clamp_i(c[i], 8_388_607.0))
                })
                .collect();
            let config = flacenc::config::Encoder::default()
                .into_verified()
                .map_err(|(_, e)| audio_err(path, format!("{e:?}")))?;
            let source = flacenc::source::MemSource::from_samples(
                &samples,
                ch,
                24,
                audio.sample_rate as usize,
            );
            let stream = flacenc::encode_with_fixed_block_size(&config, source, config.block_size)
                .map_err(|e| audio_err(path, format!("{e:?}")))?;
            let mut sink = flacenc::bitsink::ByteSink::new();
            stream
                .write(&mut sink)
                .map_err(|e| audio_err(path, format!("{e:?}")))?;
            let mut bytes = sink.as_slice().to_vec();
            // flacenc records the short final block as STREAMINFO's minimum block size; the
            // format (and strict readers such as symphonia) take a fixed-blocksize stream to
            // have min == max, the last block excepted. Bytes 8..10 / 10..12 are min / max.
            if bytes.len() >= 12 && &bytes[..4] == b"fLaC" && bytes[4] & 0x7f == 0 {
                let (min, max) = bytes.split_at_mut(10);
                min[8..10].copy_from_slice(&max[..2]);
            }
            std::fs::write(path, &bytes).map_err(|e| Error::io(path, e))?;
        }
        Format::Mp3 => {
            use mp3lame_encoder::{Bitrate, Builder, DualPcm, FlushGap, MonoPcm, Quality};
            let lerr = |e: &dyn std::fmt::Debug| audio_err(path, format!("mp3 encoder: {e:?}"));
            if ch > 2 {
                return Err(audio_err(path, "mp3 holds at most two channels"));
            }
            let mut b =
                Builder::new().ok_or_else(|| audio_err(path, "cannot create the LAME encoder"))?;
            b.set_num_channels(ch as u8).map_err(|e| lerr(&e))?;
            b.set_sample_rate(audio.sample_rate).map_err(|e| lerr(&e))?;
            b.set_brate(Bitrate::Kbps320).map_err(|e| lerr(&e))?;
            b.set_quality(Quality::Best).map_err(|e| lerr(&e))?;
            // The LAME/Xing info frame records encoder delay and padding (gapless playback).
            b.set_to_write_vbr_tag(true).map_err(|e| lerr(&e))?;
            let mut enc = b.build().map_err(|e| lerr(&e))?;
            let to_i16 = |c: &Vec<f32>| -> Vec<i16> {
                c.iter().map(|&x| clamp_i(x, 32767.0) as i16).collect()
            };
            let left = to_i16(&audio.channels[0]);
            let mut out = Vec::with_capacity(mp3lame_encoder::max_required_buffer_size(n));
            if ch == 2 {
                let right = to_i16(&audio.channels[1]);
                enc.encode_to_vec(
                    DualPcm {
                        left: &left,
                        right: &right,
                    },
                    &mut out,
                )
                .map_err(|e| lerr(&e))?;
            } else {
                enc.encode_to_vec(MonoPcm(&left), &mut out)
                    .map_err(|e| lerr(&e))?;
            }
            enc.flush_to_vec::<FlushGap>(&mut out)
                .map_err(|e| lerr(&e))?;
            // LAME reserved the stream's first frame for the info tag; fill it in now that the
            // totals are known.
            let mut tag = Vec::with_capacity(8192);
            if enc.lame_tag_encode_to_vec(&mut tag).is_some() && tag.len() <= out.len() {
                out[..tag.len()].copy_from_slice(&tag);
            }
            std::fs::write(path, &out).map_err(|e| Error::io(path, e))?;
        }
    }
    Ok(())
}
