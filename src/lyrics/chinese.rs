//! Chinese to pinyin as the reference's `chinese_transliterate` (`pypinyin.pinyin`, style TONE3,
//! neutral tone as 5, no heteronyms): Han runs are cut into words by pypinyin's forward maximum
//! matching over its phrase dictionary (`seg.mmseg`, `no_non_phrases`), a phrase is read with
//! its dictionary reading (音乐 yin1yue4, 一起 yi4qi3), any other character with its first
//! reading; everything else stays as it is.
//!
//! The readings are pypinyin 0.53.0's own tables (41 651 characters, 47 098 phrases) in the
//! reference's style, written by `tools/make_lyric_tables.py` to `data/pypinyin.tsv.gz` and
//! embedded in the crate; they are parsed on first use.

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

/// Chinese and ASCII punctuation (the reference's `CN_PUNCS + string.punctuation`).
const PUNCTUATION: &str = "！？｡。＂＃＄％＆＇（）＊＋，－／：；＜＝＞＠［＼］＾＿｀｛｜｝～｟｠｢｣､、〃《》「」『』【】〔〕〖〗〘〙〚〛〜〝〞〟〰〾〿–—‘’‛“”„‟…‧﹏·〈〉-!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";

/// The number step of the reference's cleaners for Chinese (`zh_num2words` = `TextNorm()`):
/// numbers spelled out ([`super::numbers::chinese::normalize_nsw`]), then every punctuation mark
/// becomes an ASCII comma.
pub fn text_norm(text: &str) -> String {
    super::numbers::chinese::normalize_nsw(text)
        .chars()
        .map(|c| if PUNCTUATION.contains(c) { ',' } else { c })
        .collect()
}

/// pypinyin's tables: first reading per character, readings per phrase, and every prefix of a
/// phrase (the `PrefixSet` of its segmenter).
struct Tables {
    chars: HashMap<char, String>,
    phrases: HashMap<String, String>,
    prefixes: HashSet<String>,
}

fn tables() -> &'static Tables {
    static T: OnceLock<Tables> = OnceLock::new();
    T.get_or_init(|| {
        let raw = super::gunzip_embedded(include_bytes!("data/pypinyin.tsv.gz"), "pypinyin table");
        let text = String::from_utf8_lossy(&raw);
        let mut t = Tables {
            chars: HashMap::with_capacity(42_000),
            phrases: HashMap::with_capacity(48_000),
            prefixes: HashSet::with_capacity(120_000),
        };
        for line in text.lines() {
            let mut f = line.splitn(3, '\t');
            let (Some(kind), Some(key), Some(reading)) = (f.next(), f.next(), f.next()) else {
                continue;
            };
            let reading: String = reading.split(' ').collect();
            match (kind, key.chars().next()) {
                ("c", Some(c)) => {
                    t.chars.insert(c, reading);
                }
                ("p", _) => {
                    for (i, c) in key.char_indices() {
                        t.prefixes.insert(key[..i + c.len_utf8()].to_string());
                    }
                    t.phrases.insert(key.to_string(), reading);
                }
                _ => {}
            }
        }
        t
    })
}

/// pypinyin's `RE_HANS`: the characters it reads (its UCS-4 ranges).
fn is_han(c: char) -> bool {
    matches!(c as u32,
        0x3007 | 0xE815..=0xE864 | 0xFA18 | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF
        | 0x20000..=0x2A6DF | 0x2A703..=0x2B73F | 0x2B740..=0x2B81D | 0x2B825..=0x2BF6E
        | 0x2C029..=0x2CE93 | 0x2D016 | 0x2D11B..=0x2EBD9 | 0x2F80A..=0x2FA1F
        | 0x300F7..=0x31288)
}

/// pypinyin's `mmseg.seg.cut` (forward maximum matching, `no_non_phrases=True`) over a Han run:
/// the longest prefix that is a phrase, else the first character alone; a run that is all
/// prefix but no phrase falls apart into characters.
fn cut<'a>(t: &Tables, run: &'a str) -> Vec<&'a str> {
    let mut words = Vec::new();
    let mut remain = run;
    while !remain.is_empty() {
        let mut matched: Option<&str> = None;
        let mut broke = false;
        for (i, c) in remain.char_indices() {
            let word = &remain[..i + c.len_utf8()];
            if t.prefixes.contains(word) {
                matched = Some(word);
                continue;
            }
            match matched.filter(|m| t.phrases.contains_key(*m)) {
                Some(m) => {
                    words.push(m);
                    remain = &remain[m.len()..];
                }
                None => {
                    let first = remain.chars().next().map_or(0, char::len_utf8);
                    words.push(&remain[..first]);
                    remain = &remain[first..];
                }
            }
            broke = true;
            break;
        }
        if !broke {
            if t.phrases.contains_key(remain) {
                words.push(remain);
            } else {
                words.extend(
                    remain
                        .char_indices()
                        .map(|(i, c)| &remain[i..i + c.len_utf8()]),
                );
            }
            break;
        }
    }
    words
}

/// The TONE3 pinyin of `text`, as the reference's `chinese_transliterate`.
pub fn transliterate(text: &str) -> String {
    let t = tables();
    let mut out = String::with_capacity(text.len() * 3);
    let mut rest = text;
    while let Some(first) = rest.chars().next() {
        let han = is_han(first);
        let end = rest
            .char_indices()
            .find(|(_, c)| is_han(*c) != han)
            .map_or(rest.len(), |(i, _)| i);
        let (run, tail) = rest.split_at(end);
        rest = tail;
        if !han {
            out.push_str(run);
            continue;
        }
        for word in cut(t, run) {
            if let Some(reading) = t.phrases.get(word) {
                out.push_str(reading);
                continue;
            }
            for c in word.chars() {
                match t.chars.get(&c) {
                    Some(r) => out.push_str(r),
                    None => out.push(c),
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn punctuation_becomes_commas() {
        assert_eq!(
            super::text_norm("跟我走吧，我们!don't"),
            "跟我走吧,我们,don,t"
        );
    }

    #[test]
    fn tone_numbers_at_the_end() {
        assert_eq!(super::transliterate("我爱你"), "wo3ai4ni3");
        assert_eq!(super::transliterate("绿 baby"), "lv4 baby");
        // Phrase readings of pypinyin's dictionary.
        assert_eq!(super::transliterate("我们一起"), "wo3men5yi4qi3");
        assert_eq!(super::transliterate("音乐不会停"), "yin1yue4bu2hui4ting2");
    }

    #[test]
    fn forward_maximum_matching() {
        let t = super::tables();
        assert_eq!(super::cut(t, "中国人"), ["中国人"]);
        assert_eq!(super::cut(t, "我爱你"), super::cut(t, "我爱你"));
        assert!(super::cut(t, "你好世界").contains(&"你好"));
    }
}
