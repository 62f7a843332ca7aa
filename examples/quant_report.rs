//! The cost of each quantization format on a full-size checkpoint (e.g. the random one of
//! `examples/random_checkpoint.rs`): for the UMT5 encoder and the DiT, the memory the loaded
//! weights take (resident memory after loading), the relative error of one pass against f32
//! (UMT5 encode of a prompt; DiT encode + one decode at T = 107 and, with `--long`, T = 646) and
//! the time of that pass (the second of two runs).
//!
//! ```sh
//! RAYON_NUM_THREADS=2 cargo run --release --example quant_report -- /data/acestep-random [--long] [--formats q8_0,q4k]
//! ```

use std::path::PathBuf;
use std::time::Instant;

use acestep::dit::AceStepTransformer2DModel;
use acestep::quant::{quantizing, Quantization};
use acestep::TextEncoder;
use candle_core::{DType, Device, Tensor};

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<f64>().ok())
        })
        .unwrap_or(0.0)
        / 1024.0
}

/// Relative L2 error of `a` against `b`.
fn rel(a: &Tensor, b: &Tensor) -> f64 {
    let a: Vec<f32> = a
        .flatten_all()
        .and_then(|t| t.to_vec1())
        .unwrap_or_default();
    let b: Vec<f32> = b
        .flatten_all()
        .and_then(|t| t.to_vec1())
        .unwrap_or_default();
    let (mut n, mut d) = (0f64, 0f64);
    for (x, y) in a.iter().zip(&b) {
        n += ((*x - *y) as f64).powi(2);
        d += (*y as f64).powi(2);
    }
    (n / d.max(1e-30)).sqrt()
}

/// Seconds of the second of two runs of `f`, and its result.
fn timed<T>(mut f: impl FnMut() -> T) -> (f64, T) {
    let _ = f();
    let t0 = Instant::now();
    let out = f();
    (t0.elapsed().as_secs_f64(), out)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    acestep::device::tune_cpu_allocator();
    let args: Vec<String> = std::env::args().collect();
    let root = PathBuf::from(
        args.get(1)
            .ok_or("usage: quant_report CKPT_DIR [--long] [--formats q8_0,q4k]")?,
    );
    let long = args.iter().any(|a| a == "--long");
    let formats: Vec<Option<Quantization>> = match args.iter().position(|a| a == "--formats") {
        Some(i) => std::iter::once(Ok(None))
            .chain(
                args.get(i + 1)
                    .ok_or("--formats needs a list")?
                    .split(',')
                    .map(|f| f.parse().map(Some)),
            )
            .collect::<Result<_, _>>()?,
        None => std::iter::once(None)
            .chain(Quantization::ALL.into_iter().map(Some))
            .collect(),
    };
    let dev = Device::Cpu;
    let name = |q: Option<Quantization>| q.map(|q| q.name()).unwrap_or("f32");

    // UMT5.
    let prompt = "synth pop, upbeat, 120 bpm, female vocals, catchy chorus, bright pads, punchy \
                  drums, analog bass, warm, energetic, summer, dance, radio edit";
    let mut reference: Option<Tensor> = None;
    println!("| UMT5 | weights MiB | encode s | relative error |\n| --- | --- | --- | --- |");
    for &q in &formats {
        let before = rss_mib();
        let load = || TextEncoder::load_dir(&root.join("umt5-base"), &dev, DType::F32);
        let enc = match q {
            Some(q) => quantizing(q, load)?,
            None => load()?,
        };
        let mib = rss_mib() - before;
        let (secs, out) = timed(|| enc.encode(&[prompt]));
        let h = out?.hidden_states;
        let err = reference.as_ref().map(|r| rel(&h, r)).unwrap_or(0.0);
        if reference.is_none() {
            reference = Some(h);
        }
        println!("| {} | {mib:.0} | {secs:.3} | {err:.2e} |", name(q));
    }

    // DiT: encode + decode.
    let text = Tensor::randn(0f32, 1.0, (1, 64, 768), &dev)?;
    let text_mask = Tensor::ones((1, 64), DType::F32, &dev)?;
    let speaker = Tensor::zeros((1, 512), DType::F32, &dev)?;
    let ids: Vec<u32> = (0..256u32).map(|i| i * 7 % 6000).collect();
    let lyrics = Tensor::from_vec(ids, (1, 256), &dev)?;
    let lyric_mask = Tensor::ones((1, 256), DType::F32, &dev)?;
    let timestep = Tensor::new(&[500f32], &dev)?;
    let lengths: Vec<usize> = if long { vec![107, 646] } else { vec![107] };
    let latents: Vec<Tensor> = lengths
        .iter()
        .map(|&t| Tensor::randn(0f32, 1.0, (1, 8, 16, t), &dev))
        .collect::<Result<_, _>>()?;
    let mut reference: Vec<Tensor> = Vec::new();
    print!("\n| DiT | weights MiB |");
    for t in &lengths {
        print!(" encode + decode T={t} s | relative error |");
    }
    println!("\n| --- | --- |{}", " --- | --- |".repeat(lengths.len()));
    for &q in &formats {
        let before = rss_mib();
        let load = || {
            AceStepTransformer2DModel::load_dir(
                &root.join("ace_step_transformer"),
                &dev,
                DType::F32,
            )
        };
        let m = match q {
            Some(q) => quantizing(q, load)?,
            None => load()?,
        };
        let mib = rss_mib() - before;
        print!("| {} | {mib:.0} |", name(q));
        for (i, (&t, lat)) in lengths.iter().zip(&latents).enumerate() {
            let mask = Tensor::ones((1, t), DType::F32, &dev)?;
            let (secs, out) = timed(|| -> candle_core::Result<Tensor> {
                let (enc, enc_mask) =
                    m.encode(&text, &text_mask, &speaker, &lyrics, &lyric_mask, None)?;
                m.decode(lat, &mask, &enc, &enc_mask, &timestep, t, None)
            });
            let out = out?;
            let err = reference.get(i).map(|r| rel(&out, r)).unwrap_or(0.0);
            if reference.len() <= i {
                reference.push(out);
            }
            print!(" {secs:.2} | {err:.2e} |");
        }
        println!();
        drop(m);
    }
    Ok(())
}
