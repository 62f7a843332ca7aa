//! Spelling out numbers in a lyric line, as the reference's `expand_numbers_multilingual` (which
//! calls the `num2words` package): thousands separators removed, currency amounts
//! (`$ £ €`), decimals, ordinals (`1st`, `21st`), then cardinals.
//!
//! English is implemented, word for word as `num2words(lang="en")`; for the other languages
//! [`expand_numbers`] returns `None` and the caller leaves digits as they are (a known difference
//! from the reference, listed in the README).

use std::sync::LazyLock;

use regex::{Captures, Regex};

use super::Language;

fn re(pattern: &str) -> Regex {
    // The patterns are constants of this file; a typo is a programming error caught by tests.
    Regex::new(pattern).unwrap_or_else(|e| panic!("bad built-in pattern {pattern}: {e}"))
}

static COMMA_NUMBER: LazyLock<Regex> = LazyLock::new(|| re(r"\b\d{1,3}(,\d{3})*(\.\d+)?\b"));
static DOT_NUMBER: LazyLock<Regex> = LazyLock::new(|| re(r"\b\d{1,3}(.\d{3})*(\,\d+)?\b"));
static GBP: LazyLock<Regex> = LazyLock::new(|| re(r"((£[0-9\.\,]*[0-9]+)|([0-9\.\,]*[0-9]+£))"));
static USD: LazyLock<Regex> = LazyLock::new(|| re(r"((\$[0-9\.\,]*[0-9]+)|([0-9\.\,]*[0-9]+\$))"));
static EUR: LazyLock<Regex> = LazyLock::new(|| re(r"(([0-9\.\,]*[0-9]+€)|((€[0-9\.\,]*[0-9]+)))"));
static DECIMAL: LazyLock<Regex> = LazyLock::new(|| re(r"([0-9]+[.,][0-9]+)"));
static ORDINAL_EN: LazyLock<Regex> = LazyLock::new(|| re(r"([0-9]+)(st|nd|rd|th)"));
static NUMBER: LazyLock<Regex> = LazyLock::new(|| re(r"[0-9]+"));

/// Replaces every match of `re` in `text` by `f(match)`; None (text unchanged) if any `f` fails,
/// as a Python `re.sub` whose callback raises.
fn try_replace(
    re: &Regex,
    text: &str,
    mut f: impl FnMut(&Captures<'_>) -> Option<String>,
) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for caps in re.captures_iter(text) {
        let m = caps.get(0)?;
        out.push_str(&text[last..m.start()]);
        out.push_str(&f(&caps)?);
        last = m.end();
    }
    out.push_str(&text[last..]);
    Some(out)
}

/// The number expansion of `text` (already lowercased) in `lang`; None where not implemented
/// (every language but English) or where the reference would raise (it then keeps the text).
pub fn expand_numbers(text: &str, lang: Language) -> Option<String> {
    if lang != Language::En {
        return None;
    }
    let num = English;
    let mut t = if matches!(lang, Language::En | Language::Ru) {
        COMMA_NUMBER
            .replace_all(text, |c: &Captures<'_>| c[0].replace(',', ""))
            .into_owned()
    } else {
        DOT_NUMBER
            .replace_all(text, |c: &Captures<'_>| c[0].replace('.', ""))
            .into_owned()
    };
    // The three currencies in turn; a failure stops the rest, keeping what was done.
    for (re, currency) in [
        (&*GBP, Currency::Gbp),
        (&*USD, Currency::Usd),
        (&*EUR, Currency::Eur),
    ] {
        match try_replace(re, &t, |c| num.currency_text(&c[0], currency)) {
            Some(next) => t = next,
            None => break,
        }
    }
    if lang != Language::Tr {
        t = try_replace(&DECIMAL, &t, |c| num.decimal(&c[1]))?;
    }
    t = try_replace(&ORDINAL_EN, &t, |c| num.ordinal(c[1].parse().ok()?))?;
    try_replace(&NUMBER, &t, |c| num.cardinal(c[0].parse().ok()?))
}

/// The currencies the reference spells out.
#[derive(Clone, Copy)]
enum Currency {
    Usd,
    Gbp,
    Eur,
}

/// `num2words` in English.
struct English;

const LOW: [&str; 21] = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
    "twenty",
];
const TENS: [&str; 10] = [
    "", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
];
const SCALES: [&str; 11] = [
    "thousand",
    "million",
    "billion",
    "trillion",
    "quadrillion",
    "quintillion",
    "sextillion",
    "septillion",
    "octillion",
    "nonillion",
    "decillion",
];

impl English {
    /// The largest named unit <= n and its word.
    fn unit(n: u128) -> (u128, String) {
        if n <= 20 {
            return (n, LOW[n as usize].to_string());
        }
        if n < 100 {
            let t = n / 10 * 10;
            return (t, TENS[(n / 10) as usize].to_string());
        }
        if n < 1000 {
            return (100, "hundred".into());
        }
        let mut unit = 1000u128;
        let mut i = 0;
        while i + 1 < SCALES.len() && unit * 1000 <= n {
            unit *= 1000;
            i += 1;
        }
        (unit, SCALES[i].to_string())
    }

    /// `Num2Word_EN.merge` of two (text, value) pairs.
    fn merge(l: (String, u128), r: (String, u128)) -> (String, u128) {
        let ((lt, ln), (rt, rn)) = (l, r);
        if ln == 1 && rn < 100 {
            (rt, rn)
        } else if 100 > ln && ln > rn {
            (format!("{lt}-{rt}"), ln + rn)
        } else if ln >= 100 && 100 > rn {
            (format!("{lt} and {rt}"), ln + rn)
        } else if rn > ln {
            (format!("{lt} {rt}"), ln * rn)
        } else {
            (format!("{lt}, {rt}"), ln + rn)
        }
    }

    /// (words, value) of `n` by num2words' split-and-merge.
    fn pair(n: u128) -> (String, u128) {
        let (unit, word) = Self::unit(n);
        let (div, rem) = if n == 0 { (1, 0) } else { (n / unit, n % unit) };
        let left = if div == 1 {
            ("one".to_string(), 1)
        } else {
            Self::pair(div)
        };
        let mut out = Self::merge(left, (word, unit));
        if rem > 0 {
            out = Self::merge(out, Self::pair(rem));
        }
        out
    }

    /// `num2words(n)`; None beyond the named scales (the reference's own limit is higher).
    fn cardinal(&self, n: u128) -> Option<String> {
        if n >= 1000u128.pow(SCALES.len() as u32 + 1) {
            return None;
        }
        Some(Self::pair(n).0)
    }

    /// `num2words(n, ordinal=True)`.
    fn ordinal(&self, n: u128) -> Option<String> {
        let card = self.cardinal(n)?;
        let (head, last) = match card.rfind([' ', '-']) {
            Some(i) => card.split_at(i + 1),
            None => ("", card.as_str()),
        };
        let ord = match last {
            "one" => "first".to_string(),
            "two" => "second".into(),
            "three" => "third".into(),
            "four" => "fourth".into(),
            "five" => "fifth".into(),
            "six" => "sixth".into(),
            "seven" => "seventh".into(),
            "eight" => "eighth".into(),
            "nine" => "ninth".into(),
            "ten" => "tenth".into(),
            "eleven" => "eleventh".into(),
            "twelve" => "twelfth".into(),
            w if w.ends_with('y') => format!("{}ieth", &w[..w.len() - 1]),
            w => format!("{w}th"),
        };
        Some(format!("{head}{ord}"))
    }

    /// `num2words(float(s))` for a decimal `s` (`,` or `.` as the point).
    fn decimal(&self, s: &str) -> Option<String> {
        let v: f64 = s.replace(',', ".").parse().ok()?;
        self.float(v)
    }

    /// `Num2Word_Base.to_cardinal` of a float: integral values as integers, else the integer
    /// part, "point", and each digit of the shortest representation's fraction.
    fn float(&self, v: f64) -> Option<String> {
        if !v.is_finite() || !(0.0..1e30).contains(&v) {
            return None;
        }
        if v.fract() == 0.0 {
            return self.cardinal(v as u128);
        }
        let repr = format!("{v}");
        let precision = repr.split('.').nth(1).map_or(0, str::len) as i32;
        let pre = v.trunc();
        let post = (v - pre).abs() * 10f64.powi(precision);
        let post = if (post.round() - post).abs() < 0.01 {
            post.round()
        } else {
            post.floor()
        } as u128;
        let digits = format!("{post:0width$}", width = precision as usize);
        let mut out = vec![self.cardinal(pre as u128)?, "point".into()];
        for d in digits.chars().take(precision as usize) {
            out.push(LOW[d.to_digit(10)? as usize].to_string());
        }
        Some(out.join(" "))
    }

    /// The reference's `_expand_currency` of a match such as `$100`, `£20`, `3,50€`.
    fn currency_text(&self, m: &str, currency: Currency) -> Option<String> {
        let digits: String = m
            .replace(',', ".")
            .chars()
            .filter(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        let amount: f64 = parse_python_float(&digits)?;
        let (whole, cents) = quantize_cents(amount)?;
        let (unit, sub) = match currency {
            Currency::Usd => (("dollar", "dollars"), ("cent", "cents")),
            Currency::Gbp => (("pound sterling", "pounds sterling"), ("penny", "pence")),
            Currency::Eur => (("euro", "euro"), ("cent", "cents")),
        };
        let plural = |n: u128, forms: (&'static str, &'static str)| {
            if n == 1 {
                forms.0
            } else {
                forms.1
            }
        };
        let full = format!(
            "{} {}, {} {}",
            self.cardinal(whole)?,
            plural(whole, unit),
            self.cardinal(cents)?,
            plural(cents, sub)
        );
        if amount.fract() == 0.0 {
            if let Some(i) = full.rfind(", ") {
                return Some(full[..i].to_string());
            }
        }
        Some(full)
    }
}

/// Python's `float(s)` for strings of digits and dots (None where Python raises, e.g. "1.2.3").
fn parse_python_float(s: &str) -> Option<f64> {
    if s.is_empty() || s == "." || s.matches('.').count() > 1 {
        return None;
    }
    s.parse().ok()
}

/// `num2words.currency.parse_currency_parts` of a float: the exact binary value rounded
/// half-up to cents, split into whole units and cents.
fn quantize_cents(v: f64) -> Option<(u128, u128)> {
    if !v.is_finite() || !(0.0..1e30).contains(&v) {
        return None;
    }
    // 80 fraction digits print a double's exact value for any amount >= 1e-17.
    let exact = format!("{v:.80}");
    let (int_part, frac) = exact.split_once('.')?;
    let whole: u128 = int_part.parse().ok()?;
    let frac = frac.as_bytes();
    let mut cents = u128::from(frac[0] - b'0') * 10 + u128::from(frac[1] - b'0');
    if frac[2] >= b'5' {
        cents += 1;
    }
    Some(if cents == 100 {
        (whole + 1, 0)
    } else {
        (whole, cents)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn english_cardinals_ordinals_decimals_currency() {
        let e = English;
        let c = |n| e.cardinal(n).unwrap();
        assert_eq!(c(0), "zero");
        assert_eq!(c(21), "twenty-one");
        assert_eq!(c(100), "one hundred");
        assert_eq!(c(120), "one hundred and twenty");
        assert_eq!(c(1985), "one thousand, nine hundred and eighty-five");
        assert_eq!(c(1020), "one thousand and twenty");
        assert_eq!(c(2_000_100), "two million, one hundred");
        assert_eq!(e.ordinal(21).unwrap(), "twenty-first");
        assert_eq!(e.ordinal(40).unwrap(), "fortieth");
        assert_eq!(e.ordinal(112).unwrap(), "one hundred and twelfth");
        assert_eq!(e.decimal("3.5").unwrap(), "three point five");
        assert_eq!(e.decimal("1.05").unwrap(), "one point zero five");
        assert_eq!(e.decimal("3.0").unwrap(), "three");
        assert_eq!(
            e.currency_text("$3.50", Currency::Usd).unwrap(),
            "three dollars, fifty cents"
        );
        assert_eq!(e.currency_text("$1", Currency::Usd).unwrap(), "one dollar");
        assert_eq!(
            e.currency_text("£20", Currency::Gbp).unwrap(),
            "twenty pounds sterling"
        );
        assert_eq!(quantize_cents(2.675), Some((2, 67)));
        assert_eq!(quantize_cents(0.125), Some((0, 13)));
        assert_eq!(
            expand_numbers("we made $1,000 in 1 night", Language::En).unwrap(),
            "we made one thousand dollars in one night"
        );
    }
}
