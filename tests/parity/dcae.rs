//! Parity of the music DCAE (diffusers `AutoencoderDC`), the log-mel transform, the ADaMoSHiFiGAN
//! vocoder and the reference `MusicDCAE` (decode, decode_overlap, encode) on the tiny random
//! checkpoint written by `tools/make_fixtures.py`.
//!
//! Tolerances (max|ours - ref| / max|ref|): 1e-4 in f32, and 1e-5 for the mel transform (which
//! computes on the host in f64 on every target); drift bounds in bf16 / f16 (`DRIFT`).

use std::collections::HashMap;
use std::sync::OnceLock;

use acestep::dcae::MusicDcae;
use acestep::testing::{assert_close, test_target, Drift};
use acestep::Checkpoint;
use candle_core::{Device, Tensor};

use crate::fixtures;

const F32_TOL: f64 = 1e-4;
const MEL_TOL: f64 = 1e-5;
const DRIFT: Drift = Drift {
    bf16: 8e-2,
    f16: 1e-2,
};

fn tol() -> f64 {
    test_target().tol(F32_TOL, DRIFT)
}

fn model() -> &'static MusicDcae {
    static M: OnceLock<MusicDcae> = OnceLock::new();
    M.get_or_init(|| {
        let target = test_target();
        let ckpt = Checkpoint::from_dir(fixtures().join("tiny")).expect("tiny checkpoint");
        MusicDcae::load(&ckpt, &target.device, target.dtype).expect("load tiny DCAE + vocoder")
    })
}

/// The fixture as recorded (host, f32): the reference's outputs.
fn io() -> &'static HashMap<String, Tensor> {
    static IO: OnceLock<HashMap<String, Tensor>> = OnceLock::new();
    IO.get_or_init(|| {
        candle_core::safetensors::load(fixtures().join("dcae_parity.safetensors"), &Device::Cpu)
            .expect("fixture")
    })
}

/// The fixture's tensor `key` on the test target (an input).
fn input(key: &str) -> Tensor {
    test_target()
        .put(&io()[key])
        .expect("fixture tensor on the test target")
}

#[test]
fn dcae_decoder_matches_diffusers() {
    let (m, r) = (model(), io());
    let out = m.dcae.decoder.forward(&input("dec_in")).unwrap();
    assert_close("AutoencoderDC decoder", &out, &r["dec_out"], tol());
    // The local blocks run a few columns at a time (3: uneven last slice, halos at both ends),
    // as they do past 1024 columns: the same result. (Whole off the CPU or outside f32.)
    let out = m
        .dcae
        .decoder
        .forward_in_columns(&input("dec_in"), 3)
        .unwrap();
    assert_close(
        "AutoencoderDC decoder, 3 columns at a time",
        &out,
        &r["dec_out"],
        tol(),
    );
    // Latent so small that the EfficientViT stage takes the quadratic-attention branch.
    let out = m.dcae.decoder.forward(&input("dec_quad_in")).unwrap();
    assert_close(
        "AutoencoderDC decoder (quadratic attention)",
        &out,
        &r["dec_quad_out"],
        tol(),
    );
}

#[test]
fn dcae_encoder_matches_diffusers() {
    let (m, r) = (model(), io());
    let out = m.dcae.encoder.forward(&input("enc_in")).unwrap();
    assert_close("AutoencoderDC encoder", &out, &r["enc_out"], tol());
    let out = m
        .dcae
        .encoder
        .forward_in_columns(&input("enc_in"), 3)
        .unwrap();
    assert_close(
        "AutoencoderDC encoder, 3 columns at a time",
        &out,
        &r["enc_out"],
        tol(),
    );
}

#[test]
fn vocoder_matches_reference() {
    let (m, r) = (model(), io());
    let out = m.vocoder.decode(&input("voc_in")).unwrap();
    assert_eq!(out.dims(), &[2, 1, 9 * 512]);
    assert_close("ADaMoSHiFiGAN vocoder", &out, &r["voc_out"], tol());
}

#[test]
fn log_mel_matches_reference() {
    let (m, r) = (model(), io());
    // The transform reads its input as f32 and computes on the host in f64 on every target.
    let mel_in = r["mel_in"].to_device(&test_target().device).unwrap();
    let out = m.mel.forward(&mel_in).unwrap();
    assert_close("log-mel transform", &out, &r["mel_out"], MEL_TOL);
}

#[test]
fn music_dcae_decode_matches_reference() {
    let (m, r) = (model(), io());
    let wavs = m.decode(&input("decode_latents")).unwrap();
    assert_eq!(wavs.len(), 2);
    assert_eq!(wavs[0].dims(), &[2, 12 * 8 * 512]);
    assert_close(
        "MusicDCAE.decode item 0",
        &wavs[0],
        &r["decode_wav0"],
        tol(),
    );
    assert_close(
        "MusicDCAE.decode item 1",
        &wavs[1],
        &r["decode_wav1"],
        tol(),
    );
}

/// Every 31st sample of `[2, n]` (the fixture keeps the 3.3M-sample output small; the stride
/// still lands inside every crossfade).
fn every_31st(wav: &Tensor) -> Tensor {
    let n = wav.dim(1).unwrap();
    let idx: Vec<u32> = (0..n as u32).step_by(31).collect();
    let idx = Tensor::new(idx.as_slice(), wav.device()).unwrap();
    wav.index_select(&idx, 1).unwrap()
}

#[test]
fn music_dcae_decode_overlap_matches_reference() {
    let (m, r) = (model(), io());
    let wavs = m.decode_overlap(&input("overlap_latents")).unwrap();
    let len: Vec<i64> = r["overlap_len"].to_vec1().unwrap();
    assert_eq!(wavs[0].dim(1).unwrap(), len[0] as usize);
    let sub = every_31st(&wavs[0]);
    assert_close(
        "MusicDCAE.decode_overlap (3 DCAE windows, 13 vocoder windows)",
        &sub,
        &r["overlap_wav_sub31"],
        tol(),
    );
}

#[test]
fn music_dcae_encode_matches_reference() {
    let (m, r) = (model(), io());
    let lens: Vec<i64> = r["enc_lengths"].to_vec1().unwrap();
    let lens: Vec<usize> = lens.iter().map(|&l| l as usize).collect();
    let (lat, lat_len) = m.encode(&input("enc_audio"), Some(&lens)).unwrap();
    assert_close("MusicDCAE.encode", &lat, &r["encode_latents"], tol());
    let want: Vec<i64> = r["encode_latent_lengths"].to_vec1().unwrap();
    assert_eq!(
        lat_len,
        want.iter().map(|&l| l as usize).collect::<Vec<_>>()
    );
}

#[test]
fn encode_rejects_mono() {
    let t = test_target();
    let mono = Tensor::zeros((1, 1, 8192), t.dtype, &t.device).unwrap();
    let e = model().encode(&mono, None).unwrap_err().to_string();
    assert!(e.contains("channels") && e.contains('1'), "{e}");
}

#[test]
fn decode_audio_resamples_and_encode_audio_accepts_any_clip() {
    let (m, r) = (model(), io());
    let lat = input("decode_latents").narrow(0, 0, 1).unwrap();
    // 44.1 kHz output is exactly `decode`; 48 kHz output has the resampled length.
    let a = m.decode_audio(&lat, 44100).unwrap();
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].sample_rate, 44100);
    let want = if test_target().is_cpu_f32() {
        r["decode_wav0"].clone()
    } else {
        m.decode(&lat).unwrap()[0].clone()
    };
    let want = acestep::audio::Audio::from_tensor(&want, 44100).unwrap();
    assert_eq!(a[0].channels.len(), 2);
    let d = a[0].channels[0]
        .iter()
        .zip(&want.channels[0])
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    assert!(d < 1e-5, "{d}");
    let b = m.decode_audio(&lat, 48000).unwrap();
    assert_eq!(b[0].sample_rate, 48000);
    assert_eq!(b[0].len(), (12 * 4096) * 48000 / 44100 + 1);

    // A mono 22.05 kHz clip and a stereo 44.1 kHz one encode together; the 44.1 kHz clip's
    // latent equals `encode` on it alone.
    let stereo =
        acestep::audio::Audio::from_tensor(&r["enc_audio"].get(0).unwrap(), 44100).unwrap();
    let mono = acestep::audio::Audio {
        channels: vec![stereo.channels[0].iter().step_by(2).copied().collect()],
        sample_rate: 22050,
    };
    let (lat, lens) = m.encode_audio(&[stereo.clone(), mono]).unwrap();
    assert_eq!(lat.dims(), &[2, 8, 16, 6]);
    assert_eq!(lens, vec![5, 5]);
    let (alone, _) = m.encode_audio(&[stereo]).unwrap();
    assert_close(
        "encode_audio (44.1 kHz clip in a batch)",
        &lat.get(0).unwrap(),
        &alone.get(0).unwrap(),
        test_target().tol(1e-5, DRIFT),
    );
    assert!(m.encode_audio(&[]).is_err());
}

#[test]
fn long_latents_decode_in_overlapping_windows() {
    // The reference pipeline's threshold: more than 48 s of audio.
    assert!(MusicDcae::latent_seconds(516) <= acestep::dcae::OVERLAP_THRESHOLD_SECONDS);
    assert!(MusicDcae::latent_seconds(517) > acestep::dcae::OVERLAP_THRESHOLD_SECONDS);
    let (m, r) = (model(), io());
    let auto = m.decode_auto(&input("overlap_latents")).unwrap();
    let len: Vec<i64> = r["overlap_len"].to_vec1().unwrap();
    assert_eq!(auto[0].dim(1).unwrap(), len[0] as usize);
    let sub = every_31st(&auto[0]);
    assert_close(
        "decode_auto on 800 latent frames (= decode_overlap)",
        &sub,
        &r["overlap_wav_sub31"],
        tol(),
    );
}
