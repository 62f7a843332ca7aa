//! Parity of the music DCAE (diffusers `AutoencoderDC`), the log-mel transform, the ADaMoSHiFiGAN
//! vocoder and the reference `MusicDCAE` (decode, decode_overlap, encode) on the tiny random
//! checkpoint written by `tools/make_fixtures.py`.
//!
//! Tolerances (max|ours - ref| / max|ref|, f32): 1e-4, and 1e-5 for the mel transform.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use acestep::dcae::MusicDcae;
use acestep::testing::assert_close;
use acestep::Checkpoint;
use candle_core::{DType, Device, Tensor};

const TOL: f64 = 1e-4;
const MEL_TOL: f64 = 1e-5;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn model() -> &'static MusicDcae {
    static M: OnceLock<MusicDcae> = OnceLock::new();
    M.get_or_init(|| {
        let ckpt = Checkpoint::from_dir(fixtures().join("tiny")).expect("tiny checkpoint");
        MusicDcae::load(&ckpt, &Device::Cpu, DType::F32).expect("load tiny DCAE + vocoder")
    })
}

fn io() -> &'static HashMap<String, Tensor> {
    static IO: OnceLock<HashMap<String, Tensor>> = OnceLock::new();
    IO.get_or_init(|| {
        candle_core::safetensors::load(fixtures().join("dcae_parity.safetensors"), &Device::Cpu)
            .expect("fixture")
    })
}

#[test]
fn dcae_decoder_matches_diffusers() {
    let (m, r) = (model(), io());
    let out = m.dcae.decoder.forward(&r["dec_in"]).unwrap();
    assert_close("AutoencoderDC decoder", &out, &r["dec_out"], TOL);
    // Latent so small that the EfficientViT stage takes the quadratic-attention branch.
    let out = m.dcae.decoder.forward(&r["dec_quad_in"]).unwrap();
    assert_close(
        "AutoencoderDC decoder (quadratic attention)",
        &out,
        &r["dec_quad_out"],
        TOL,
    );
}

#[test]
fn dcae_encoder_matches_diffusers() {
    let (m, r) = (model(), io());
    let out = m.dcae.encoder.forward(&r["enc_in"]).unwrap();
    assert_close("AutoencoderDC encoder", &out, &r["enc_out"], TOL);
}

#[test]
fn vocoder_matches_reference() {
    let (m, r) = (model(), io());
    let out = m.vocoder.decode(&r["voc_in"]).unwrap();
    assert_eq!(out.dims(), &[2, 1, 9 * 512]);
    assert_close("ADaMoSHiFiGAN vocoder", &out, &r["voc_out"], TOL);
}

#[test]
fn log_mel_matches_reference() {
    let (m, r) = (model(), io());
    let out = m.mel.forward(&r["mel_in"]).unwrap();
    assert_close("log-mel transform", &out, &r["mel_out"], MEL_TOL);
}

#[test]
fn music_dcae_decode_matches_reference() {
    let (m, r) = (model(), io());
    let wavs = m.decode(&r["decode_latents"]).unwrap();
    assert_eq!(wavs.len(), 2);
    assert_eq!(wavs[0].dims(), &[2, 12 * 8 * 512]);
    assert_close("MusicDCAE.decode item 0", &wavs[0], &r["decode_wav0"], TOL);
    assert_close("MusicDCAE.decode item 1", &wavs[1], &r["decode_wav1"], TOL);
}

/// Every 31st sample of `[2, n]` (the fixture keeps the 3.3M-sample output small; the stride
/// still lands inside every crossfade).
fn every_31st(wav: &Tensor) -> Tensor {
    let n = wav.dim(1).unwrap();
    let idx: Vec<u32> = (0..n as u32).step_by(31).collect();
    let idx = Tensor::new(idx.as_slice(), &Device::Cpu).unwrap();
    wav.index_select(&idx, 1).unwrap()
}

#[test]
fn music_dcae_decode_overlap_matches_reference() {
    let (m, r) = (model(), io());
    let wavs = m.decode_overlap(&r["overlap_latents"]).unwrap();
    let len: Vec<i64> = r["overlap_len"].to_vec1().unwrap();
    assert_eq!(wavs[0].dim(1).unwrap(), len[0] as usize);
    let sub = every_31st(&wavs[0]);
    assert_close(
        "MusicDCAE.decode_overlap (3 DCAE windows, 13 vocoder windows)",
        &sub,
        &r["overlap_wav_sub31"],
        TOL,
    );
}

#[test]
fn music_dcae_encode_matches_reference() {
    let (m, r) = (model(), io());
    let lens: Vec<i64> = r["enc_lengths"].to_vec1().unwrap();
    let lens: Vec<usize> = lens.iter().map(|&l| l as usize).collect();
    let (lat, lat_len) = m.encode(&r["enc_audio"], Some(&lens)).unwrap();
    assert_close("MusicDCAE.encode", &lat, &r["encode_latents"], TOL);
    let want: Vec<i64> = r["encode_latent_lengths"].to_vec1().unwrap();
    assert_eq!(
        lat_len,
        want.iter().map(|&l| l as usize).collect::<Vec<_>>()
    );
}

#[test]
fn encode_rejects_mono() {
    let mono = Tensor::zeros((1, 1, 8192), DType::F32, &Device::Cpu).unwrap();
    let e = model().encode(&mono, None).unwrap_err().to_string();
    assert!(e.contains("channels") && e.contains('1'), "{e}");
}

#[test]
fn decode_audio_resamples_and_encode_audio_accepts_any_clip() {
    let (m, r) = (model(), io());
    let lat = r["decode_latents"].narrow(0, 0, 1).unwrap();
    // 44.1 kHz output is exactly `decode`; 48 kHz output has the resampled length.
    let a = m.decode_audio(&lat, 44100).unwrap();
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].sample_rate, 44100);
    let want = acestep::audio::Audio::from_tensor(&r["decode_wav0"], 44100).unwrap();
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
        1e-5,
    );
    assert!(m.encode_audio(&[]).is_err());
}

#[test]
fn long_latents_decode_in_overlapping_windows() {
    // The reference pipeline's threshold: more than 48 s of audio.
    assert!(MusicDcae::latent_seconds(516) <= acestep::dcae::OVERLAP_THRESHOLD_SECONDS);
    assert!(MusicDcae::latent_seconds(517) > acestep::dcae::OVERLAP_THRESHOLD_SECONDS);
    let (m, r) = (model(), io());
    let auto = m.decode_auto(&r["overlap_latents"]).unwrap();
    let len: Vec<i64> = r["overlap_len"].to_vec1().unwrap();
    assert_eq!(auto[0].dim(1).unwrap(), len[0] as usize);
    let sub = every_31st(&auto[0]);
    assert_close(
        "decode_auto on 800 latent frames (= decode_overlap)",
        &sub,
        &r["overlap_wav_sub31"],
        TOL,
    );
}
