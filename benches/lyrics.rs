//! The lyric frontend on the committed corpus (`tests/fixtures/lyrics/reference.json`, 403
//! lines in 17 languages, read as one song): per-line language detection alone, and the whole
//! `tokenize_lyrics` (detection, cleaning, numbers, pinyin, romaji, BPE).
//!
//! Needs the lyric vocab (`$ACESTEP_LYRIC_VOCAB` or `../shared/reference/vocab.json`) and the
//! UniDic dictionary of unidic-lite (`$ACESTEP_JA_DICT`). Compare with
//! `ACESTEP_REFERENCE=/path/to/ACE-Step python tools/bench_reference.py lyrics`:
//! `cargo bench --bench lyrics`.

// `criterion_group!` defines an undocumented function.
#![allow(missing_docs)]

use std::path::PathBuf;

use acestep::lyrics::{lang_segment, LyricTokenizer};
use criterion::{criterion_group, criterion_main, Criterion};

fn corpus() -> String {
    let text = include_str!("../tests/fixtures/lyrics/reference.json");
    let r: serde_json::Value = serde_json::from_str(text).expect("reference.json");
    let lines: Vec<&str> = r["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .map(|l| l["line"].as_str().expect("line"))
        .collect();
    lines.join("\n")
}

fn bench_lyrics(c: &mut Criterion) {
    let song = corpus();
    let vocab = std::env::var_os("ACESTEP_LYRIC_VOCAB")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/reference/vocab.json")
        });
    let tok = LyricTokenizer::from_file(&vocab).expect("lyric vocab");
    // Load the identifier, the pinyin tables and the dictionary before timing.
    tok.tokenize_lyrics(&song, &mut lang_segment::detect_language)
        .expect("tokenize (is ACESTEP_JA_DICT set?)");
    let mut group = c.benchmark_group("lyrics_corpus_403_lines");
    group.sample_size(10);
    group.bench_function("detect_language", |b| {
        b.iter(|| {
            song.split('\n')
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(lang_segment::detect_language)
                .collect::<Vec<_>>()
        })
    });
    group.bench_function("tokenize_lyrics", |b| {
        b.iter(|| {
            tok.tokenize_lyrics(&song, &mut lang_segment::detect_language)
                .expect("tokenize")
        })
    });
    group.finish();
}

criterion_group!(benches, bench_lyrics);
criterion_main!(benches);
