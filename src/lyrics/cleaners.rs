//! The reference's text cleaners (`multilingual_cleaners`, `basic_cleaners` of
//! `lyric_tokenizer.py`): quotes, Turkish capitals, lowercase, numbers, abbreviations, symbols,
//! whitespace.

use std::sync::LazyLock;

use regex::Regex;

use super::numbers::expand_numbers;
use super::Language;

/// Abbreviations (`mr.` -> `mister`) of each language, applied in order, case-insensitively, at a
/// word start and followed by a dot (Russian: a whole word, no dot).
fn abbreviations(lang: Language) -> &'static [(&'static str, &'static str)] {
    match lang {
        Language::En => &[
            ("mrs", "misess"),
            ("mr", "mister"),
            ("dr", "doctor"),
            ("st", "saint"),
            ("co", "company"),
            ("jr", "junior"),
            ("maj", "major"),
            ("gen", "general"),
            ("drs", "doctors"),
            ("rev", "reverend"),
            ("lt", "lieutenant"),
            ("hon", "honorable"),
            ("sgt", "sergeant"),
            ("capt", "captain"),
            ("esq", "esquire"),
            ("ltd", "limited"),
            ("col", "colonel"),
            ("ft", "fort"),
        ],
        Language::Es => &[
            ("sra", "señora"),
            ("sr", "señor"),
            ("dr", "doctor"),
            ("dra", "doctora"),
            ("st", "santo"),
            ("co", "compañía"),
            ("jr", "junior"),
            ("ltd", "limitada"),
        ],
        Language::Fr => &[
            ("mme", "madame"),
            ("mr", "monsieur"),
            ("dr", "docteur"),
            ("st", "saint"),
            ("co", "compagnie"),
            ("jr", "junior"),
            ("ltd", "limitée"),
        ],
        Language::De => &[
            ("fr", "frau"),
            ("dr", "doktor"),
            ("st", "sankt"),
            ("co", "firma"),
            ("jr", "junior"),
        ],
        Language::Pt => &[
            ("sra", "senhora"),
            ("sr", "senhor"),
            ("dr", "doutor"),
            ("dra", "doutora"),
            ("st", "santo"),
            ("co", "companhia"),
            ("jr", "júnior"),
            ("ltd", "limitada"),
        ],
        Language::It => &[
            ("sig", "signore"),
            ("dr", "dottore"),
            ("st", "santo"),
            ("co", "compagnia"),
            ("jr", "junior"),
            ("ltd", "limitata"),
        ],
        Language::Pl => &[
            ("p", "pani"),
            ("m", "pan"),
            ("dr", "doktor"),
            ("sw", "święty"),
            ("jr", "junior"),
        ],
        Language::Cs => &[("dr", "doktor"), ("ing", "inženýr"), ("p", "pan")],
        Language::Ru => &[("г-жа", "госпожа"), ("г-н", "господин"), ("д-р", "доктор")],
        Language::Nl => &[
            ("dhr", "de heer"),
            ("mevr", "mevrouw"),
            ("dr", "dokter"),
            ("jhr", "jonkheer"),
        ],
        Language::Tr => &[("b", "bay"), ("byk", "büyük"), ("dr", "doktor")],
        Language::Hu => &[("dr", "doktor"), ("b", "bácsi"), ("nőv", "nővér")],
        _ => &[],
    }
}

/// Symbol words (`&` -> ` and `) of each language; None for languages the reference has no
/// table for (Japanese, Hindi).
fn symbols(lang: Language) -> Option<[&'static str; 7]> {
    // The order of the reference: & @ % # $ £ °.
    Some(match lang {
        Language::En => ["and", "at", "percent", "hash", "dollar", "pound", "degree"],
        Language::Es => [
            "y",
            "arroba",
            "por ciento",
            "numeral",
            "dolar",
            "libra",
            "grados",
        ],
        Language::Fr => [
            "et",
            "arobase",
            "pour cent",
            "dièse",
            "dollar",
            "livre",
            "degrés",
        ],
        Language::De => ["und", "at", "prozent", "raute", "dollar", "pfund", "grad"],
        Language::Pt => [
            "e",
            "arroba",
            "por cento",
            "cardinal",
            "dólar",
            "libra",
            "graus",
        ],
        Language::It => [
            "e",
            "chiocciola",
            "per cento",
            "cancelletto",
            "dollaro",
            "sterlina",
            "gradi",
        ],
        Language::Pl => [
            "i", "małpa", "procent", "krzyżyk", "dolar", "funt", "stopnie",
        ],
        Language::Ar => ["و", "على", "في المئة", "رقم", "دولار", "جنيه", "درجة"],
        Language::Zh => ["和", "在", "百分之", "号", "美元", "英镑", "度"],
        Language::Cs => ["a", "na", "procento", "křížek", "dolar", "libra", "stupně"],
        Language::Ru => [
            "и",
            "собака",
            "процентов",
            "номер",
            "доллар",
            "фунт",
            "градус",
        ],
        Language::Nl => ["en", "bij", "procent", "hekje", "dollar", "pond", "graden"],
        Language::Tr => ["ve", "at", "yüzde", "diyez", "dolar", "sterlin", "derece"],
        Language::Hu => [
            "és",
            "kukac",
            "százalék",
            "kettőskereszt",
            "dollár",
            "font",
            "fok",
        ],
        Language::Ko => ["그리고", "에", "퍼센트", "번호", "달러", "파운드", "도"],
        Language::Ja | Language::Hi => return None,
    })
}

const SYMBOL_CHARS: [char; 7] = ['&', '@', '%', '#', '$', '£', '°'];

/// One compiled abbreviation pattern per (language, entry), built on first use.
static ABBREVIATION_RES: LazyLock<Vec<(Language, Regex, &'static str)>> = LazyLock::new(|| {
    let mut out = Vec::new();
    for lang in Language::ALL {
        for &(abbr, full) in abbreviations(lang) {
            let pattern = if lang == Language::Ru {
                format!(r"(?i)\b{}\b", regex::escape(abbr))
            } else {
                format!(r"(?i)\b{}\.", regex::escape(abbr))
            };
            if let Ok(re) = Regex::new(&pattern) {
                out.push((lang, re, full));
            }
        }
    }
    out
});

/// `expand_abbreviations_multilingual`.
pub fn expand_abbreviations(text: &str, lang: Language) -> String {
    let mut t = text.to_string();
    for (l, re, full) in ABBREVIATION_RES.iter() {
        if *l == lang {
            t = re.replace_all(&t, *full).into_owned();
        }
    }
    t
}

/// `expand_symbols_multilingual` (None: the language has no table; the text stays as is).
pub fn expand_symbols(text: &str, lang: Language) -> Option<String> {
    let words = symbols(lang)?;
    let mut t = text.to_string();
    for (sym, word) in SYMBOL_CHARS.iter().zip(words) {
        t = t.replace(*sym, &format!(" {word} "));
        t = t.replace("  ", " ");
    }
    Some(t.trim().to_string())
}

/// Runs of whitespace to one space (`collapse_whitespace`).
pub fn collapse_whitespace(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_ws = false;
    for ch in text.chars() {
        if ch.is_whitespace() {
            if !in_ws {
                out.push(' ');
            }
            in_ws = true;
        } else {
            out.push(ch);
            in_ws = false;
        }
    }
    out
}

/// `multilingual_cleaners(text, lang)`: `"` removed, Turkish `İ Ö Ü` mapped (Turkish only),
/// lowercase, numbers spelled out (see [`expand_numbers`]), abbreviations and symbols expanded,
/// whitespace collapsed.
pub fn multilingual_clean(text: &str, lang: Language) -> String {
    let mut t = text.replace('"', "");
    if lang == Language::Tr {
        t = t.replace('İ', "i").replace('Ö', "ö").replace('Ü', "ü");
    }
    t = t.to_lowercase();
    if let Some(expanded) = expand_numbers(&t, lang) {
        t = expanded;
    }
    t = expand_abbreviations(&t, lang);
    if let Some(expanded) = expand_symbols(&t, lang) {
        t = expanded;
    }
    collapse_whitespace(&t)
}

/// `basic_cleaners`: lowercase, whitespace collapsed (Hindi).
pub fn basic_clean(text: &str) -> String {
    collapse_whitespace(&text.to_lowercase())
}
