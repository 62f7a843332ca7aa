//! `acestep tokenize-lyrics`.

use std::path::PathBuf;

use acestep::lyrics::{self, lang_segment, Language, LyricTokenizer};

use crate::model::LyricArgs;

/// Options of `acestep tokenize-lyrics`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// A lyrics file, or `-` (default) for standard input.
    #[arg(default_value = "-")]
    input: String,
    /// `auto` (default): each line's language detected as the reference does; or one of en
    /// de fr es it pt pl tr ru cs nl ar zh ja hu ko hi for every line.
    #[arg(long, default_value = "auto")]
    lang: String,
    #[command(flatten)]
    lyric: LyricArgs,
    /// A checkpoint directory to look for lyric_tokenizer/vocab.json in.
    #[arg(long, env = "ACESTEP_CHECKPOINT_DIR")]
    checkpoint_dir: Option<PathBuf>,
}

/// Prints each line's language, cleaned text and ids, and the whole id sequence, as JSON.
pub fn run(a: Args) -> acestep::Result<()> {
    let forced =
        Language::parse_forced(Some(&a.lang)).map_err(|value| acestep::Error::InvalidArgument {
            name: "lang",
            value,
            expected: "auto, or one of en de fr es it pt pl tr ru cs nl ar zh ja hu ko hi".into(),
        })?;
    let text = crate::read_text_arg(&a.input)?;
    let vocab = lyrics::find_vocab(
        a.lyric.lyric_vocab.as_deref(),
        a.checkpoint_dir.as_deref(),
        Some(&acestep::HubOptions::default()),
    )?;
    let mut tok = LyricTokenizer::from_file(&vocab)?;
    if let Some(d) = &a.lyric.ja_dict {
        tok = tok.with_japanese_dict(d);
    }
    let mut language_of =
        |line: &str| forced.unwrap_or_else(|| lang_segment::detect_language(line));
    let mut lines = Vec::new();
    for line in text.split('\n') {
        let t = line.trim();
        if t.is_empty() {
            lines.push(
                serde_json::json!({"line": line, "empty": true, "ids": [lyrics::LINE_TOKEN]}),
            );
            continue;
        }
        let tag = lyrics::is_structure_tag(t);
        let lang = if tag { Language::En } else { language_of(t) };
        let detected = forced.is_none().then(|| lang_segment::get_lang(t));
        let Some(cleaned) = tok.preprocess(t, lang)? else {
            // The reference drops a line cutlet cannot spell.
            lines.push(serde_json::json!({
                "line": line, "detected": detected, "language": lang.code(),
                "dropped": true, "ids": [],
            }));
            continue;
        };
        let mut ids = tok.encode_preprocessed(&cleaned, lang)?;
        ids.push(lyrics::LINE_TOKEN);
        lines.push(serde_json::json!({
            "line": line,
            "detected": detected,
            "language": lang.code(),
            "structure_tag": tag,
            "cleaned": cleaned,
            "ids": ids,
        }));
    }
    let ids = tok.tokenize_lyrics(&text, &mut language_of)?;
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::json!({
            "vocab": vocab,
            "language_detection": match forced {
                Some(l) => format!("off: every line read as {}", l.code()),
                None => "per line, as the reference (LangSegment + py3langid)".into(),
            },
            "lines": lines,
            "ids": ids,
            "tokens": ids.len(),
        }))
        .unwrap_or_default()
    );
    Ok(())
}
