//! Audio I/O and resampling: round trips through every written format, the ogg reader, the
//! resampler's quality, and clear errors for bad files.

use std::f64::consts::PI;
use std::path::PathBuf;

use acestep::audio::{self, Audio, Format};
use acestep::Error;

fn sine(freq: f64, amp: f64, rate: u32, seconds: f64) -> Vec<f32> {
    let n = (rate as f64 * seconds) as usize;
    (0..n)
        .map(|i| (amp * (2.0 * PI * freq * i as f64 / rate as f64).sin()) as f32)
        .collect()
}

fn stereo_test_signal(rate: u32) -> Audio {
    Audio {
        channels: vec![sine(1000.0, 0.5, rate, 0.5), sine(330.0, 0.25, rate, 0.5)],
        sample_rate: rate,
    }
}

/// `10 log10(sum x^2 / sum (x - y)^2)`: the SNR of `y` against the clean `x`, in dB.
fn snr_db(x: &[f32], y: &[f32]) -> f64 {
    let signal: f64 = x.iter().map(|&v| (v as f64).powi(2)).sum();
    let noise: f64 = x
        .iter()
        .zip(y)
        .map(|(&u, &v)| ((u - v) as f64).powi(2))
        .sum();
    10.0 * (signal / noise).log10()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn rms(a: &[f32]) -> f64 {
    (a.iter().map(|&x| (x as f64).powi(2)).sum::<f64>() / a.len() as f64).sqrt()
}

#[test]
fn wav_float_round_trip_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    let a = stereo_test_signal(44100);
    let p = audio::write(dir.path().join("x.wav"), &a, None).unwrap();
    let b = audio::read(&p).unwrap();
    assert_eq!(b, a);
    // No partial file is left behind.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("x.wav")]);
}

#[test]
fn wav16_and_flac_round_trips_are_within_quantisation() {
    let dir = tempfile::tempdir().unwrap();
    let a = stereo_test_signal(48000);
    for (name, fmt, step) in [
        ("x.wav", Some(Format::Wav16), 1.0 / 32767.0),
        ("x.flac", None, 1.0 / 8_388_607.0),
    ] {
        let p = audio::write(dir.path().join(name), &a, fmt).unwrap();
        let b = audio::read(&p).unwrap();
        assert_eq!(b.sample_rate, 48000, "{name}");
        assert_eq!(b.channels.len(), 2, "{name}");
        assert_eq!(b.len(), a.len(), "{name}");
        for (x, y) in a.channels.iter().zip(&b.channels) {
            let d = max_abs_diff(x, y);
            println!("{name}: max |diff| {d:.3e} (one step {step:.3e})");
            assert!(d <= step as f32, "{name}: {d}");
        }
    }
}

#[test]
fn mp3_round_trip_keeps_the_signal() {
    let dir = tempfile::tempdir().unwrap();
    let a = stereo_test_signal(44100);
    let p = audio::write(dir.path().join("x.mp3"), &a, None).unwrap();
    let b = audio::read(&p).unwrap();
    assert_eq!(b.sample_rate, 44100);
    assert_eq!(b.channels.len(), 2);
    // The LAME info frame carries encoder delay and padding, so the reader trims them.
    assert_eq!(b.len(), a.len());
    for (x, y) in a.channels.iter().zip(&b.channels) {
        let snr = snr_db(x, y);
        println!("mp3 320 kbit/s round trip: SNR {snr:.1} dB");
        assert!(snr >= 40.0, "SNR {snr:.1} dB");
    }
}

#[test]
fn reads_ogg_vorbis_and_duplicates_mono() {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/audio/tone440_mono_22050.ogg");
    let a = audio::read(&p).unwrap();
    assert_eq!(a.sample_rate, 22050);
    assert_eq!(a.channels.len(), 1);
    assert!((a.len() as i64 - 11025).abs() <= 1024, "{}", a.len());
    let r = rms(&a.channels[0]);
    assert!((r - 0.5 / 2f64.sqrt()).abs() < 0.02, "rms {r}");
    let s = a.to_stereo();
    assert_eq!(s.channels.len(), 2);
    assert_eq!(s.channels[0], s.channels[1]);
}

#[test]
fn resampling_a_sine_44k1_48k_44k1_keeps_80_db_snr() {
    let a = Audio {
        channels: vec![sine(1000.0, 0.5, 44100, 1.0)],
        sample_rate: 44100,
    };
    let up = a.resample(48000).unwrap();
    assert_eq!(up.sample_rate, 48000);
    assert_eq!(up.len(), 48000);
    let back = up.resample(44100).unwrap();
    assert_eq!(back.len(), 44100);
    // The signal starts and stops abruptly; judge the middle, away from those edges.
    let edge = 2048;
    let (x, y) = (
        &a.channels[0][edge..44100 - edge],
        &back.channels[0][edge..44100 - edge],
    );
    let snr = snr_db(x, y);
    println!("1 kHz sine 44.1 -> 48 -> 44.1 kHz: SNR {snr:.1} dB");
    assert!(snr >= 80.0, "SNR {snr:.1} dB");
    // 48 kHz -> 44.1 kHz of a 48 kHz sine is also clean against the analytic 44.1 kHz sine.
    let direct = Audio {
        channels: vec![sine(1000.0, 0.5, 48000, 1.0)],
        sample_rate: 48000,
    }
    .resample(44100)
    .unwrap();
    let want = sine(1000.0, 0.5, 44100, 1.0);
    let snr = snr_db(
        &want[edge..44100 - edge],
        &direct.channels[0][edge..44100 - edge],
    );
    println!("1 kHz sine 48 -> 44.1 kHz vs analytic: SNR {snr:.1} dB");
    assert!(snr >= 80.0, "SNR {snr:.1} dB");
}

#[test]
fn corrupt_and_missing_files_are_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("broken.mp3");
    std::fs::write(
        &bad,
        b"this is not audio at all, just some bytes ............",
    )
    .unwrap();
    let e = audio::read(&bad).unwrap_err();
    assert!(matches!(e, Error::Audio { .. }), "{e:?}");
    assert!(e.to_string().contains("broken.mp3"), "{e}");

    // A wav header followed by garbage.
    let a = stereo_test_signal(44100);
    let good = audio::write(dir.path().join("cut.wav"), &a, None).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    std::fs::write(&good, &bytes[..20]).unwrap();
    let e = audio::read(&good).unwrap_err();
    assert!(e.to_string().contains("cut.wav"), "{e}");

    let e = audio::read(dir.path().join("absent.flac")).unwrap_err();
    assert!(e.to_string().contains("absent.flac"), "{e}");
}

#[test]
fn unknown_output_extension_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let a = stereo_test_signal(44100);
    let e = audio::write(dir.path().join("x.aiff"), &a, None).unwrap_err();
    assert!(e.to_string().contains("x.aiff"), "{e}");
    let e = Format::from_name("opus").unwrap_err();
    assert!(e.to_string().contains("opus"), "{e}");
    let ragged = Audio {
        channels: vec![vec![0.0; 10], vec![0.0; 9]],
        sample_rate: 44100,
    };
    let e = audio::write(dir.path().join("r.wav"), &ragged, None).unwrap_err();
    assert!(e.to_string().contains("r.wav"), "{e}");
    assert!(!dir.path().join("r.wav").exists());
}
