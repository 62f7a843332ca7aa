//! The lyric frontend: the reference's `VoiceBpeTokenizer` (BPE over `vocab.json`, a `[lang]`
//! prefix, spaces as `[SPACE]`) with its cleaners, and the `tokenize_lyrics` framing (start token
//! 261, each line followed by 2, empty lines as a lone 2, structure tags such as `[verse]` always
//! read as English).
//!
//! - [`cleaners`]: `multilingual_cleaners` / `basic_cleaners` (quotes, Turkish capitals,
//!   lowercase, abbreviations, symbols, whitespace);
//! - [`numbers`]: number words as `num2words` 0.5.14 in the 14 languages the reference spells
//!   out (Czech keeps its digits, as in the reference);
//! - [`korean`]: Korean romanisation (`hangul_romanize`, academic rule);
//! - [`chinese`]: pinyin as pypinyin (phrase dictionary, forward maximum matching) and
//!   punctuation; [`numbers::chinese`]: Chinese numbers (`zh_num2words`);
//! - [`japanese`]: romaji as cutlet over MeCab + UniDic (unidic-lite's dictionary, not shipped);
//! - [`lang_segment`]: the reference's per-line language detection (`get_lang`: LangSegment
//!   over py3langid's model).
//!
//! ```no_run
//! use acestep::lyrics::{lang_segment::detect_language, LyricTokenizer};
//! let tok = LyricTokenizer::from_file(std::path::Path::new("vocab.json"))?;
//! let ids = tok.tokenize_lyrics("[verse]\nWe made $100\n사랑해", &mut detect_language)?;
//! assert_eq!(ids[0], 261);
//! # Ok::<(), acestep::Error>(())
//! ```

pub mod chinese;
pub mod cleaners;
pub mod japanese;
pub mod korean;
pub mod lang_segment;
pub mod langid;
pub mod numbers;

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The bytes of a gzip'd table embedded in the crate (`data/`). A failure is a corrupt build,
/// not user input.
fn gunzip_embedded(gz: &[u8], what: &str) -> Vec<u8> {
    use std::io::Read;
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(gz)
        .read_to_end(&mut raw)
        .unwrap_or_else(|e| panic!("embedded {what}: {e}"));
    raw
}

/// Start-of-lyrics token.
pub const START_TOKEN: u32 = 261;
/// End-of-line token (also an empty line).
pub const LINE_TOKEN: u32 = 2;

/// The 17 languages of the lyric tokenizer (`SUPPORT_LANGUAGES` of the reference).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Language {
    /// English.
    En,
    /// German.
    De,
    /// French.
    Fr,
    /// Spanish.
    Es,
    /// Italian.
    It,
    /// Portuguese.
    Pt,
    /// Polish.
    Pl,
    /// Turkish.
    Tr,
    /// Russian.
    Ru,
    /// Czech.
    Cs,
    /// Dutch.
    Nl,
    /// Arabic.
    Ar,
    /// Chinese.
    Zh,
    /// Japanese.
    Ja,
    /// Hungarian.
    Hu,
    /// Korean.
    Ko,
    /// Hindi.
    Hi,
}

impl Language {
    /// Every supported language.
    pub const ALL: [Language; 17] = [
        Language::En,
        Language::De,
        Language::Fr,
        Language::Es,
        Language::It,
        Language::Pt,
        Language::Pl,
        Language::Tr,
        Language::Ru,
        Language::Cs,
        Language::Nl,
        Language::Ar,
        Language::Zh,
        Language::Ja,
        Language::Hu,
        Language::Ko,
        Language::Hi,
    ];

    /// The ISO code (`zh` for Chinese).
    pub fn code(self) -> &'static str {
        match self {
            Language::En => "en",
            Language::De => "de",
            Language::Fr => "fr",
            Language::Es => "es",
            Language::It => "it",
            Language::Pt => "pt",
            Language::Pl => "pl",
            Language::Tr => "tr",
            Language::Ru => "ru",
            Language::Cs => "cs",
            Language::Nl => "nl",
            Language::Ar => "ar",
            Language::Zh => "zh",
            Language::Ja => "ja",
            Language::Hu => "hu",
            Language::Ko => "ko",
            Language::Hi => "hi",
        }
    }

    /// The prefix token's text (`[zh-cn]` for Chinese).
    pub fn prefix(self) -> &'static str {
        match self {
            Language::Zh => "[zh-cn]",
            Language::En => "[en]",
            Language::De => "[de]",
            Language::Fr => "[fr]",
            Language::Es => "[es]",
            Language::It => "[it]",
            Language::Pt => "[pt]",
            Language::Pl => "[pl]",
            Language::Tr => "[tr]",
            Language::Ru => "[ru]",
            Language::Cs => "[cs]",
            Language::Nl => "[nl]",
            Language::Ar => "[ar]",
            Language::Ja => "[ja]",
            Language::Hu => "[hu]",
            Language::Ko => "[ko]",
            Language::Hi => "[hi]",
        }
    }

    /// A language every line is to be read in: None for unset, empty or `auto` (per-line
    /// detection); the code itself as the error when it is none of the 17.
    pub fn parse_forced(code: Option<&str>) -> std::result::Result<Option<Language>, String> {
        match code.map(|c| c.trim().to_ascii_lowercase()) {
            None => Ok(None),
            Some(c) if c.is_empty() || c == "auto" => Ok(None),
            Some(c) => Language::ALL
                .into_iter()
                .find(|l| l.code() == c)
                .map(Some)
                .ok_or(c),
        }
    }

    /// Parses a code as the reference normalises it: `zh-*` is Chinese, `spa*` Spanish, and
    /// anything unsupported falls back to English.
    pub fn from_code_or_english(code: &str) -> Language {
        let c = code.trim().to_ascii_lowercase();
        if c.contains("zh") {
            return Language::Zh;
        }
        if c.contains("spa") {
            return Language::Es;
        }
        Language::ALL
            .into_iter()
            .find(|l| l.code() == c)
            .unwrap_or(Language::En)
    }
}

/// Whether a line is a structure tag line (`[verse]`, `[chorus - anthemic]`, ...): it starts
/// with `[` and has a closing `]`, as the reference's `re.match(r"\[.*?\]")`.
pub fn is_structure_tag(line: &str) -> bool {
    line.starts_with('[') && line[1..].contains(']')
}

/// The cleaning `VoiceBpeTokenizer.preprocess_text` applies to a line in `lang`: Hindi gets
/// `basic_cleaners` (lowercase, whitespace); every other language `multilingual_cleaners`
/// then Korean romanisation for Korean and pinyin for Chinese. Japanese needs the UniDic
/// dictionary ([`LyricTokenizer::preprocess`] reads it as romaji); here it only gets
/// `basic_cleaners`.
pub fn clean(text: &str, lang: Language) -> String {
    match lang {
        Language::Hi | Language::Ja => cleaners::basic_clean(text),
        Language::Ko => korean::romanize(&cleaners::multilingual_clean(text, lang)),
        Language::Zh => chinese::transliterate(&cleaners::multilingual_clean(text, lang)),
        _ => cleaners::multilingual_clean(text, lang),
    }
}

/// The lyric BPE tokenizer (`vocab.json` of the reference, a `tokenizers` JSON).
pub struct LyricTokenizer {
    tokenizer: tokenizers::Tokenizer,
    vocab_size: usize,
    ja_dict: std::sync::Mutex<Option<PathBuf>>,
    romanizer: std::sync::Mutex<Option<std::sync::Arc<japanese::Romanizer>>>,
}

/// Environment variable naming the lyric `vocab.json`.
pub const VOCAB_ENV: &str = "ACESTEP_LYRIC_VOCAB";

/// Where the lyric vocab is: `explicit`, else `$ACESTEP_LYRIC_VOCAB`, else
/// `<checkpoint_dir>/lyric_tokenizer/vocab.json`; the error lists what was tried.
pub fn resolve_vocab(explicit: Option<&Path>, checkpoint_dir: Option<&Path>) -> Result<PathBuf> {
    let mut tried = Vec::new();
    let candidates = explicit
        .map(Path::to_path_buf)
        .into_iter()
        .chain(std::env::var_os(VOCAB_ENV).map(PathBuf::from))
        .chain(checkpoint_dir.map(|d| d.join("lyric_tokenizer").join("vocab.json")));
    for c in candidates {
        if c.is_file() {
            return Ok(c);
        }
        tried.push(c.display().to_string());
    }
    Err(Error::InvalidArgument {
        name: "lyric vocab",
        value: if tried.is_empty() { "none given".into() } else { tried.join(", ") },
        expected: format!("the lyric tokenizer's vocab.json (pass a path, set {VOCAB_ENV}, or put it at <checkpoint>/lyric_tokenizer/vocab.json)"),
    })
}

/// The public Hugging Face Space holding the reference's lyric vocab.
pub const VOCAB_SPACE: &str = "ACE-Step/ACE-Step";
/// The vocab's path in [`VOCAB_SPACE`].
pub const VOCAB_SPACE_FILE: &str = "acestep/models/lyrics_utils/vocab.json";

/// Downloads the lyric vocab from the public ACE-Step Space (or finds it in the Hugging Face
/// cache, where it is kept like the weights).
pub fn download_vocab(opts: &crate::HubOptions) -> Result<PathBuf> {
    let hub_err = |message: String| Error::InvalidArgument {
        name: "lyric vocab",
        value: format!(
            "download of {VOCAB_SPACE_FILE} from the Space {VOCAB_SPACE} failed ({message})"
        ),
        expected: format!(
            "a reachable Hugging Face Hub, or the file given locally (--lyric-vocab PATH, \
             {VOCAB_ENV}=PATH, or <checkpoint>/lyric_tokenizer/vocab.json)"
        ),
    };
    crate::hub::hub_file(
        opts,
        crate::hub::HubRepo::Space(VOCAB_SPACE),
        VOCAB_SPACE_FILE,
    )
    .map_err(hub_err)
}

/// The lyric vocab in the full lookup order: `explicit`, `$ACESTEP_LYRIC_VOCAB`,
/// `<checkpoint_dir>/lyric_tokenizer/vocab.json`, then (when `hub` is given) a download from the
/// ACE-Step Space.
pub fn find_vocab(
    explicit: Option<&Path>,
    checkpoint_dir: Option<&Path>,
    hub: Option<&crate::HubOptions>,
) -> Result<PathBuf> {
    match (resolve_vocab(explicit, checkpoint_dir), hub) {
        (Ok(p), _) => Ok(p),
        (Err(_), Some(opts)) => download_vocab(opts),
        (Err(e), None) => Err(e),
    }
}

impl LyricTokenizer {
    /// Loads `vocab.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let tokenizer = tokenizers::Tokenizer::from_file(path).map_err(|e| Error::Tokenizer {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let vocab_size = tokenizer.get_vocab_size(true);
        Ok(Self {
            tokenizer,
            vocab_size,
            ja_dict: std::sync::Mutex::new(None),
            romanizer: std::sync::Mutex::new(None),
        })
    }

    /// Reads Japanese lines with the UniDic dictionary in `dir` (unidic-lite's `dicdir`) instead
    /// of the one `$ACESTEP_JA_DICT` names.
    pub fn with_japanese_dict(self, dir: &Path) -> Self {
        self.set_japanese_dict(dir);
        self
    }

    /// As [`LyricTokenizer::with_japanese_dict`] on a shared tokenizer (the next Japanese line
    /// loads it).
    pub fn set_japanese_dict(&self, dir: &Path) {
        *self
            .ja_dict
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(dir.to_path_buf());
        *self
            .romanizer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    }

    /// The romaji reader, loaded on the first Japanese line.
    fn romanizer(&self) -> Result<std::sync::Arc<japanese::Romanizer>> {
        let mut slot = self
            .romanizer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(r) = slot.as_ref() {
            return Ok(r.clone());
        }
        let explicit = self
            .ja_dict
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let dir = japanese::resolve_dictionary(explicit.as_deref())?;
        let r = std::sync::Arc::new(japanese::Romanizer::load(&dir)?);
        *slot = Some(r.clone());
        Ok(r)
    }

    /// `VoiceBpeTokenizer.preprocess_text(text, lang)`: [`clean`], or for Japanese the
    /// reference's `japanese_cleaners` (romaji). None where the reference raises (cutlet cannot
    /// spell the line), which makes its `tokenize_lyrics` drop the line.
    pub fn preprocess(&self, text: &str, lang: Language) -> Result<Option<String>> {
        Ok(match lang {
            Language::Ja => self.romanizer()?.romaji(text),
            _ => Some(clean(text, lang)),
        })
    }

    /// Vocabulary size, added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    /// `VoiceBpeTokenizer.encode(text, lang)`: clean, prefix `[lang]`, spaces to `[SPACE]`, BPE.
    pub fn encode(&self, text: &str, lang: Language) -> Result<Vec<u32>> {
        let cleaned = self
            .preprocess(text, lang)?
            .ok_or_else(|| Error::InvalidArgument {
                name: "lyrics",
                value: text.to_string(),
                expected: "a Japanese line cutlet can spell in romaji".into(),
            })?;
        self.encode_preprocessed(&cleaned, lang)
    }

    /// The ids of a line [`LyricTokenizer::preprocess`] already cleaned: `[lang]` prefix, spaces
    /// to `[SPACE]`, BPE.
    pub fn encode_preprocessed(&self, cleaned: &str, lang: Language) -> Result<Vec<u32>> {
        let prepared = format!("{}{}", lang.prefix(), cleaned).replace(' ', "[SPACE]");
        let enc = self
            .tokenizer
            .encode(prepared.as_str(), false)
            .map_err(|e| Error::InvalidArgument {
                name: "lyrics",
                value: cleaned.to_string(),
                expected: format!("text the lyric tokenizer can encode ({e})"),
            })?;
        Ok(enc.get_ids().to_vec())
    }

    /// `tokenize_lyrics`: 261, then per line its ids and 2 (an empty line is a lone 2); tag lines
    /// are English, others take `language_of(line)`.
    pub fn tokenize_lyrics(
        &self,
        lyrics: &str,
        language_of: &mut dyn FnMut(&str) -> Language,
    ) -> Result<Vec<u32>> {
        let mut ids = vec![START_TOKEN];
        for line in lyrics.split('\n') {
            let line = line.trim();
            if line.is_empty() {
                ids.push(LINE_TOKEN);
                continue;
            }
            let lang = if is_structure_tag(line) {
                Language::En
            } else {
                language_of(line)
            };
            // As the reference: a line its cleaners raise on is left out, separator included.
            let Some(cleaned) = self.preprocess(line, lang)? else {
                tracing::warn!("lyric line {line:?} cannot be spelled in romaji; left out");
                continue;
            };
            ids.extend(self.encode_preprocessed(&cleaned, lang)?);
            ids.push(LINE_TOKEN);
        }
        Ok(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleaning_and_tags() {
        assert_eq!(
            clean("  Hello   \"World\"\t!", Language::En),
            "hello world !"
        );
        assert_eq!(clean("İSTANBUL", Language::Tr), "istanbul");
        assert_eq!(
            clean("Rock & Roll, Mr. Jones", Language::En),
            "rock and roll, mister jones"
        );
        assert_eq!(clean("Rock & Roll", Language::De), "rock und roll");
        assert_eq!(clean("50% SALE", Language::Hi), "50% sale");
        assert!(is_structure_tag("[verse]") && is_structure_tag("[chorus - anthemic] yeah"));
        assert!(!is_structure_tag("la [la]") && !is_structure_tag("[unclosed"));
        assert_eq!(Language::from_code_or_english("zh-cn"), Language::Zh);
        assert_eq!(Language::from_code_or_english("xx"), Language::En);
        assert_eq!(Language::parse_forced(Some(" AUTO ")), Ok(None));
        assert_eq!(Language::parse_forced(Some("De")), Ok(Some(Language::De)));
        assert_eq!(Language::parse_forced(Some("xx")), Err("xx".to_string()));
    }
}
