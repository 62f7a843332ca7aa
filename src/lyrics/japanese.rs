//! Japanese to romaji as the reference's `japanese_cleaners`: `cutlet.Cutlet()` (Hepburn,
//! foreign spellings, ASCII only) over MeCab with the UniDic dictionary of `unidic-lite`, then
//! lower case.
//!
//! The text is NFKC-normalised and cut into words by the [`notmecab`] crate, a pure-Rust MeCab
//! that reads the compiled dictionary files of unidic-lite 1.0.8 (UniDic 2.1.2: `sys.dic`,
//! `matrix.bin`, `unk.dic`, `char.bin`, ~250 MB, not shipped with this crate). Each word is then
//! spelled as cutlet spells it: exceptions (東京 tokyo), digits and ASCII as they are, particles
//! は / へ as wa / e, a UniDic lemma with a foreign spelling as that spelling (カツ cutlet), else
//! the word's kana reading through cutlet's Hepburn table with its rules for digraphs, small
//! kana, っ, ー, ん and the iteration marks; words are joined with cutlet's spacing rules.
//! The kana table and exceptions are cutlet's (`data/cutlet.tsv`, written by
//! `tools/make_lyric_tables.py`).
//!
//! The dictionary is found in this order: a path given to
//! [`super::LyricTokenizer::with_japanese_dict`] (`--ja-dict`), then `$ACESTEP_JA_DICT`. With
//! unidic-lite installed by pip: `export ACESTEP_JA_DICT=$(python -c "import unidic_lite;
//! print(unidic_lite.DICDIR)")`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use unicode_normalization::UnicodeNormalization;

use crate::error::{Error, Result};

/// Environment variable naming the UniDic (unidic-lite) dictionary folder.
pub const DICT_ENV: &str = "ACESTEP_JA_DICT";

/// The dictionary files MeCab (and notmecab) read.
const DICT_FILES: [&str; 4] = ["sys.dic", "unk.dic", "matrix.bin", "char.bin"];

/// Small kana that combine with the kana before them.
const SUTEGANA: &str = "ゃゅょぁぃぅぇぉ";
/// Iteration marks.
const ODORI: &str = "々〃ゝゞヽゞ";
const UNVOICED: &str = "かきくけこさしすせそたちつてとはひふへほ";
const VOICED: &str = "がぎぐげござじずぜぞだぢづでどばびぶべぼ";

/// The dictionary folder to use: `explicit`, else `$ACESTEP_JA_DICT`; an error saying how to
/// get it when neither names a folder holding the four MeCab files.
pub fn resolve_dictionary(explicit: Option<&Path>) -> Result<PathBuf> {
    first_dictionary(explicit, std::env::var_os(DICT_ENV).map(PathBuf::from))
}

/// The first of `explicit`, `env` holding the four MeCab files.
fn first_dictionary(explicit: Option<&Path>, env: Option<PathBuf>) -> Result<PathBuf> {
    let candidates: Vec<PathBuf> = explicit
        .map(Path::to_path_buf)
        .into_iter()
        .chain(env)
        .collect();
    for dir in &candidates {
        if DICT_FILES.iter().all(|f| dir.join(f).is_file()) {
            return Ok(dir.clone());
        }
    }
    Err(Error::InvalidArgument {
        name: "Japanese dictionary",
        value: if candidates.is_empty() {
            "none given".into()
        } else {
            candidates
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        },
        expected: format!(
            "the UniDic folder of unidic-lite 1.0.8 with {} (Japanese lyric lines are read as \
             romaji with it): `pip install unidic-lite==1.0.8`, then pass --ja-dict or set \
             {DICT_ENV}=$(python -c \"import unidic_lite; print(unidic_lite.DICDIR)\")",
            DICT_FILES.join(", ")
        ),
    })
}

/// MeCab character categories cutlet looks at (unidic's `char.def`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CharType {
    Alpha,
    Hiragana,
    Katakana,
    Other,
}

fn char_type(c: char) -> CharType {
    match c as u32 {
        0x41..=0x5A | 0x61..=0x7A | 0xFF21..=0xFF3A | 0xFF41..=0xFF5A => CharType::Alpha,
        0x3041..=0x309F => CharType::Hiragana,
        0x30A1..=0x30FF | 0x31F0..=0x31FF | 0xFF66..=0xFF9D => CharType::Katakana,
        _ => CharType::Other,
    }
}

/// One MeCab node with the UniDic fields cutlet reads.
#[derive(Debug, Clone)]
struct Word {
    surface: String,
    /// Whether white space came before it.
    white_space: bool,
    char_type: CharType,
    is_unk: bool,
    features: Vec<String>,
}

impl Word {
    fn feature(&self, i: usize) -> Option<&str> {
        self.features.get(i).map(String::as_str)
    }
    fn pos1(&self) -> Option<&str> {
        self.feature(0)
    }
    fn pos2(&self) -> Option<&str> {
        self.feature(1)
    }
    fn lemma(&self) -> Option<&str> {
        self.feature(7)
    }
    fn pron(&self) -> Option<&str> {
        self.feature(9)
    }
    fn kana(&self) -> Option<&str> {
        self.feature(17)
    }
}

/// A CSV feature string of MeCab (fields with commas are double-quoted).
fn split_features(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_digit())
}

/// `jaconv.kata2hira`.
fn kata2hira(s: &str) -> String {
    s.chars()
        .map(|c| match c as u32 {
            0x30A1..=0x30F6 | 0x30FD | 0x30FE => char::from_u32(c as u32 - 0x60).unwrap_or(c),
            _ => c,
        })
        .collect()
}

fn add_dakuten(c: char) -> Option<char> {
    let i = UNVOICED.chars().position(|u| u == c)?;
    VOICED.chars().nth(i)
}

/// cutlet raised (a kana its table lacks, an empty foreign spelling); the reference's
/// `tokenize_lyrics` then drops the line.
#[derive(Debug)]
pub struct Unspellable;

type Spelled<T> = std::result::Result<T, Unspellable>;

/// A token of cutlet's output.
struct Token {
    surface: String,
    space: bool,
}

/// Japanese to romaji (cutlet over MeCab + UniDic).
pub struct Romanizer {
    dict: notmecab::Dict,
    table: HashMap<String, String>,
    exceptions: HashMap<String, String>,
}

impl Romanizer {
    /// Loads the dictionary folder (see [`resolve_dictionary`]).
    pub fn load(dir: &Path) -> Result<Self> {
        let blob = |f: &str| {
            let path = dir.join(f);
            notmecab::Blob::open(&path).map_err(|source| Error::Io { path, source })
        };
        let dict = notmecab::Dict::load(
            blob("sys.dic")?,
            blob("unk.dic")?,
            blob("matrix.bin")?,
            blob("char.bin")?,
        )
        .map_err(|e| Error::InvalidArgument {
            name: "Japanese dictionary",
            value: dir.display().to_string(),
            expected: format!("a UTF-8 MeCab dictionary (unidic-lite): {e}"),
        })?;
        let mut table = HashMap::new();
        let mut exceptions = HashMap::new();
        for line in include_str!("data/cutlet.tsv").lines() {
            let mut f = line.splitn(3, '\t');
            if let (Some(kind), Some(k), Some(v)) = (f.next(), f.next(), f.next()) {
                let map = if kind == "x" {
                    &mut exceptions
                } else {
                    &mut table
                };
                map.insert(k.to_string(), v.to_string());
            }
        }
        Ok(Romanizer {
            dict,
            table,
            exceptions,
        })
    }

    fn words(&self, text: &str) -> Vec<Word> {
        let Ok((tokens, _)) = self.dict.tokenize(text) else {
            return Vec::new();
        };
        let mut last = 0;
        tokens
            .iter()
            .map(|t| {
                let surface = t.get_text(text).to_string();
                let white_space = t.range.start > last;
                last = t.range.end;
                Word {
                    char_type: surface.chars().next().map_or(CharType::Other, char_type),
                    surface,
                    white_space,
                    is_unk: t.kind == notmecab::TokenType::UNK,
                    features: split_features(self.dict.read_feature_string(t)),
                }
            })
            .collect()
    }

    fn get(&self, key: &str) -> Spelled<&str> {
        self.table.get(key).map(String::as_str).ok_or(Unspellable)
    }

    /// cutlet's `get_single_mapping`.
    fn single(&self, pk: Option<char>, kk: char, nk: Option<char>) -> Spelled<String> {
        if ODORI.contains(kk) {
            return Ok(match kk {
                'ゝ' | 'ヽ' => pk.map(String::from).unwrap_or_default(),
                'ゞ' | 'ヾ' => match pk.and_then(add_dakuten) {
                    Some(v) => self.get(&v.to_string())?.to_string(),
                    None => String::new(),
                },
                _ => String::new(),
            });
        }
        if let Some(p) = pk {
            if let Some(v) = self.table.get(&format!("{p}{kk}")) {
                return Ok(v.clone());
            }
        }
        if let Some(n) = nk {
            if self.table.contains_key(&format!("{kk}{n}")) {
                return Ok(String::new());
            }
            if SUTEGANA.contains(n) {
                if kk == 'っ' {
                    return Ok(String::new());
                }
                let this = self.get(&kk.to_string())?;
                let mut cut = this.chars();
                cut.next_back();
                return Ok(format!("{}{}", cut.as_str(), self.get(&n.to_string())?));
            }
        }
        if SUTEGANA.contains(kk) {
            return Ok(String::new());
        }
        if kk == 'ー' {
            return Ok(match pk.and_then(|p| self.table.get(&p.to_string())) {
                Some(v) => v.chars().last().map(String::from).unwrap_or_default(),
                None => "-".into(),
            });
        }
        if kk == 'っ' {
            return Ok(match nk {
                Some('ち') => "t".into(),
                Some(n) if "あいうえおっ".contains(n) => "-".into(),
                Some(n) => self
                    .get(&n.to_string())?
                    .chars()
                    .next()
                    .map(String::from)
                    .ok_or(Unspellable)?,
                None => "っ".into(),
            });
        }
        if kk == 'ん' {
            return Ok(match nk {
                Some(n) if "あいうえおやゆよ".contains(n) => "n'".into(),
                _ => "n".into(),
            });
        }
        Ok(self.get(&kk.to_string())?.to_string())
    }

    /// cutlet's `map_kana` (hiragana in).
    fn map_kana(&self, kana: &str) -> Spelled<String> {
        let chars: Vec<char> = kana.chars().collect();
        let mut out = String::new();
        for (i, &c) in chars.iter().enumerate() {
            let pk = i.checked_sub(1).map(|j| chars[j]);
            out.push_str(&self.single(pk, c, chars.get(i + 1).copied())?);
        }
        Ok(out)
    }

    /// cutlet's `romaji_word`.
    fn word(&self, w: &Word) -> Spelled<String> {
        if let Some(x) = self.exceptions.get(&w.surface) {
            return Ok(x.clone());
        }
        if is_digits(&w.surface) || w.surface.is_ascii() {
            return Ok(w.surface.clone());
        }
        if w.surface == "€" || w.surface == "¥" {
            return Ok(String::new());
        }
        if w.is_unk {
            return if matches!(w.char_type, CharType::Hiragana | CharType::Katakana) {
                self.map_kana(&kata2hira(&w.surface))
            } else {
                Ok("?".repeat(w.surface.chars().count()))
            };
        }
        let pos1 = w.pos1();
        if pos1 == Some("補助記号") {
            return Ok(self.table.get(&w.surface).cloned().unwrap_or_default());
        }
        if pos1 == Some("助詞") && w.pron() == Some("ワ") {
            return Ok("wa".into());
        }
        if pos1 == Some("助詞") && w.pron() == Some("エ") {
            return Ok("e".into());
        }
        if let Some(foreign) = foreign_spelling(w) {
            return Ok(foreign.to_string());
        }
        match w.kana().filter(|k| !k.is_empty()) {
            Some(kana) => self.map_kana(&kata2hira(kana)),
            None => Ok(w.surface.clone()),
        }
    }

    /// cutlet's `romaji` (capitalisation left out: the reference lowercases the result).
    fn spell(&self, text: &str) -> Spelled<String> {
        if text.is_empty() {
            return Ok(String::new());
        }
        let text: String = text.nfkc().collect();
        let words = self.words(&text);
        let mut out: Vec<Token> = Vec::with_capacity(words.len());
        for (i, w) in words.iter().enumerate() {
            let nw = words.get(i + 1);
            if w.surface == "'"
                && nw.is_some_and(|n| n.char_type == CharType::Alpha && !n.white_space)
                && !w.white_space
            {
                if let Some(po) = out.last_mut() {
                    po.space = false;
                }
                out.push(Token {
                    surface: w.surface.clone(),
                    space: false,
                });
                continue;
            }
            let roma = self.word(w)?;
            if let (Some(first), Some(po)) = (roma.chars().next(), out.last_mut()) {
                if po.surface.ends_with('っ') {
                    po.surface.pop();
                    po.surface.push(first);
                }
            }
            let foreign = foreign_spelling(w).is_some();
            let push_open = |out: &mut Vec<Token>, roma: String| {
                if let Some(po) = out.last_mut() {
                    po.space = true;
                }
                out.push(Token {
                    surface: roma,
                    space: false,
                });
            };
            // Python substring tests: "" is in every string.
            if "「『".contains(w.surface.as_str()) || "([".contains(roma.as_str()) {
                push_open(&mut out, roma);
                continue;
            }
            if roma == "/" {
                out.push(Token {
                    surface: roma,
                    space: false,
                });
                continue;
            }
            if w.surface.is_ascii() && nw.is_some_and(|n| n.surface.is_ascii()) {
                out.push(Token {
                    surface: w.surface.clone(),
                    space: nw.is_some_and(|n| n.white_space),
                });
                continue;
            }
            let ends_dash = roma.ends_with('-');
            let empty = roma.is_empty();
            out.push(Token {
                surface: roma,
                space: false,
            });
            // cutlet's reasons for no space after the word, in its order (its `roma[-1]`
            // raises on an empty foreign spelling).
            if w.pos1() == Some("接頭辞")
                || nw.is_some_and(|n| matches!(n.pos1(), Some("補助記号" | "接尾辞")))
                || nw.is_some_and(|n| n.surface == ",")
            {
                continue;
            }
            if foreign && empty {
                return Err(Unspellable);
            }
            let space = !((foreign && ends_dash)
                || nw.is_some_and(|n| n.pos2().is_some_and(|p| "接続助詞".contains(p)))
                || (is_digits(&w.surface) && nw.is_some_and(|n| is_digits(&n.surface)))
                || nw.is_some_and(|n| {
                    matches!(w.pos1(), Some("動詞" | "助動詞" | "形容詞"))
                        && n.pos1() == Some("助動詞")
                        && n.surface != "です"
                }));
            if let Some(last) = out.last_mut() {
                last.space = space;
            }
        }
        let mut s = String::new();
        for t in &out {
            s.push_str(&t.surface.replace('っ', ""));
            if t.space {
                s.push(' ');
            }
        }
        Ok(s.trim().to_string())
    }

    /// The reference's `japanese_cleaners`: romaji, lower case. None where cutlet raises (the
    /// reference then drops the line).
    pub fn romaji(&self, text: &str) -> Option<String> {
        self.spell(text).ok().map(|s| s.to_lowercase())
    }
}

/// cutlet's `has_foreign_lemma` with use_foreign_spelling: the ASCII spelling after the first
/// `-` of a UniDic lemma (カツ, lemma `カツ-cutlet`).
fn foreign_spelling(w: &Word) -> Option<&str> {
    if w.surface.contains('-') {
        return None;
    }
    let lemma = w.lemma().filter(|l| !l.is_empty())?;
    let (_, cand) = lemma.split_once('-')?;
    cand.is_ascii().then_some(cand)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers() {
        assert_eq!(kata2hira("カタカナー・ヴヽ"), "かたかなー・ゔゝ");
        assert_eq!(
            split_features(r#"補助記号,読点,*,"a,b",x"#),
            ["補助記号", "読点", "*", "a,b", "x"]
        );
        assert_eq!(add_dakuten('か'), Some('が'));
        assert!(is_digits("2024") && !is_digits("") && !is_digits("2a"));
        assert_eq!(char_type('ア'), CharType::Katakana);
        let e = first_dictionary(Some(Path::new("/nonexistent/unidic")), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unidic-lite") && e.contains(DICT_ENV), "{e}");
    }
}
