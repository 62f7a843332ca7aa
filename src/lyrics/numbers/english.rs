//! English numbers as num2words' `Num2Word_EN`.

use std::sync::LazyLock;

use regex::Regex;

use super::{base_currency_forms, float_words, plural_of, re, Cards, Currency, NumberWords, Pair};

/// num2words' words of the language.
pub(super) struct Words(Cards);

/// The split-and-merge words.
pub(super) static WORDS: LazyLock<Words> = LazyLock::new(|| {
    Words(Cards::new(
        &EN_LOW,
        &[
            (1000, "thousand"),
            (100, "hundred"),
            (90, "ninety"),
            (80, "eighty"),
            (70, "seventy"),
            (60, "sixty"),
            (50, "fifty"),
            (40, "forty"),
            (30, "thirty"),
        ],
        [
            "m", "b", "tr", "quadr", "quint", "sext", "sept", "oct", "non", "dec",
        ]
        .iter()
        .enumerate()
        .map(|(i, w)| (6 + 3 * i as u32, format!("{w}illion")))
        .collect(),
        merge_en,
    ))
});

const EN_LOW: [&str; 21] = [
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

/// `Num2Word_EN.merge`.
fn merge_en((lt, ln): Pair, (rt, rn): Pair) -> Pair {
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

/// `1st`, `2nd`, `3rd`, `4th`.
static ORDINAL_SUFFIX: LazyLock<Regex> = LazyLock::new(|| re(r"([0-9]+)(st|nd|rd|th)"));

impl NumberWords for Words {
    fn cardinal(&self, n: u128) -> Option<String> {
        self.0.cardinal(n)
    }

    fn ordinal(&self, n: u128) -> Option<String> {
        let card = self.cardinal(n)?;
        Some({
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
            format!("{head}{ord}")
        })
    }

    fn float(&self, v: f64) -> Option<String> {
        float_words(v, "point", |n| self.cardinal(n))
    }

    fn currency(&self, amount: f64, whole: u128, cents: u128, c: Currency) -> Option<String> {
        let forms = base_currency_forms(c);
        let full = forms.words(whole, cents, |n| self.cardinal(n), plural_of)?;
        Some(forms.cut_integral(full, amount))
    }

    fn ordinal_regex(&self) -> &'static Regex {
        &ORDINAL_SUFFIX
    }

    fn comma_thousands(&self) -> bool {
        true
    }
}
