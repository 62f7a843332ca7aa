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
//! [`super::LyricTokenizer::with_japanese_dict`] (`--ja-dict`), then `$ACESTEP_JA_DICT`, then
//! the cache (`<cache>/unidic-lite-1.0.8/dicdir`, [`crate::hub::cache_dir`]); else, on first use,
//! [`fetch_dictionary`] downloads unidic-lite 1.0.8's archive from the Python package index
//! (47 MB, checked against its published SHA-256) and unpacks the dictionary into the cache.
//! Offline (`ACESTEP_OFFLINE=1` / `HF_HUB_OFFLINE=1`) or without the `hub` feature, a path must be
//! given; pip's copy works too: `export ACESTEP_JA_DICT=$(python -c "import unidic_lite;
//! print(unidic_lite.DICDIR)")`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use unicode_normalization::UnicodeNormalization;

use crate::error::{Error, Result};

/// Environment variable naming the UniDic (unidic-lite) dictionary folder.
pub const DICT_ENV: &str = "ACESTEP_JA_DICT";

/// The dictionary files MeCab (and notmecab) read.
const DICT_FILES: [&str; 4] = ["sys.dic", "unk.dic", "matrix.bin", "char.bin"];

/// unidic-lite 1.0.8's source archive on the Python package index (the only file of that
/// release).
pub const UNIDIC_URL: &str = "https://files.pythonhosted.org/packages/55/2b/\
    8cf7514cb57d028abcef625afa847d60ff1ffbf0049c36b78faa7c35046f/unidic-lite-1.0.8.tar.gz";
/// Its SHA-256 as the package index publishes it.
pub const UNIDIC_SHA256: &str = "db9d4572d9fdd4d00a97949d4b0741ec480ee05a7e7e2e32f547500dae27b245";
/// The folder of the archive that holds the dictionary.
#[cfg(feature = "hub")]
const UNIDIC_DICDIR: &str = "unidic_lite/dicdir/";
/// What is unpacked of it: the MeCab files, and the dictionary's licence and version files.
#[cfg(feature = "hub")]
const UNIDIC_KEEP: [&str; 10] = [
    "sys.dic",
    "unk.dic",
    "matrix.bin",
    "char.bin",
    "dicrc",
    "version",
    "COPYING",
    "BSD",
    "LGPL",
    "GPL",
];

/// Where [`fetch_dictionary`] unpacks the dictionary under the cache folder `cache`.
pub fn cached_dictionary(cache: &Path) -> PathBuf {
    cache.join("unidic-lite-1.0.8").join("dicdir")
}

fn is_dictionary(dir: &Path) -> bool {
    DICT_FILES.iter().all(|f| dir.join(f).is_file())
}

/// Downloads unidic-lite 1.0.8 ([`UNIDIC_URL`], checked against [`UNIDIC_SHA256`]) and unpacks
/// its dictionary into [`cached_dictionary`]`(cache)`, unless it is there already; returns that
/// folder. Concurrent fetches are safe (each unpacks apart and the first complete one wins).
#[cfg(feature = "hub")]
pub fn fetch_dictionary(cache: &Path) -> Result<PathBuf> {
    fetch_dictionary_from(UNIDIC_URL, UNIDIC_SHA256, cache)
}

/// [`fetch_dictionary`] from `url` with the SHA-256 `sha256`.
#[cfg(feature = "hub")]
fn fetch_dictionary_from(url: &str, sha256: &str, cache: &Path) -> Result<PathBuf> {
    let dest = cached_dictionary(cache);
    if is_dictionary(&dest) {
        return Ok(dest);
    }
    let fail = |message: String| Error::InvalidArgument {
        name: "Japanese dictionary",
        value: format!("download of unidic-lite 1.0.8 failed ({message})"),
        expected: format!(
            "a reachable Python package index ({url}), or the UniDic folder given locally: \
             --ja-dict DIR or {DICT_ENV}=DIR"
        ),
    };
    let parent = dest
        .parent()
        .ok_or_else(|| fail(format!("no parent folder for {}", dest.display())))?;
    std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    let archive = parent.join("unidic-lite-1.0.8.tar.gz");
    tracing::info!(
        "downloading the UniDic dictionary (unidic-lite 1.0.8, 47 MB) into {}",
        parent.display()
    );
    crate::hub::fetch_pinned(url, sha256, &archive).map_err(fail)?;
    let unpacked = unpack_dictionary(&archive, parent);
    let _ = std::fs::remove_file(&archive);
    let tmp = unpacked?;
    match std::fs::rename(&tmp, &dest) {
        Ok(()) => Ok(dest),
        // Another process got there first.
        Err(_) if is_dictionary(&dest) => {
            let _ = std::fs::remove_dir_all(&tmp);
            Ok(dest)
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            Err(Error::io(&dest, e))
        }
    }
}

/// Unpacks the dictionary files of the unidic-lite archive `archive` into a new folder under
/// `parent`; returns it (complete, or an error and nothing left).
#[cfg(feature = "hub")]
fn unpack_dictionary(archive: &Path, parent: &Path) -> Result<PathBuf> {
    let tmp = parent.join(format!("dicdir.part-{}", std::process::id()));
    let result = (|| {
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let file = std::fs::File::open(archive).map_err(|e| Error::io(archive, e))?;
        let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
        let bad = |e: std::io::Error| Error::io(archive, e);
        for entry in tar.entries().map_err(bad)? {
            let mut entry = entry.map_err(bad)?;
            let path = entry.path().map_err(bad)?.to_string_lossy().into_owned();
            let Some((_, name)) = path.split_once(UNIDIC_DICDIR) else {
                continue;
            };
            if UNIDIC_KEEP.contains(&name) {
                let out = tmp.join(name);
                let mut f = std::fs::File::create(&out).map_err(|e| Error::io(&out, e))?;
                std::io::copy(&mut entry, &mut f).map_err(|e| Error::io(&out, e))?;
            }
        }
        if !is_dictionary(&tmp) {
            return Err(Error::InvalidArgument {
                name: "Japanese dictionary",
                value: archive.display().to_string(),
                expected: format!(
                    "an archive holding {UNIDIC_DICDIR}{}",
                    DICT_FILES.join(", ")
                ),
            });
        }
        Ok(tmp.clone())
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result
}

/// Small kana that combine with the kana before them.
const SUTEGANA: &str = "ゃゅょぁぃぅぇぉ";
/// Iteration marks.
const ODORI: &str = "々〃ゝゞヽゞ";
const UNVOICED: &str = "かきくけこさしすせそたちつてとはひふへほ";
const VOICED: &str = "がぎぐげござじずぜぞだぢづでどばびぶべぼ";

/// The dictionary folder to use: `explicit`, else `$ACESTEP_JA_DICT` (an error saying how to get
/// it when the one given does not hold the four MeCab files); with neither, the cached copy,
/// fetched on first use ([`fetch_dictionary`]) unless offline.
pub fn resolve_dictionary(explicit: Option<&Path>) -> Result<PathBuf> {
    let env = std::env::var_os(DICT_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    if explicit.is_some() || env.is_some() {
        return first_dictionary(explicit, env);
    }
    let cached = cached_dictionary(&crate::hub::cache_dir());
    if is_dictionary(&cached) {
        return Ok(cached);
    }
    #[cfg(feature = "hub")]
    if !crate::hub::offline() {
        return fetch_dictionary(&crate::hub::cache_dir());
    }
    first_dictionary(None, None)
}

/// The first of `explicit`, `env` holding the four MeCab files.
fn first_dictionary(explicit: Option<&Path>, env: Option<PathBuf>) -> Result<PathBuf> {
    let candidates: Vec<PathBuf> = explicit
        .map(Path::to_path_buf)
        .into_iter()
        .chain(env)
        .collect();
    for dir in &candidates {
        if is_dictionary(dir) {
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
             romaji with it): fetched on first use unless offline (ACESTEP_OFFLINE / \
             HF_HUB_OFFLINE) or built without the `hub` feature; else pass --ja-dict or set \
             {DICT_ENV}=$(python -c \"import unidic_lite; print(unidic_lite.DICDIR)\") after \
             `pip install unidic-lite==1.0.8`",
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

#[cfg(all(test, feature = "hub"))]
mod fetch_tests {
    use super::*;

    /// A gzipped tar laid out as unidic-lite's archive, holding `files` in its dictionary folder.
    fn archive(files: &[&str]) -> Vec<u8> {
        let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::fast(),
        ));
        for (i, name) in files.iter().chain(["unidic-mecab.pdf"].iter()).enumerate() {
            let data = vec![i as u8; 10 + i];
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            let path = format!("unidic-lite-1.0.8/{UNIDIC_DICDIR}{name}");
            tar.append_data(&mut h, path, &data[..]).unwrap();
        }
        tar.into_inner().unwrap().finish().unwrap()
    }

    fn sha256(b: &[u8]) -> String {
        use sha2::Digest;
        sha2::Sha256::digest(b)
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect()
    }

    #[test]
    fn the_dictionary_is_fetched_checked_unpacked_and_cached() {
        let cache = tempfile::tempdir().unwrap();
        let body = archive(&[
            "sys.dic",
            "unk.dic",
            "matrix.bin",
            "char.bin",
            "dicrc",
            "COPYING",
        ]);
        let url = crate::hub::serve_once(body.clone());
        let dir = fetch_dictionary_from(&url, &sha256(&body), cache.path()).unwrap();
        assert_eq!(dir, cached_dictionary(cache.path()));
        assert!(is_dictionary(&dir));
        assert!(dir.join("COPYING").is_file());
        assert!(
            !dir.join("unidic-mecab.pdf").exists(),
            "only the dictionary is kept"
        );
        // Cached: no second download (the server answered once and is gone).
        assert_eq!(
            fetch_dictionary_from(&url, &sha256(&body), cache.path()).unwrap(),
            dir
        );
        let parent = dir.parent().unwrap();
        let names: Vec<_> = std::fs::read_dir(parent)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["dicdir"], "no archive or partial folder left");
    }

    #[test]
    fn a_bad_archive_or_hash_leaves_nothing_behind() {
        let cache = tempfile::tempdir().unwrap();
        let body = archive(&["sys.dic", "unk.dic", "matrix.bin", "char.bin"]);
        let url = crate::hub::serve_once(body.clone());
        let e = fetch_dictionary_from(&url, &sha256(b"other"), cache.path()).unwrap_err();
        assert!(e.to_string().contains("SHA-256"), "{e}");
        // An archive without matrix.bin.
        let body = archive(&["sys.dic", "unk.dic", "char.bin"]);
        let url = crate::hub::serve_once(body.clone());
        let e = fetch_dictionary_from(&url, &sha256(&body), cache.path()).unwrap_err();
        assert!(e.to_string().contains("matrix.bin"), "{e}");
        let parent = cached_dictionary(cache.path())
            .parent()
            .unwrap()
            .to_path_buf();
        assert_eq!(std::fs::read_dir(parent).unwrap().count(), 0);
    }
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
