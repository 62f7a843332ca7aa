//! Arabic number words as `num2words(lang="ar")`: three-digit groups joined with `و`, dual and
//! plural group words (`ألفان`, `آلاف`), feminine forms for ordinals below 100 and for
//! fractions, decimals after a `,` (as num2words spaces them), and amounts in riyal (num2words'
//! Arabic currency is the Saudi riyal whatever the symbol, so `$1` reads `واحد ريال`).

use std::sync::LazyLock;

use regex::Regex;

use super::{re, Currency, NumberWords};

const ONES: [&str; 20] = [
    "",
    "واحد",
    "اثنان",
    "ثلاثة",
    "أربعة",
    "خمسة",
    "ستة",
    "سبعة",
    "ثمانية",
    "تسعة",
    "عشرة",
    "أحد عشر",
    "اثنا عشر",
    "ثلاثة عشر",
    "أربعة عشر",
    "خمسة عشر",
    "ستة عشر",
    "سبعة عشر",
    "ثمانية عشر",
    "تسعة عشر",
];
const FEMININE_ONES: [&str; 20] = [
    "",
    "إحدى",
    "اثنتان",
    "ثلاث",
    "أربع",
    "خمس",
    "ست",
    "سبع",
    "ثمان",
    "تسع",
    "عشر",
    "إحدى عشرة",
    "اثنتا عشرة",
    "ثلاث عشرة",
    "أربع عشرة",
    "خمس عشرة",
    "ست عشرة",
    "سبع عشرة",
    "ثماني عشرة",
    "تسع عشرة",
];
const ORDINAL: [&str; 20] = [
    "",
    "اول",
    "ثاني",
    "ثالث",
    "رابع",
    "خامس",
    "سادس",
    "سابع",
    "ثامن",
    "تاسع",
    "عاشر",
    "حادي عشر",
    "ثاني عشر",
    "ثالث عشر",
    "رابع عشر",
    "خامس عشر",
    "سادس عشر",
    "سابع عشر",
    "ثامن عشر",
    "تاسع عشر",
];
const TENS: [&str; 8] = [
    "عشرون",
    "ثلاثون",
    "أربعون",
    "خمسون",
    "ستون",
    "سبعون",
    "ثمانون",
    "تسعون",
];
const HUNDREDS: [&str; 10] = [
    "",
    "مائة",
    "مئتان",
    "ثلاثمائة",
    "أربعمائة",
    "خمسمائة",
    "ستمائة",
    "سبعمائة",
    "ثمانمائة",
    "تسعمائة",
];
const APPENDED_TWOS: [&str; 13] = [
    "مئتا",
    "ألفا",
    "مليونا",
    "مليارا",
    "تريليونا",
    "كوادريليونا",
    "كوينتليونا",
    "سكستيليونا",
    "سبتيليونا",
    "أوكتيليونا ",
    "نونيليونا",
    "ديسيليونا",
    "أندسيليونا",
];
const TWOS: [&str; 13] = [
    "مئتان",
    "ألفان",
    "مليونان",
    "ملياران",
    "تريليونان",
    "كوادريليونان",
    "كوينتليونان",
    "سكستيليونان",
    "سبتيليونان",
    "أوكتيليونان ",
    "نونيليونان ",
    "ديسيليونان",
    "أندسيليونان",
];
const GROUP: [&str; 13] = [
    "مائة",
    "ألف",
    "مليون",
    "مليار",
    "تريليون",
    "كوادريليون",
    "كوينتليون",
    "سكستيليون",
    "سبتيليون",
    "أوكتيليون",
    "نونيليون",
    "ديسيليون",
    "أندسيليون",
];
const APPENDED_GROUP: [&str; 13] = [
    "",
    "ألفاً",
    "مليوناً",
    "ملياراً",
    "تريليوناً",
    "كوادريليوناً",
    "كوينتليوناً",
    "سكستيليوناً",
    "سبتيليوناً",
    "أوكتيليوناً",
    "نونيليوناً",
    "ديسيليوناً",
    "أندسيليوناً",
];
const PLURAL_GROUP: [&str; 13] = [
    "",
    "آلاف",
    "ملايين",
    "مليارات",
    "تريليونات",
    "كوادريليونات",
    "كوينتليونات",
    "سكستيليونات",
    "سبتيليونات",
    "أوكتيليونات",
    "نونيليونات",
    "ديسيليونات",
    "أندسيليونات",
];

/// The converter's settings for one call (num2words keeps them on the converter).
struct Mode {
    /// Masculine or feminine units in the lowest group (`isCurrencyNameFeminine`).
    feminine: bool,
    /// Unit words by count (one, two, 3-10, 11-99).
    unit: [&'static str; 4],
    /// Hundredth words by count.
    sub: [&'static str; 4],
    /// Between the integer and the fraction.
    separator: &'static str,
}

/// `digit_feminine_status`.
fn digit(d: usize, level: i32, mode: &Mode) -> &'static str {
    if level == -1 || (level == 0 && mode.feminine) {
        FEMININE_ONES[d]
    } else {
        ONES[d]
    }
}

/// `process_arabic_group` of a group `g` at `level` (-1: the fraction).
fn group_words(g: u128, level: i32, integer: u128, mode: &Mode) -> Option<String> {
    let tens = (g % 100) as usize;
    let h = (g / 100) as usize;
    let mut out = String::new();
    if h > 0 {
        if tens == 0 && h == 2 {
            out = APPENDED_TWOS[0].into();
        } else {
            out = HUNDREDS[h].into();
            if tens != 0 {
                out.push_str(" و ");
            }
        }
    }
    if tens > 0 {
        if tens < 20 {
            if tens == 2 && h == 0 && level > 0 {
                let lv = usize::try_from(level).ok()?;
                let pow = integer.checked_ilog10()?;
                out = if integer > 10 && pow % 3 == 0 && integer == 2 * 10u128.pow(pow) {
                    APPENDED_TWOS.get(lv)?.to_string()
                } else {
                    TWOS.get(lv)?.to_string()
                };
            } else if tens == 1 && level > 0 {
                out.push_str(GROUP.get(usize::try_from(level).ok()?)?);
            } else {
                out.push_str(digit(tens, level, mode));
            }
        } else {
            let ones = tens % 10;
            if ones > 0 {
                out.push_str(digit(ones, level, mode));
            }
            if !out.is_empty() && ones != 0 {
                out.push_str(" و ");
            }
            out.push_str(TENS[tens / 10 - 2]);
        }
    }
    Some(out)
}

/// The count form of `n` (`remaining100` rules).
fn count_form(n: u128, whole: u128, forms: &[&'static str; 4]) -> &'static str {
    match n % 100 {
        0 | 1 => forms[0],
        2 if whole == 2 => forms[1],
        2 => forms[0],
        3..=10 => forms[2],
        _ => forms[3],
    }
}

/// `convert_to_arabic` of an integer part and a two-digit fraction.
fn convert(integer: u128, fraction: u128, mode: &Mode) -> Option<String> {
    if integer == 0 && fraction == 0 {
        return Some("صفر".into());
    }
    let decimal = group_words(fraction, -1, integer, mode)?;
    let mut out = String::new();
    let mut rest = integer;
    let mut level = 0i32;
    while rest > 0 {
        let g = rest % 1000;
        rest /= 1000;
        let desc = group_words(g, level, integer, mode)?;
        if !desc.is_empty() {
            if level > 0 {
                let lv = usize::try_from(level).ok()?;
                if !out.is_empty() {
                    out = format!("و {out}");
                }
                if g != 2 && g != 1 {
                    if g % 100 != 1 {
                        if (3..=10).contains(&g) {
                            out = format!("{} {out}", PLURAL_GROUP.get(lv)?);
                        } else if !out.is_empty() {
                            out = format!("{} {out}", APPENDED_GROUP.get(lv)?);
                        } else {
                            out = format!("{} {out}", GROUP.get(lv)?);
                        }
                    } else {
                        out = format!("{} {out}", GROUP.get(lv)?);
                    }
                }
            }
            out = format!("{desc} {out}");
        }
        level += 1;
    }
    if integer != 0 {
        out.push_str(count_form(integer, integer, &mode.unit));
    }
    if fraction != 0 {
        out.push_str(&format!(" {} {decimal} ", mode.separator));
        out.push_str(count_form(fraction, 0, &mode.sub));
    }
    Some(out)
}

/// `Num2Word_AR.to_str` then `extract_integer_and_decimal_parts`: the integer part and the first
/// two digits of the fraction (rounded to 9 digits first).
fn split(v: f64) -> Option<(u128, u128)> {
    if !v.is_finite() || !(0.0..1e30).contains(&v) {
        return None;
    }
    let integer = v.trunc();
    let nine = ((v - integer) * 1e9).round_ties_even() as u128;
    Some((integer as u128, nine / 10_000_000))
}

const NO_UNIT: [&str; 4] = [""; 4];

/// `num2words(n, lang="ar")`.
pub(super) fn cardinal(n: u128) -> Option<String> {
    let mode = Mode {
        feminine: false,
        unit: NO_UNIT,
        sub: NO_UNIT,
        separator: ",",
    };
    Some(convert(n, 0, &mode)?.trim().to_string())
}

/// `num2words(x, lang="ar")` of a float.
pub(super) fn float(v: f64) -> Option<String> {
    let (i, f) = split(v)?;
    let mode = Mode {
        feminine: false,
        unit: NO_UNIT,
        sub: NO_UNIT,
        separator: ",",
    };
    Some(convert(i, f, &mode)?.trim().to_string())
}

/// `num2words(n, lang="ar", ordinal=True)`.
pub(super) fn ordinal(n: u128) -> Option<String> {
    if n <= 19 {
        return Some(ORDINAL[n as usize].to_string());
    }
    let mode = Mode {
        feminine: n < 100,
        unit: NO_UNIT,
        sub: NO_UNIT,
        separator: ",",
    };
    Some(convert(n, 0, &mode)?.trim().to_string())
}

/// `num2words(amount, to="currency", lang="ar")`: riyal and halala.
pub(super) fn currency(amount: f64) -> Option<String> {
    let (i, f) = split(amount)?;
    let mode = Mode {
        feminine: false,
        unit: ["ريال", "ريالان", "ريالات", "ريالاً"],
        sub: ["هللة", "هللتان", "هللات", "هللة"],
        separator: "و",
    };
    convert(i, f, &mode)
}

/// num2words' Arabic (`Num2Word_AR`).
pub(super) struct Arabic;

/// `1ون`, `1ين`, `1ث`, `1ر`, `1ى`.
static ORDINAL_SUFFIX: LazyLock<Regex> = LazyLock::new(|| re(r"([0-9]+)(ون|ين|ث|ر|ى)"));

impl NumberWords for Arabic {
    fn cardinal(&self, n: u128) -> Option<String> {
        cardinal(n)
    }

    fn ordinal(&self, n: u128) -> Option<String> {
        ordinal(n)
    }

    fn float(&self, v: f64) -> Option<String> {
        float(v)
    }

    /// Every currency reads as the reference's Arabic default.
    fn currency(&self, amount: f64, _: u128, _: u128, _: Currency) -> Option<String> {
        currency(amount)
    }

    fn ordinal_regex(&self) -> &'static Regex {
        &ORDINAL_SUFFIX
    }
}
