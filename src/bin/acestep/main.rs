//! The `acestep` command line: one module per command, and [`model`] for the options every
//! command that loads the model shares.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod encode_text;
mod generate;
#[cfg(feature = "server")]
mod jobs_args;
mod model;
mod quantize;
mod reconstruct;
#[cfg(feature = "server")]
mod serve;
mod tokenize_lyrics;
#[cfg(feature = "server")]
mod worker;

/// ACE-Step v1 3.5B music generation, in pure Rust.
#[derive(Parser, Debug)]
#[command(name = "acestep", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once per run: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
enum Command {
    /// Encode a prompt with the UMT5 text encoder and print the shape and a checksum.
    EncodeText(encode_text::Args),
    /// Generate music from a prompt (text2music) and write it with a `.json` sidecar of every
    /// parameter and the seeds used.
    Generate(generate::Args),
    /// Encode an audio file to latents with the music DCAE and decode it back (the autoencoder's
    /// round trip; long files decode in overlapping windows).
    Reconstruct(reconstruct::Args),
    /// Tokenize lyrics as the model reads them and print, as JSON, each line's language and token
    /// ids and the full id sequence.
    TokenizeLyrics(tokenize_lyrics::Args),
    /// Serve the three async-task API dialects over HTTP (job queue, persistence, downloads).
    #[cfg(feature = "server")]
    Serve(serve::Args),
    /// Run the jobs of a shared PostgreSQL job store (a cluster: API front ends started with
    /// `serve --workers 0`, any number of workers); stops gracefully on Ctrl-C / SIGTERM.
    #[cfg(feature = "server")]
    Worker(worker::Args),
    /// Write a quantized copy of a checkpoint (the DiT's and the text encoder's weights as GGUF
    /// in the same folder layout; `--checkpoint-dir OUT` then loads it).
    Quantize(quantize::Args),
}

/// A text argument that is a file, or `-` for standard input.
fn read_text_arg(src: &str) -> acestep::Result<String> {
    if src == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
            .map_err(|e| acestep::Error::io("<stdin>", e))?;
        Ok(s)
    } else {
        std::fs::read_to_string(src).map_err(|e| acestep::Error::io(PathBuf::from(src), e))
    }
}

fn main() -> ExitCode {
    acestep::device::tune_cpu_allocator();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        // Colours only on a terminal (not in log files).
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        // Each stage's time when it ends (`RUST_LOG=acestep=debug`: load, lyrics, encode_audio,
        // encode_prompt, diffusion, decode).
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .init();
    let result = match Cli::parse().command {
        Command::EncodeText(a) => encode_text::run(a).map_err(|e| e.to_string()),
        Command::Generate(a) => generate::run(a).map_err(|e| e.to_string()),
        Command::Reconstruct(a) => reconstruct::run(a).map_err(|e| e.to_string()),
        Command::TokenizeLyrics(a) => tokenize_lyrics::run(a).map_err(|e| e.to_string()),
        #[cfg(feature = "server")]
        Command::Serve(a) => serve::run(a).map_err(|e| e.to_string()),
        #[cfg(feature = "server")]
        Command::Worker(a) => worker::run(a).map_err(|e| e.to_string()),
        Command::Quantize(a) => quantize::run(a).map_err(|e| e.to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
