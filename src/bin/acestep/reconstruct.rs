//! `acestep reconstruct`.

use std::path::PathBuf;
use std::time::Instant;

use crate::model::ModelArgs;

/// Options of `acestep reconstruct`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Input audio (wav, flac, mp3, ogg; any rate, mono or stereo).
    input: PathBuf,
    /// Output file; the format follows the extension (wav = 32-bit float, flac, mp3).
    #[arg(short, long)]
    output: PathBuf,
    /// Output sample rate (the model works at 44100).
    #[arg(long, default_value_t = 44100)]
    sample_rate: u32,
    #[command(flatten)]
    model: ModelArgs,
}

/// Encodes the input with the DCAE, decodes it back and writes it.
pub fn run(a: Args) -> acestep::Result<()> {
    let format = acestep::audio::Format::from_path(&a.output)?;
    let clip = acestep::audio::read(&a.input)?;
    let m = a.model.resolve()?;
    let t0 = Instant::now();
    let dcae = acestep::dcae::MusicDcae::load(&m.checkpoint, &m.options.device, m.dtype())?;
    let load_s = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let (latents, lengths) = dcae.encode_audio(std::slice::from_ref(&clip))?;
    let encode_s = t1.elapsed().as_secs_f64();
    let t2 = Instant::now();
    let mut audio = dcae
        .decode_audio(&latents, a.sample_rate)?
        .into_iter()
        .next()
        .ok_or_else(|| acestep::Error::Internal {
            message: "the decoder returned no audio for the latents".into(),
        })?;
    let decode_s = t2.elapsed().as_secs_f64();
    // The latents cover whole 4096-sample blocks; cut the padding off again.
    let keep = (clip.duration() * audio.sample_rate as f64).round() as usize;
    audio.channels.iter_mut().for_each(|c| c.truncate(keep));
    let path = acestep::audio::write(&a.output, &audio, Some(format))?;
    println!(
        "{}",
        serde_json::json!({
            "input": a.input,
            "input_seconds": clip.duration(),
            "latent_shape": latents.dims(),
            "latent_frames": lengths.first(),
            "output": path,
            "output_seconds": audio.duration(),
            "sample_rate": audio.sample_rate,
            "load_seconds": load_s,
            "encode_seconds": encode_s,
            "decode_seconds": decode_s,
        })
    );
    Ok(())
}
