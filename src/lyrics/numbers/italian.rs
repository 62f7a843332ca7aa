//! Italian number words as `num2words(lang="it")`, which builds them by digit groups with
//! phonetic contractions (`ventotto`, `centuno`) and the accented final `tré`, rather than by
//! the split-and-merge of the other languages.

use std::sync::LazyLock;

use regex::Regex;

use super::{re, Currency, NumberWords};

const CARDINAL: [&str; 20] = [
    "zero",
    "uno",
    "due",
    "tre",
    "quattro",
    "cinque",
    "sei",
    "sette",
    "otto",
    "nove",
    "dieci",
    "undici",
    "dodici",
    "tredici",
    "quattordici",
    "quindici",
    "sedici",
    "diciassette",
    "diciotto",
    "diciannove",
];
const ORDINAL: [&str; 20] = [
    "zero",
    "primo",
    "secondo",
    "terzo",
    "quarto",
    "quinto",
    "sesto",
    "settimo",
    "ottavo",
    "nono",
    "decimo",
    "undicesimo",
    "dodicesimo",
    "tredicesimo",
    "quattordicesimo",
    "quindicesimo",
    "sedicesimo",
    "diciassettesimo",
    "diciottesimo",
    "diciannovesimo",
];
const EXPONENT_PREFIXES: [&str; 11] = [
    "zero", "m", "b", "tr", "quadr", "quint", "sest", "sett", "ott", "nov", "dec",
];

fn omit_if_zero(s: String) -> String {
    if s == "zero" {
        String::new()
    } else {
        s
    }
}

fn contraction(s: &str) -> String {
    s.replace("oo", "o")
        .replace("ao", "o")
        .replace("io", "o")
        .replace("au", "u")
        .replace("iu", "u")
}

/// The final `tre` of every word of more than three letters becomes `tré`.
fn accentuate(s: &str) -> String {
    s.split_whitespace()
        .map(|w| {
            let n = w.chars().count();
            if w.ends_with("tre") && n > 3 {
                let plain = w.replace("tré", "tre");
                let keep: String = plain.chars().take(plain.chars().count() - 3).collect();
                format!("{keep}tré")
            } else {
                w.replace("tré", "tre")
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn tens(n: u128) -> String {
    let (t, u) = ((n / 10) as usize, (n % 10) as usize);
    let prefix = match t {
        2 => "venti".to_string(),
        3 => "trenta".into(),
        4 => "quaranta".into(),
        6 => "sessanta".into(),
        _ => {
            let w = CARDINAL[t];
            format!("{}anta", &w[..w.len() - 1])
        }
    };
    contraction(&format!(
        "{prefix}{}",
        omit_if_zero(CARDINAL[u].to_string())
    ))
}

fn hundreds(n: u128) -> Option<String> {
    let h = (n / 100) as usize;
    let prefix = if h == 1 {
        "cento".to_string()
    } else {
        format!("{}cento", CARDINAL[h])
    };
    Some(contraction(&format!(
        "{prefix}{}",
        omit_if_zero(cardinal(n % 100)?)
    )))
}

fn thousands(n: u128) -> Option<String> {
    let th = n / 1000;
    let prefix = if th == 1 {
        "mille".to_string()
    } else {
        format!("{}mila", cardinal(th)?)
    };
    Some(format!("{prefix}{}", omit_if_zero(cardinal(n % 1000)?)))
}

fn big(n: u128) -> Option<String> {
    let digits = n.to_string();
    let len = digits.len();
    let pre = if len.is_multiple_of(3) { 3 } else { len % 3 };
    let (multiplier, exponent) = digits.split_at(pre);
    let e = exponent.len();
    let mut infix = format!(
        "{}{}",
        EXPONENT_PREFIXES.get(e / 6)?,
        if e % 6 == 0 { "ilione" } else { "iliardo" }
    );
    let prefix = if multiplier == "1" {
        "un ".to_string()
    } else {
        infix = format!(" {}i", &infix[..infix.len() - 1]);
        cardinal(multiplier.parse().ok()?)?
    };
    let postfix = if exponent.chars().all(|c| c == '0') {
        String::new()
    } else {
        let p = cardinal(exponent.parse().ok()?)?;
        infix.push_str(if p.contains(" e ") { ", " } else { " e " });
        p
    };
    Some(format!("{prefix}{infix}{postfix}"))
}

/// `Num2Word_IT.to_cardinal` of an integer.
pub(super) fn cardinal(n: u128) -> Option<String> {
    let s = if n < 20 {
        CARDINAL[n as usize].to_string()
    } else if n < 100 {
        tens(n)
    } else if n < 1000 {
        hundreds(n)?
    } else if n < 1_000_000 {
        thousands(n)?
    } else {
        big(n)?
    };
    Some(accentuate(&s))
}

/// `Num2Word_IT.to_ordinal`.
pub(super) fn ordinal(n: u128) -> Option<String> {
    let t = n % 100;
    let outside_teens = !(10 < t && t < 20);
    if n < 20 {
        return Some(ORDINAL[n as usize].to_string());
    }
    let card = cardinal(n)?;
    let drop_last = |s: &str| -> String {
        let k = s.chars().count();
        s.chars().take(k.saturating_sub(1)).collect()
    };
    Some(if outside_teens && t % 10 == 3 {
        format!("{}eesimo", drop_last(&card))
    } else if outside_teens && t % 10 == 6 {
        format!("{card}esimo")
    } else {
        let mut s = drop_last(&card);
        if s.ends_with("mil") {
            s.push('l');
        }
        format!("{s}esimo")
    })
}

/// `Num2Word_IT.float_to_words`: the integer part, "virgola", each digit of Python's `str` of
/// the float (so `3.0` reads "tre virgola zero"); None where Python's `str` uses an exponent.
pub(super) fn float(v: f64) -> Option<String> {
    let (_, frac) = super::python_float_parts(v)?;
    let digits = frac
        .chars()
        .map(|c| cardinal(u128::from(c.to_digit(10)?)))
        .collect::<Option<Vec<_>>>()?;
    Some(accentuate(&format!(
        "{} virgola {}",
        cardinal(v.trunc() as u128)?,
        digits.join(" ")
    )))
}

/// num2words' Italian (`Num2Word_IT`).
pub(super) struct Italian;

/// `1º`, `1°`, `1ª`, `1o`, `1a`, `1i`, `1e`.
static ORDINAL_SUFFIX: LazyLock<Regex> = LazyLock::new(|| re(r"([0-9]+)(º|°|ª|o|a|i|e)"));

impl NumberWords for Italian {
    fn cardinal(&self, n: u128) -> Option<String> {
        cardinal(n)
    }

    fn ordinal(&self, n: u128) -> Option<String> {
        ordinal(n)
    }

    fn float(&self, v: f64) -> Option<String> {
        float(v)
    }

    fn currency(&self, amount: f64, whole: u128, cents: u128, c: Currency) -> Option<String> {
        let (forms, separator, cut) = match c {
            Currency::Eur => ((("euro", "euro"), ("centesimo", "centesimi")), " e", " e "),
            Currency::Gbp => ((("sterlina", "sterline"), ("penny", "penny")), " e", " e "),
            Currency::Usd => (
                (("dollaro", "dollari"), ("centesimo", "centesimi")),
                " e",
                " e ",
            ),
        };
        let forms = super::CurrencyForms {
            forms,
            separator,
            cut,
        };
        let mut full = forms.words(whole, cents, cardinal, super::plural_of)?;
        // "una sterlina"; "un" for "uno" everywhere, as `Num2Word_IT.to_currency`.
        if matches!(c, Currency::Gbp) && full.split(' ').next() == Some("uno") {
            full = full.replacen("uno", "una", 1);
        }
        let full = full.replace("uno", "un");
        Some(forms.cut_integral(full, amount))
    }

    fn ordinal_regex(&self) -> &'static Regex {
        &ORDINAL_SUFFIX
    }
}
