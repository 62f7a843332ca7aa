//! Generate a song with the engine alone (no server, no CLI):
//!
//! ```sh
//! cargo run --release --example generate -- /path/to/ACE-Step-v1-3.5B "lofi hip hop, mellow piano" song.wav
//! ```
//!
//! Without a checkpoint folder (`-` as the first argument) the checkpoint is downloaded from the
//! Hugging Face Hub. The crate's tiny test checkpoint (`tests/fixtures/tiny`) runs it in seconds
//! (its sound is noise: its weights are random).

use acestep::{audio, Checkpoint, Control, GenerationParams, Pipeline, PipelineOptions, Progress};

fn main() -> acestep::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(dir), Some(prompt), Some(out)) = (args.next(), args.next(), args.next()) else {
        eprintln!("usage: generate CHECKPOINT_DIR|- PROMPT OUT.wav");
        std::process::exit(2);
    };
    let checkpoint = match dir.as_str() {
        "-" => Checkpoint::download(acestep::DEFAULT_REPO_ID)?,
        d => Checkpoint::from_dir(d)?,
    };
    // The GPU when one is compiled in and present, else the CPU; its default dtype.
    let options = PipelineOptions {
        device: acestep::device::default_device(),
        ..Default::default()
    };
    let pipe = Pipeline::load(&checkpoint, &options)?;
    let params = GenerationParams {
        prompt,
        audio_duration: 10.0,
        infer_step: 27,
        manual_seeds: vec![42],
        ..Default::default()
    };
    // `pipe.generate(&params)` without progress; here with a progress line.
    let songs = pipe.generate_with_progress(&params, &mut |p| {
        if let Progress::Step(s) = p {
            eprint!("\rstep {}/{}", s.step, s.total);
        }
        Control::Continue
    })?;
    eprintln!();
    let path = audio::write(&out, &songs[0].audio, None)?;
    println!("wrote {} (seed {})", path.display(), songs[0].seed);
    Ok(())
}
