//! The lyric tokenizer against the reference's `tokenize_lyrics` on the committed corpus
//! (`tests/fixtures/lyrics/`), each line's language detected by ours (`lang_segment`).
//!
//! The vocab (`../shared/reference/vocab.json`, not committed) is found through
//! `ACESTEP_LYRIC_VOCAB` or that path; the tests say so and fail when it is absent.
//! Held exact (the test fails otherwise): the framing, structure tags, every line of the 16
//! languages other than ja (number words, abbreviations, symbols, Korean romanisation, Chinese
//! numbers and pypinyin phrase readings included; Czech keeps its digits as the reference does).
//! Printed: per language, exact lines without and with digits. Still to come: Japanese romaji.
//! Language detection is held line by line against the reference's `get_lang` on the corpus
//! and 7 000+ variants, pinyin against pypinyin on 3000 strings.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use acestep::lyrics::{resolve_vocab, Language, LyricTokenizer};

fn tokenizer() -> LyricTokenizer {
    let shared = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/reference/vocab.json");
    let explicit = std::env::var_os("ACESTEP_LYRIC_VOCAB")
        .is_none()
        .then_some(shared);
    let path = resolve_vocab(explicit.as_deref(), None)
        .expect("lyric vocab.json (../shared/reference/vocab.json)");
    LyricTokenizer::from_file(&path)
        .unwrap()
        .with_japanese_dict(&ja_dict())
}

fn reference() -> serde_json::Value {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lyrics/reference.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// The UniDic dictionary of unidic-lite 1.0.8 for Japanese lines: `$ACESTEP_JA_DICT`, else the
/// crate's own fetch (the pinned archive from the Python package index, SHA-256 checked) into
/// `target/unidic-cache`, once.
fn ja_dict() -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        if let Some(d) = std::env::var_os(acestep::lyrics::japanese::DICT_ENV) {
            return PathBuf::from(d);
        }
        let cache = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/unidic-cache");
        let t0 = std::time::Instant::now();
        let dir = acestep::lyrics::japanese::fetch_dictionary(&cache).expect("UniDic fetch");
        println!(
            "UniDic at {} ({:.1} s)",
            dir.display(),
            t0.elapsed().as_secs_f64()
        );
        dir
    })
    .clone()
}

#[test]
fn corpus_lines_match_the_reference_where_implemented() {
    let tok = tokenizer();
    let r = reference();
    let lines = r["lines"].as_array().unwrap();
    assert!(lines.len() >= 400);
    // label -> (exact, lines) without digits, and with digits.
    let mut table: BTreeMap<String, [(usize, usize); 2]> = BTreeMap::new();
    let mut failures = Vec::new();
    for row in lines {
        let line = row["line"].as_str().unwrap();
        let want: Vec<u32> = serde_json::from_value(row["ids"].clone()).unwrap();
        let got = tok
            .tokenize_lyrics(line, &mut acestep::lyrics::lang_segment::detect_language)
            .unwrap();
        let label = row["label"].as_str().unwrap().to_string();
        let digits = usize::from(line.chars().any(|c| c.is_ascii_digit()));
        let e = &mut table.entry(label.clone()).or_default()[digits];
        e.1 += 1;
        if got == want {
            e.0 += 1;
        } else if std::env::var("LYRICS_DEBUG").is_ok() {
            println!("MISMATCH {label}: {line:?}\n  ours {got:?}\n  want {want:?}");
        } else {
            failures.push(format!("{label}: {line:?} ours {got:?} reference {want:?}"));
        }
    }
    println!(
        "{:>6}  {:>16}  {:>16}",
        "label", "no digits exact", "digits exact"
    );
    for (label, [(a, n), (b, m)]) in &table {
        println!("{label:>6}  {a:>10}/{n:<5}  {b:>10}/{m:<5}");
    }
    assert!(
        failures.is_empty(),
        "{} lines differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn a_song_is_framed_like_the_reference() {
    // A song of corpus lines that need no expansion, with empty lines: 261, then each line's
    // reference ids (its own framing stripped), an empty line being a lone 2.
    let tok = tokenizer();
    let r = reference();
    let mut text = Vec::new();
    let mut want = vec![261u32];
    let mut langs = BTreeMap::new();
    for (i, row) in r["lines"].as_array().unwrap().iter().enumerate() {
        let line = row["line"].as_str().unwrap();
        let lang = row["lang"].as_str().unwrap_or("en");
        if line.trim().is_empty() || i % 7 != 0 {
            continue;
        }
        let ids: Vec<u32> = serde_json::from_value(row["ids"].clone()).unwrap();
        text.push(line.to_string());
        want.extend(&ids[1..]);
        langs.insert(
            line.trim().to_string(),
            Language::from_code_or_english(lang),
        );
        if text.len() % 5 == 0 {
            text.push(String::new());
            want.push(2);
        }
    }
    assert!(text.len() > 30);
    let got = tok
        .tokenize_lyrics(&text.join("\n"), &mut |line| langs[line])
        .unwrap();
    assert_eq!(got, want);
    // The same song with each line's language detected.
    let detected = tok
        .tokenize_lyrics(
            &text.join("\n"),
            &mut acestep::lyrics::lang_segment::detect_language,
        )
        .unwrap();
    assert_eq!(detected, want);
}

#[test]
fn the_reference_song_tokenizes_exactly() {
    // The fixture's multi-line song (tags, lines of several languages, an empty line), read
    // end to end with detection.
    let tok = tokenizer();
    let r = reference();
    let text = r["song"]["text"].as_str().unwrap();
    let want: Vec<u32> = serde_json::from_value(r["song"]["ids"].clone()).unwrap();
    let got = tok
        .tokenize_lyrics(text, &mut acestep::lyrics::lang_segment::detect_language)
        .unwrap();
    assert_eq!(got, want, "{text}");
}

#[test]
fn missing_vocab_is_a_clear_error() {
    let e = resolve_vocab(Some(std::path::Path::new("/nonexistent/vocab.json")), None)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("/nonexistent/vocab.json") && e.contains("ACESTEP_LYRIC_VOCAB"),
        "{e}"
    );
}

/// Number words against the reference's `expand_numbers_multilingual` (num2words 0.5.14) on
/// 19268 cases: cardinals, ordinals, decimals and currency amounts in the 14 languages it spells
/// out and in Czech, whose digits it keeps; Chinese (`zh_num2words`) dates, money, telephone
/// numbers, fractions, percentages and measure words (`tests/fixtures/lyrics/numbers.json`).
#[test]
fn number_words_match_num2words() {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lyrics/numbers.json");
    let cases: BTreeMap<String, Vec<(String, String)>> =
        serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
    let mut failures = Vec::new();
    let mut total = 0;
    for (code, rows) in &cases {
        let lang = Language::from_code_or_english(code);
        let mut ok = 0;
        for (input, want) in rows {
            // None: the text stays as it is (where the reference's num2words raises).
            let got = acestep::lyrics::numbers::expand_numbers(input, lang)
                .unwrap_or_else(|| input.clone());
            if &got == want {
                ok += 1;
            } else if failures.len() < 40 {
                failures.push(format!("{code}: {input:?} -> {got:?}, reference {want:?}"));
            }
        }
        total += rows.len();
        println!("{code}: {ok}/{} number cases exact", rows.len());
    }
    assert!(total > 6000);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Per-line language detection (`lang_segment::get_lang`) against the reference's `get_lang`:
/// the corpus lines (`reference.json`, per label) and 7 000+ variants of them and edge cases
/// (`langdetect.json`: case, quotes, brackets, numbers, fragments, two languages joined, other
/// scripts). Target of the issue: >= 97 % of lines agree; the corpus is held at 100 %.
#[test]
fn detected_language_matches_the_reference() {
    use acestep::lyrics::lang_segment::get_lang;
    let r = reference();
    let mut table: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut failures = Vec::new();
    for row in r["lines"].as_array().unwrap() {
        let line = row["line"].as_str().unwrap().trim();
        let Some(want) = row["detected"].as_str() else {
            continue;
        };
        let got = get_lang(line);
        let e = table
            .entry(row["label"].as_str().unwrap().to_string())
            .or_default();
        e.1 += 1;
        if got == want {
            e.0 += 1;
        } else {
            failures.push(format!("{line:?}: ours {got}, reference {want}"));
        }
    }
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lyrics/langdetect.json");
    let rows: Vec<(String, String)> =
        serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
    let mut variant_misses = Vec::new();
    for (line, want) in &rows {
        let got = get_lang(line);
        if &got != want {
            variant_misses.push(format!("{line:?}: ours {got}, reference {want}"));
        }
    }
    println!("{:>6}  {:>12}", "label", "detected ok");
    let (mut ok, mut n) = (0, 0);
    for (label, (a, m)) in &table {
        println!("{label:>6}  {a:>6}/{m:<5}");
        ok += a;
        n += m;
    }
    let v_ok = rows.len() - variant_misses.len();
    println!(
        "corpus: {ok}/{n} lines agree; variants: {v_ok}/{} agree ({:.2} %)",
        rows.len(),
        100.0 * v_ok as f64 / rows.len() as f64
    );
    for m in variant_misses.iter().take(30) {
        println!("variant differs: {m}");
    }
    assert!(
        failures.is_empty(),
        "corpus lines differ:\n{}",
        failures.join("\n")
    );
    assert!(rows.len() > 7000);
    // Held at 99.9 %: a score sitting on a threshold may round the other way on a platform
    // whose f32 exp differs in its last bit (none does on x86-64 today: 100 %).
    assert!(
        v_ok as f64 >= 0.999 * rows.len() as f64,
        "{} of {} variants differ",
        variant_misses.len(),
        rows.len()
    );
}

/// Chinese to pinyin against the reference's `chinese_transliterate` (pypinyin 0.53.0) on 3000
/// seeded strings of phrases, phrase fragments, characters and other text
/// (`tests/fixtures/lyrics/pinyin.json`): every one exact.
#[test]
fn pinyin_matches_pypinyin() {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lyrics/pinyin.json");
    let rows: Vec<(String, String)> =
        serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
    assert!(rows.len() >= 3000);
    let misses: Vec<String> = rows
        .iter()
        .filter_map(|(text, want)| {
            let got = acestep::lyrics::chinese::transliterate(text);
            (&got != want).then(|| format!("{text:?}: ours {got:?}, reference {want:?}"))
        })
        .collect();
    println!("{}/{} strings exact", rows.len() - misses.len(), rows.len());
    assert!(misses.is_empty(), "{}", misses.join("\n"));
}

/// Japanese romaji against the reference's `japanese_cleaners` (cutlet 0.5.2 + unidic-lite 1.0.8)
/// on 200 lines (`tests/fixtures/lyrics/romaji.json`): the corpus's Japanese and mixed lines and
/// lines reaching cutlet's rules (particles, っ, ー, ん, iteration marks, loanwords, proper nouns,
/// exceptions, digits, ASCII, brackets, unknown words). Every one exact.
#[test]
fn romaji_matches_cutlet() {
    let r = acestep::lyrics::japanese::Romanizer::load(&ja_dict()).unwrap();
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lyrics/romaji.json");
    let rows: Vec<(String, Option<String>)> =
        serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
    assert!(rows.len() >= 200);
    let misses: Vec<String> = rows
        .iter()
        .filter_map(|(text, want)| {
            let got = r.romaji(text);
            (&got != want).then(|| format!("{text:?}: ours {got:?}, reference {want:?}"))
        })
        .collect();
    println!("{}/{} lines exact", rows.len() - misses.len(), rows.len());
    assert!(misses.is_empty(), "{}", misses.join("\n"));
}
