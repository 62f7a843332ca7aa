//! Turkish number words as `num2words(lang="tr")`: written as one word (`bindokuzyüzseksenbeş`),
//! `yüz` and `bin` without `bir`, ordinals on the last component (`ikiyüzüncü`). The reference
//! skips decimals for Turkish and num2words' Turkish currency call raises (amounts are left).

use std::sync::LazyLock;

use regex::Regex;

use super::{re, Currency, NumberWords};

const ONES: [&str; 10] = [
    "", "bir", "iki", "üç", "dört", "beş", "altı", "yedi", "sekiz", "dokuz",
];
const ONES_ORD: [&str; 10] = [
    "",
    "birinci",
    "ikinci",
    "üçüncü",
    "dördüncü",
    "beşinci",
    "altıncı",
    "yedinci",
    "sekizinci",
    "dokuzuncu",
];
const TENS: [&str; 10] = [
    "", "on", "yirmi", "otuz", "kırk", "elli", "altmış", "yetmiş", "seksen", "doksan",
];
const TENS_ORD: [&str; 10] = [
    "",
    "onuncu",
    "yirminci",
    "otuzuncu",
    "kırkıncı",
    "ellinci",
    "altmışıncı",
    "yetmişinci",
    "sekseninci",
    "doksanıncı",
];
const TRIPLETS: [&str; 7] = [
    "",
    "bin",
    "milyon",
    "milyar",
    "trilyon",
    "katrilyon",
    "kentilyon",
];
const TRIPLETS_ORD: [&str; 7] = [
    "",
    "bininci",
    "milyonuncu",
    "milyarıncı",
    "trilyonuncu",
    "katrilyonuncu",
    "kentilyon",
];

/// A group of three digits.
fn group(g: u128) -> String {
    let (h, t, o) = (
        (g / 100) as usize,
        (g / 10 % 10) as usize,
        (g % 10) as usize,
    );
    let hundreds = match h {
        0 => String::new(),
        1 => "yüz".into(),
        _ => format!("{}yüz", ONES[h]),
    };
    format!("{hundreds}{}{}", TENS[t], ONES[o])
}

/// `num2words(n, lang="tr")`; None past num2words' maximum (10^21 - 1).
pub(super) fn cardinal(n: u128) -> Option<String> {
    if n == 0 {
        return Some("sıfır".into());
    }
    if n >= 10u128.pow(21) {
        return None;
    }
    let mut out = String::new();
    for level in (0..7).rev() {
        let g = n / 1000u128.pow(level as u32) % 1000;
        if g == 0 {
            continue;
        }
        if level == 1 && g == 1 {
            out.push_str("bin");
        } else {
            out.push_str(&group(g));
            out.push_str(TRIPLETS[level]);
        }
    }
    Some(out)
}

/// `num2words(n, lang="tr", ordinal=True)`: the last nonzero component in its ordinal form.
pub(super) fn ordinal(n: u128) -> Option<String> {
    if n == 0 {
        return Some("sıfırıncı".into());
    }
    if n >= 10u128.pow(21) {
        return None;
    }
    let mut p = 0u32;
    while (n / 10u128.pow(p)).is_multiple_of(10) {
        p += 1;
    }
    let digit = (n / 10u128.pow(p) % 10) as usize;
    let (level, q) = ((p / 3) as usize, p % 3);
    if level > 0 {
        let card = cardinal(n)?;
        let stem = card.strip_suffix(TRIPLETS[level])?;
        return Some(format!("{stem}{}", TRIPLETS_ORD[level]));
    }
    let rest = n - digit as u128 * 10u128.pow(p);
    let head = if rest == 0 {
        String::new()
    } else {
        cardinal(rest)?
    };
    Some(match q {
        0 => format!("{head}{}", ONES_ORD[digit]),
        1 => format!("{head}{}", TENS_ORD[digit]),
        _ => {
            let mult = if digit > 1 { ONES[digit] } else { "" };
            format!("{head}{mult}yüzüncü")
        }
    })
}

/// num2words' Turkish (`Num2Word_TR`).
pub(super) struct Turkish;

/// `1.`, `1inci`, `1nci`, `1uncu`, `1üncü`.
static ORDINAL_SUFFIX: LazyLock<Regex> =
    LazyLock::new(|| re(r"([0-9]+)(\.|inci|nci|uncu|üncü|\.)"));

impl NumberWords for Turkish {
    fn cardinal(&self, n: u128) -> Option<String> {
        cardinal(n)
    }

    fn ordinal(&self, n: u128) -> Option<String> {
        ordinal(n)
    }

    /// Not reached (Turkish decimals are not spelled): the base rule, as num2words.
    fn float(&self, v: f64) -> Option<String> {
        super::float_words(v, "point", cardinal)
    }

    /// `Num2Word_TR.to_currency` takes no currency argument: the reference's call raises.
    fn currency(&self, _: f64, _: u128, _: u128, _: Currency) -> Option<String> {
        None
    }

    fn ordinal_regex(&self) -> &'static Regex {
        &ORDINAL_SUFFIX
    }

    fn spells_decimals(&self) -> bool {
        false
    }
}
