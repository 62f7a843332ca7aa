//! Per-line language detection as the reference's `get_lang`: its `LangSegment` (the fork in
//! `acestep/language_segmentation/`, filters = `language_filters.default`, every language of the
//! identifier) over py3langid's naive-Bayes identifier with normalised probabilities.
//!
//! The identifier is [`super::langid`]: py3langid 0.3.0's `model.plzma` (97 languages)
//! re-encoded unchanged (the same feature automaton, the same per-class log-probabilities).
//! Around it, this module follows `LangSegment` step by step: the line is cut into Hangul, Thai,
//! Cyrillic, number, Latin (with the French and Vietnamese letters of its "preview" mode) and
//! quoted runs; the rest is split at punctuation and classified piece by piece, with the
//! reference's Chinese / Japanese tie-breaks for short Han runs, its merging of neighbouring
//! pieces of one language, and its character counts (Chinese counted double). `get_lang` then
//! takes the language with the most characters, or the second when the first is English.
//!
//! Regular expressions keep Python's `re` semantics: `\w` is a letter, a number or `_` (Unicode
//! general categories L and N, as `str.isalnum`), so combining marks (Devanagari vowel signs,
//! Arabic harakat) are *not* word characters, as in the reference.
//!
//! Where ours differs: the sums of the identifier run in feature order, not in numpy's BLAS
//! `sgemv` order, so a probability may differ in its last bits (it matters only when two languages tie
//! or a score sits on a threshold); the SSML tags `<currency>` and `<date>` (never found in
//! lyrics) are read with our Chinese number words.
//!
//! ```
//! use acestep::lyrics::lang_segment::get_lang;
//! assert_eq!(get_lang("사랑해 오늘 밤"), "ko");
//! assert_eq!(get_lang("Ich liebe dich mehr als alles"), "de");
//! ```

use std::collections::HashMap;
use std::sync::OnceLock;

use regex::{NoExpand, Regex};

use super::Language;

/// `language_filters.default`: the identifier's 97 languages, in its order.
#[rustfmt::skip]
pub const FILTERS: [&str; 97] = [
    "af", "am", "an", "ar", "as", "az", "be", "bg", "bn", "br", "bs", "ca", "cs", "cy", "da", "de",
    "dz", "el", "en", "eo", "es", "et", "eu", "fa", "fi", "fo", "fr", "ga", "gl", "gu", "he", "hi",
    "hr", "ht", "hu", "hy", "id", "is", "it", "ja", "jv", "ka", "kk", "km", "kn", "ko", "ku", "ky",
    "la", "lb", "lo", "lt", "lv", "mg", "mk", "ml", "mn", "mr", "ms", "mt", "nb", "ne", "nl", "nn",
    "no", "oc", "or", "pa", "pl", "ps", "pt", "qu", "ro", "ru", "rw", "se", "si", "sk", "sl", "sq",
    "sr", "sv", "sw", "ta", "te", "th", "tl", "tr", "ug", "uk", "ur", "vi", "vo", "wa", "xh", "zh",
    "zu",
];

/// Python's `\w` as a class body: letters, numbers and `_`.
const WORD: &str = r"\p{L}\p{N}_";
/// The French letters of the reference's preview mode (lower case only, as there).
const RE_FR: &str = "àáâãäåæçèéêëìíîïðñòóôõöùúûüýþÿ";
/// The Vietnamese letters of the reference's preview mode.
const RE_VI: &str = "đơưăáàảãạắằẳẵặấầẩẫậéèẻẽẹếềểễệíìỉĩịóòỏõọốồổỗộớờởỡợúùủũụứừửữựôâêơưỷỹ";
/// Chinese / Japanese priority threshold of the reference (`LangPriorityThreshold`).
const PRIORITY_THRESHOLD: f64 = 0.89;

/// Whether `c` is a word character of Python's `re` (`str.isalnum()` or `_`).
fn py_word(c: char) -> bool {
    c == '_' || patterns().word_char.is_match(c.encode_utf8(&mut [0; 4]))
}

/// Whether `c` is whitespace for Python's `str.strip` / `\s`.
fn py_space(c: char) -> bool {
    c.is_whitespace() || ('\x1c'..='\x1f').contains(&c)
}

fn is_cjk(c: char) -> bool {
    ('\u{4e00}'..='\u{9fff}').contains(&c)
}

fn is_kana(c: char) -> bool {
    ('\u{3040}'..='\u{30ff}').contains(&c)
}

/// What a placeholder of the line stands for (the reference's `process_list` handlers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Process {
    Symbol,
    Korean,
    Thai,
    Russian,
    Number,
    English,
    Quotes,
}

struct Pattern {
    tag: &'static str,
    re: Regex,
    process: Process,
    /// The pattern is two alternatives with the same groups (Python's backreference
    /// `(["'])(.*?)(\1)` written out): keep the groups of the one that matched.
    alternatives: bool,
}

impl Pattern {
    /// `re.findall`: the groups of every match ("" for a group that did not take part).
    fn findall(&self, text: &str) -> Vec<Vec<String>> {
        self.re
            .captures_iter(text)
            .map(|c| {
                let groups: Vec<String> = c
                    .iter()
                    .skip(1)
                    .map(|g| g.map_or(String::new(), |m| m.as_str().to_string()))
                    .collect();
                if self.alternatives {
                    let half = groups.len() / 2;
                    if c.get(1).is_some() {
                        groups[..half].to_vec()
                    } else {
                        groups[half..].to_vec()
                    }
                } else {
                    groups
                }
            })
            .collect()
    }
}

struct Patterns {
    word_char: Regex,
    list: Vec<Pattern>,
    parse_tag: Regex,
    parse_tag_start: Regex,
    number_tags: Regex,
    digits: Regex,
    punct: Regex,
    non_word: Regex,
    sentence: Regex,
}

fn patterns() -> &'static Patterns {
    static P: OnceLock<Patterns> = OnceLock::new();
    P.get_or_init(|| {
        let re = |p: &str| Regex::new(p).expect("static language-segmentation pattern");
        let base = |range: &str| re(&format!(r#"(([【《（(“‘"']*[{range}]+[^{WORD}]*)+)"#));
        let pattern = |tag, re, process| Pattern {
            tag,
            re,
            process,
            alternatives: false,
        };
        Patterns {
            word_char: re(&format!("^[{WORD}]$")),
            list: vec![
                pattern(
                    "$1",
                    re(r"(<([a-zA-Z|\-]*)>(.*?)</*[a-zA-Z|\-]*>)"),
                    Process::Symbol,
                ),
                pattern("$6", base(r"\x{AC00}-\x{D7A3}"), Process::Korean),
                pattern("$8", base(r"\x{0E00}-\x{0E7F}"), Process::Thai),
                pattern("$7", base("А-Яа-яЁё"), Process::Russian),
                pattern(
                    "00",
                    re(&format!(r"([^{WORD}]*\d+[^{WORD}]+\d*[^{WORD}]*\d*)")),
                    Process::Number,
                ),
                pattern(
                    "$5",
                    base(&format!("a-zA-Z{RE_FR}{RE_VI}")),
                    Process::English,
                ),
                Pattern {
                    alternatives: true,
                    ..pattern("$3", re(r#"(")(.*?)(")|(')(.*?)(')"#), Process::Quotes)
                },
                pattern(
                    "$4",
                    re(&format!(
                        r"(\n*[【《（(“‘])([^【《（(“‘’”)）》】]{{3,}})([’”)）》】][^{WORD}]*\n?)"
                    )),
                    Process::Quotes,
                ),
            ],
            parse_tag: re(r"⑥\$*\d+\d{6,}⑥"),
            parse_tag_start: re(r"^⑥\$*\d+\d{6,}⑥"),
            number_tags: re(r"⑥\d{6,}⑥"),
            digits: re(r"\d+"),
            punct: re(&format!(r"[^{WORD}\s\x{{1C}}-\x{{1F}}]+")),
            non_word: re(&format!("[^{WORD}]+")),
            sentence: re(r".*?[。.?？!！]+\n?"),
        }
    })
}

/// `re.split` with a capturing pattern: the pieces between matches and the matches, in order
/// (empty pieces kept).
fn split_keep(re: &Regex, text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut last = 0;
    for m in re.find_iter(text) {
        out.push(text[last..m.start()].to_string());
        out.push(m.as_str().to_string());
        last = m.end();
    }
    out.push(text[last..].to_string());
    out
}

/// `_cleans_text`: every run of non-word characters becomes one space, runs of one repeated
/// character become one, then the ends are stripped.
fn cleans_text(text: &str) -> String {
    let spaced = patterns().non_word.replace_all(text, " ");
    let mut out = String::with_capacity(spaced.len());
    let mut prev = None;
    for c in spaced.chars() {
        if prev != Some(c) || c == '\n' {
            out.push(c);
        }
        prev = Some(c);
    }
    out.trim_matches(py_space).to_string()
}

/// Whether `text` has no word character (`re.sub(r"([^\w\s]+)", "", t).strip()` is empty).
fn only_punct(text: &str) -> bool {
    !text.chars().any(py_word)
}

/// `_clear_text_number`: the text without punctuation, and whether it is digits only.
fn clear_text_number(text: &str) -> (String, bool) {
    if text == "\n" {
        return (text.to_string(), false);
    }
    let p = patterns();
    let clear = p
        .punct
        .replace_all(&text.replace('\n', ""), "")
        .trim_matches(py_space)
        .to_string();
    let is_number = p.digits.replace_all(&clear, "").is_empty();
    (clear, is_number)
}

/// `_insert_english_uppercase`: a space before each capital that follows a word character
/// (`iPhone` -> `i Phone`), `-` stripped from the ends, one space appended.
fn insert_english_uppercase(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    let mut prev: Option<char> = None;
    for c in text.chars() {
        if c.is_ascii_uppercase() && prev.is_some_and(py_word) {
            out.push(' ');
        }
        out.push(c);
        prev = Some(c);
    }
    let mut out = out.trim_matches('-').to_string();
    out.push(' ');
    out
}

/// Python's `round(x, 3)` (round half to even on the exact binary value).
fn round3(x: f64) -> f64 {
    format!("{x:.3}").parse().unwrap_or(x)
}

fn first_of(lang: &str) -> String {
    lang.split('|').next().unwrap_or_default().to_string()
}

/// The most likely language of `text` by py3langid and its normalised probability rounded to
/// three decimals (`LangSegment._lang_classify`).
pub fn classify(text: &str) -> (String, f64) {
    let (lang, p) = super::langid::classify(text);
    (lang.to_string(), round3(f64::from(p)))
}

/// A piece of a line with its language (`LangSegment`'s word dicts).
#[derive(Debug, Clone, PartialEq)]
struct Segment {
    /// The language code (`zh|ja|…` while it waits).
    lang: String,
    /// The text of the piece (Latin pieces carry the reference's extra spaces).
    text: String,
    score: f64,
    symbol: bool,
}

/// The reference raised inside `getTexts` (a placeholder without an entry, a missing ending
/// character); `get_lang` then answers `en`.
#[derive(Debug)]
struct Raised;

type Step = Result<(), Raised>;

/// One `getTexts` call: the placeholders of the line, the pieces waiting for a Chinese /
/// Japanese decision, the character counts per language.
#[derive(Default)]
struct Run {
    cache: HashMap<String, (Process, Vec<String>)>,
    waits: Vec<Segment>,
    counts: Option<Vec<(String, usize)>>,
    lang_eos: bool,
}

impl Run {
    fn statistics(&mut self, lang: &str, text: &str) {
        if lang.contains('|') {
            return;
        }
        let n = text.chars().count() * if lang == "zh" { 2 } else { 1 };
        let counts = self.counts.get_or_insert_with(Vec::new);
        match counts.iter_mut().find(|(l, _)| l == lang) {
            Some((_, c)) => *c += n,
            None => counts.push((lang.to_string(), n)),
        }
    }

    /// `_saveData`: merges with the previous piece where the reference does; returns the
    /// language the piece was saved under.
    fn save_data(
        &mut self,
        words: &mut Vec<Segment>,
        language: String,
        text: String,
        score: f64,
        symbol: bool,
    ) -> String {
        let (clear, is_number) = clear_text_number(&text);
        let (mut language, mut text) = (language, text);
        if symbol {
        } else if let Some(pre) = words.last().filter(|p| !p.symbol).cloned() {
            if clear.is_empty() || is_number {
                language = pre.lang.clone();
            }
            let (_, pre_is_number) = clear_text_number(&pre.text);
            if pre.lang == language {
                self.statistics(&pre.lang, &text);
                if let Some(last) = words.last_mut() {
                    last.text.push_str(&text);
                }
                return pre.lang;
            } else if pre_is_number {
                text = format!("{}{}", pre.text, text);
                words.pop();
            }
        } else if is_number {
            let priority = &filters_string()[..2];
            if "ja-zh-en-ko-fr-vi".contains(priority) {
                language = priority.to_string();
            }
        }
        let kept = language.contains('?')
            || FILTERS.contains(&language.as_str())
            || FILTERS[0].contains(language.as_str());
        if kept {
            self.statistics(&language, &text);
            words.push(Segment {
                lang: language.clone(),
                text,
                score,
                symbol,
            });
        }
        language
    }

    /// `_addwords`: settles a waiting Chinese / Japanese piece by this one, then waits or saves.
    fn add_words(
        &mut self,
        words: &mut Vec<Segment>,
        language: &str,
        text: &str,
        score: f64,
        symbol: bool,
    ) {
        if text != "\n" && text.trim_matches(py_space).is_empty() {
            return;
        }
        let mut language = language.to_lowercase();
        let text = if language == "en" {
            insert_english_uppercase(text)
        } else {
            text.to_string()
        };
        // A piece whose language waits between Chinese and Japanese (`zh|ja|…`) takes this
        // piece's language when it is one of its candidates, else its first candidate.
        let settle = |pre: &mut String, language: &mut String| {
            if pre.contains(language.as_str()) {
                *language = first_of(language);
                pre.clone_from(language);
            } else {
                *pre = first_of(pre);
            }
        };
        let pre_lang = if let Some(mut pre) = self.waits.pop() {
            if pre.lang.contains('|') {
                settle(&mut pre.lang, &mut language);
                Some(self.save_data(words, pre.lang, pre.text, pre.score, pre.symbol))
            } else {
                Some(pre.lang)
            }
        } else if let Some(pre) = words.last_mut() {
            if pre.lang.contains('|') {
                settle(&mut pre.lang, &mut language);
            }
            Some(pre.lang.clone())
        } else {
            None
        };
        if language.contains('|')
            && pre_lang
                .as_deref()
                .is_some_and(|p| !p.is_empty() && !language.contains(p))
            && !language.contains('…')
        {
            language = first_of(&language);
        }
        if language.contains('|') {
            self.waits.push(Segment {
                lang: language,
                text,
                score,
                symbol,
            });
        } else {
            self.save_data(words, language, text, score, symbol);
        }
    }

    /// `_parse_language`: the text between placeholders, split at punctuation and classified.
    fn parse_language(&mut self, words: &mut Vec<Segment>, segment: &str) -> Step {
        let p = patterns();
        let mut lines = split_keep(&p.punct, segment);
        let n = lines.len();
        let lang_eos = self.lang_eos;
        for index in 0..n {
            let text = lines[index].clone();
            if text.is_empty() {
                continue;
            }
            let eos = index + 1 >= n;
            let next_text = if eos {
                String::new()
            } else {
                lines[index + 1].clone()
            };
            if !eos && (only_punct(&text) || only_punct(&next_text)) {
                lines[index + 1] = format!("{text}{next_text}");
                continue;
            }
            let cleans = p.number_tags.replace_all(&text, "");
            let cleans = cleans_text(&p.digits.replace_all(&cleans, ""));
            let len = cleans.chars().count();
            if !eos && len <= 2 {
                lines[index + 1] = format!("{text}{next_text}");
                continue;
            }
            let (mut language, mut score) = classify(&cleans);
            let prev_language = words.last().map(|w| w.lang.clone());
            if language != "zh" && cleans.chars().filter(|c| !py_space(*c)).all(is_cjk) {
                (language, score) = ("zh".to_string(), 1.0);
            }
            if len <= 5 && cleans.chars().any(is_cjk) {
                let filters = filters_string();
                if score < PRIORITY_THRESHOLD && !filters.is_empty() {
                    match (filters.find("ja"), filters.find("zh")) {
                        (Some(ja), zh) if zh.is_none_or(|zh| ja < zh) => language = "ja".into(),
                        (ja, Some(zh)) if ja.is_none_or(|ja| zh < ja) => language = "zh".into(),
                        _ => {}
                    }
                }
                if cleans.chars().any(is_kana) {
                    language = "ja".into();
                } else if len > 2 && score > 0.90 {
                } else if eos && lang_eos {
                    if len <= 1 {
                        language = "zh".into();
                    }
                } else {
                    let unknown = if language == "zh"
                        || (len <= 2 && prev_language.as_deref() == Some("zh"))
                    {
                        "zh|ja"
                    } else {
                        "ja|zh"
                    };
                    let ending = text.chars().rev().find(|c| !py_space(*c)).ok_or(Raised)?;
                    let referen = prev_language.as_deref().is_some_and(|p| {
                        !p.is_empty() && (unknown.contains(p) || p.contains(unknown))
                    });
                    if ending == '。' || ending == '.' {
                        if referen && !words.is_empty() {
                            language = prev_language.unwrap_or_default();
                        }
                    } else {
                        language = format!("{unknown}|…");
                    }
                }
            }
            let text = p
                .number_tags
                .replace_all(&text, |c: &regex::Captures| {
                    let key = &c[0];
                    match self.cache.get(key) {
                        Some((_, groups)) => groups.concat(),
                        None => key.to_string(),
                    }
                })
                .into_owned();
            self.add_words(words, &language, &text, score, false);
        }
        Ok(())
    }

    /// `_process_tags`: placeholders go to their handlers, the text between to
    /// [`Run::parse_language`].
    fn process_tags(&mut self, words: &mut Vec<Segment>, text: &str, root: bool) -> Step {
        let segments = split_keep(&patterns().parse_tag, text);
        let last = segments.len() - 1;
        for (index, seg) in segments.iter().enumerate() {
            if root {
                self.lang_eos = index >= last;
            }
            if patterns().parse_tag_start.is_match(seg) {
                let (process, groups) = self.cache.get(seg).cloned().ok_or(Raised)?;
                self.process(words, process, &groups)?;
            } else {
                self.parse_language(words, seg)?;
            }
        }
        Ok(())
    }

    fn process(&mut self, words: &mut Vec<Segment>, process: Process, groups: &[String]) -> Step {
        let group = |i: usize| groups.get(i).map_or("", String::as_str);
        match process {
            Process::Symbol => {
                let (language, text) = (group(1), group(2));
                if filters_string().contains(language) {
                    self.add_words(words, language, text, 1.0, true);
                } else {
                    let (language, text) = ssml(language, text);
                    self.add_words(words, &language, &text, 1.0, true);
                }
            }
            Process::Korean => self.add_words(words, "ko", group(0), 1.0, false),
            Process::Thai => self.add_words(words, "th", group(0), 1.0, false),
            Process::Russian => self.add_words(words, "ru", group(0), 1.0, false),
            Process::Number => {
                let language = words.first().map_or("zh".to_string(), |w| w.lang.clone());
                self.add_words(words, &language, group(0), 0.0, false);
            }
            Process::English => {
                // Preview mode (the filters hold fr and vi): each sentence is classified; every
                // identifier language is in the filters, so the reference's fallbacks never run.
                for piece in split_keep(&patterns().sentence, group(0)) {
                    if piece.trim_matches(py_space).is_empty() {
                        continue;
                    }
                    let (language, score) = classify(&cleans_text(&piece));
                    self.add_words(words, &language, &piece, score, false);
                }
            }
            Process::Quotes => {
                let text = groups.concat();
                if patterns().parse_tag.is_match(&text) {
                    self.process_tags(words, &text, false)?;
                } else {
                    let cleans = cleans_text(group(1));
                    if cleans.chars().count() <= 5 {
                        self.parse_language(words, &text)?;
                    } else {
                        let (language, score) = classify(&cleans);
                        self.add_words(words, &language, &text, score, false);
                    }
                }
            }
        }
        Ok(())
    }

    /// `_pattern_symbols`: each match of the pattern becomes a placeholder (unless the whole
    /// text is its one match).
    fn pattern_symbols(&mut self, pattern: &Pattern, text: String) -> String {
        let matches = pattern.findall(&text);
        if matches.len() == 1 && matches[0].concat() == text {
            return text;
        }
        let mut text = text;
        for (i, groups) in matches.into_iter().enumerate() {
            let key = format!("⑥{}{i:06}⑥", pattern.tag);
            text = pattern.re.replacen(&text, 1, NoExpand(&key)).into_owned();
            self.cache.insert(key, (pattern.process, groups));
        }
        text
    }

    /// `getTexts` of one line, as far as `get_lang` needs it: the counts are left in
    /// `self.counts` (its final merging of neighbours changes no count and is left out).
    fn parse(&mut self, line: &str) -> Step {
        let p = patterns();
        let mut text = p.parse_tag.replace_all(line, "").into_owned();
        if text.trim_matches(py_space).is_empty() {
            return Ok(());
        }
        self.lang_eos = false;
        self.cache.clear();
        for pattern in &p.list {
            text = self.pattern_symbols(pattern, text);
        }
        self.process_tags(&mut Vec::new(), &text, true)
    }
}

fn filters_string() -> &'static str {
    static S: OnceLock<String> = OnceLock::new();
    S.get_or_init(|| FILTERS.join("-"))
}

/// The SSML tags of `LangSegment` (`<number>`, `<telephone>`, `<currency>`, `<date>`), read in
/// Chinese; any other tag keeps its name as the language.
fn ssml(tag: &str, text: &str) -> (String, String) {
    const DIGITS: [char; 10] = ['零', '一', '二', '三', '四', '五', '六', '七', '八', '九'];
    let digits = |s: &str| -> String {
        // ASCII digits read one by one; other decimal digits dropped, as the reference's map.
        let mut out = String::new();
        for c in s.chars() {
            if c.is_ascii_digit() {
                out.push(DIGITS[(c as u8 - b'0') as usize]);
            } else if !patterns().digits.is_match(c.encode_utf8(&mut [0; 4])) {
                out.push(c);
            }
        }
        out.replace('.', "点")
    };
    let cardinal = |s: &str| -> String {
        patterns()
            .digits
            .replace_all(s, |c: &regex::Captures| {
                super::numbers::chinese::num2chn(&c[0], false, true)
            })
            .replace('.', "点")
    };
    match tag {
        "telephone" => (
            "zh".into(),
            digits(&text.replace("+86", "")).replace('一', "幺"),
        ),
        "number" => ("zh".into(), digits(text)),
        "currency" | "date" => ("zh".into(), cardinal(text)),
        _ => (tag.to_string(), text.to_string()),
    }
}

/// The language code the reference's `get_lang` gives a line: the identifier code with the
/// most characters (Chinese counted double), the runner-up when that is `en`; `zh` when no
/// piece was kept, `en` where the reference raises. Any of the identifier's 97 codes.
pub fn get_lang(line: &str) -> String {
    let mut run = Run::default();
    if run.parse(line).is_err() {
        return "en".to_string();
    }
    let Some(mut counts) = run.counts.filter(|c| !c.is_empty()) else {
        return "zh".to_string();
    };
    counts.sort_by_key(|c| std::cmp::Reverse(c.1));
    let first = counts[0].0.clone();
    if first == "en" && counts.len() > 1 {
        counts[1].0.clone()
    } else {
        first
    }
}

/// The language `tokenize_lyrics` reads a line in: [`get_lang`] mapped as the reference does
/// (an unsupported language is English).
pub fn detect_language(line: &str) -> Language {
    Language::from_code_or_english(&get_lang(line))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_re_helpers() {
        assert_eq!(cleans_text("Hello,,  world!!"), "Helo world");
        assert_eq!(cleans_text("¿Qué?"), "Qué");
        assert_eq!(insert_english_uppercase("iPhone LCD"), "i Phone L C D ");
        assert_eq!(clear_text_number(" 12, "), ("12".to_string(), true));
        assert_eq!(clear_text_number("a1"), ("a1".to_string(), false));
        assert!(!py_word('\u{093e}') && py_word('⑥') && py_word('_') && !py_word('-'));
        assert_eq!(
            split_keep(&patterns().punct, "a, b!"),
            ["a", ",", " b", "!", ""]
        );
        // As Python: 0.8885 is 0.88849999.. in binary.
        assert_eq!((round3(0.8885), round3(0.8886)), (0.888, 0.889));
        assert_eq!(first_of("zh|ja|…"), "zh");
    }

    #[test]
    fn scripts_and_languages() {
        assert_eq!(get_lang("사랑해"), "ko");
        assert_eq!(get_lang("Я люблю тебя всем сердцем"), "ru");
        assert_eq!(get_lang("我爱你"), "zh");
        assert_eq!(get_lang("君の名前を呼ぶよ"), "ja");
        assert_eq!(get_lang("Je t'aime plus que tout au monde"), "fr");
        assert_eq!(detect_language("ฉันรักเธอ"), Language::En);
        assert_eq!(get_lang(""), "zh");
    }
}
