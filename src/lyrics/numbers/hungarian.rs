//! Hungarian number words as `num2words(lang="hu")`: `két` before multipliers, hyphens after
//! thousands above 2000, decimals as fractions (`öt tized`), ordinals by suffix (`harmadik`).

use std::sync::LazyLock;

use regex::Regex;

use super::{re, Currency, NumberWords};

const LOW: [&str; 30] = [
    "nulla",
    "egy",
    "kettő",
    "három",
    "négy",
    "öt",
    "hat",
    "hét",
    "nyolc",
    "kilenc",
    "tíz",
    "tizenegy",
    "tizenkettő",
    "tizenhárom",
    "tizennégy",
    "tizenöt",
    "tizenhat",
    "tizenhét",
    "tizennyolc",
    "tizenkilenc",
    "húsz",
    "huszonegy",
    "huszonkettő",
    "huszonhárom",
    "huszonnégy",
    "huszonöt",
    "huszonhat",
    "huszonhét",
    "huszonnyolc",
    "huszonkilenc",
];

/// The number word of a card value (`self.cards[v]`).
fn card(v: u128) -> Option<&'static str> {
    Some(match v {
        0..=29 => LOW[v as usize],
        30 => "harminc",
        40 => "negyven",
        50 => "ötven",
        60 => "hatvan",
        70 => "hetven",
        80 => "nyolcvan",
        90 => "kilencven",
        100 => "száz",
        1000 => "ezer",
        1_000_000 => "millió",
        1_000_000_000 => "milliárd",
        1_000_000_000_000 => "billió",
        1_000_000_000_000_000 => "billiárd",
        1_000_000_000_000_000_000 => "trillió",
        1_000_000_000_000_000_000_000 => "trilliárd",
        _ => return None,
    })
}

/// `Num2Word_HU.to_cardinal(value, zero)`.
fn cardinal_with(v: u128, zero: &str) -> Option<String> {
    Some(if v == 0 {
        zero.to_string()
    } else if zero.is_empty() && v == 2 {
        "két".into()
    } else if v < 30 {
        LOW[v as usize].into()
    } else if v < 100 {
        match card(v) {
            Some(w) => w.into(),
            None => format!("{}{}", card(v / 10 * 10)?, cardinal(v % 10)?),
        }
    } else if v < 1000 {
        let h = v / 100;
        let prefix = if h == 1 {
            "száz".to_string()
        } else {
            format!("{}száz", cardinal_with(h, "")?)
        };
        format!("{prefix}{}", cardinal_with(v % 100, "")?)
    } else if v < 1_000_000 {
        let th = v / 1000;
        let prefix = if th == 1 {
            "ezer".to_string()
        } else {
            format!("{}ezer", cardinal_with(th, "")?)
        };
        let postfix = cardinal_with(v % 1000, "")?;
        let dash = if v <= 2000 || postfix.is_empty() {
            ""
        } else {
            "-"
        };
        format!("{prefix}{dash}{postfix}")
    } else {
        let mut digits = v.to_string().len() as u32;
        if digits.is_multiple_of(3) {
            digits -= 2;
        }
        let exp = 10u128.pow(digits / 3 * 3);
        let rest = cardinal_with(v % exp, "")?;
        let rest = if rest.is_empty() {
            rest
        } else {
            format!("-{rest}")
        };
        format!("{}{}{rest}", cardinal_with(v / exp, "")?, card(exp)?)
    })
}

/// `Num2Word_HU.to_cardinal` of an integer.
pub(super) fn cardinal(v: u128) -> Option<String> {
    cardinal_with(v, "nulla")
}

/// `Num2Word_HU.to_ordinal`.
pub(super) fn ordinal(v: u128) -> Option<String> {
    const PARTIAL: [(&str, &str); 23] = [
        ("nulla", "nullad"),
        ("egy", "egyed"),
        ("kettő", "ketted"),
        ("három", "harmad"),
        ("négy", "negyed"),
        ("öt", "ötöd"),
        ("hat", "hatod"),
        ("hét", "heted"),
        ("nyolc", "nyolcad"),
        ("kilenc", "kilenced"),
        ("tíz", "tized"),
        ("húsz", "huszad"),
        ("harminc", "harmincad"),
        ("negyven", "negyvened"),
        ("ötven", "ötvened"),
        ("hatvan", "hatvanad"),
        ("hetven", "hetvened"),
        ("nyolcvan", "nyolcvanad"),
        ("kilencven", "kilencvened"),
        ("száz", "század"),
        ("ezer", "ezred"),
        ("illió", "milliomod"),
        ("illiárd", "milliárdod"),
    ];
    match v {
        1 => return Some("első".into()),
        2 => return Some("második".into()),
        _ => {}
    }
    let mut out = cardinal(v)?;
    if let Some((k, o)) = PARTIAL.iter().find(|(k, _)| out.ends_with(k)) {
        out = format!("{}{o}", &out[..out.len() - k.len()]);
    }
    Some(format!("{out}ik"))
}

/// `Num2Word_HU.to_cardinal_float`: "<int> egész <fraction> <tized|század|ezred>"; None where
/// num2words raises (four or more fraction digits).
pub(super) fn float(v: f64) -> Option<String> {
    if !v.is_finite() || v < 0.0 {
        return None;
    }
    if v.fract() == 0.0 {
        return cardinal(v as u128);
    }
    if !(1e-4..1e16).contains(&v) {
        return None;
    }
    let repr = format!("{v}");
    let (left, right) = repr.split_once('.')?;
    let denominator = match right.len() {
        1 => "tized",
        2 => "század",
        3 => "ezred",
        _ => return None,
    };
    Some(format!(
        "{} egész {} {denominator}",
        cardinal(left.parse().ok()?)?,
        cardinal(right.parse().ok()?)?
    ))
}

/// num2words' Hungarian (`Num2Word_HU`).
pub(super) struct Hungarian;

/// `1.`, `1adik`, `1edik`, `1odik`, `1ödik`, `1ödike`, `1ik`.
static ORDINAL_SUFFIX: LazyLock<Regex> =
    LazyLock::new(|| re(r"([0-9]+)(\.|adik|edik|odik|edik|ödik|ödike|ik)"));

impl NumberWords for Hungarian {
    fn cardinal(&self, n: u128) -> Option<String> {
        cardinal(n)
    }

    fn ordinal(&self, n: u128) -> Option<String> {
        ordinal(n)
    }

    fn float(&self, v: f64) -> Option<String> {
        float(v)
    }

    /// num2words' base (English) currency forms over the Hungarian numbers.
    fn currency(&self, amount: f64, whole: u128, cents: u128, c: Currency) -> Option<String> {
        let forms = super::base_currency_forms(c);
        let full = forms.words(whole, cents, cardinal, super::plural_of)?;
        Some(forms.cut_integral(full, amount))
    }

    fn ordinal_regex(&self) -> &'static Regex {
        &ORDINAL_SUFFIX
    }
}
