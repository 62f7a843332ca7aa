//! Korean numbers as num2words' `Num2Word_KO`.

use std::sync::LazyLock;

use regex::Regex;

use super::{float_words, re, Cards, Currency, NumberWords, Pair};

/// num2words' words of the language.
pub(super) struct Words(Cards);

/// The split-and-merge words.
pub(super) static WORDS: LazyLock<Words> = LazyLock::new(|| {
    Words(Cards::new(
        &[
            "영", "일", "이", "삼", "사", "오", "육", "칠", "팔", "구", "십",
        ],
        &[(1000, "천"), (100, "백")],
        [
            "만",
            "억",
            "조",
            "경",
            "해",
            "자",
            "양",
            "구",
            "간",
            "정",
            "재",
            "극",
            "항하사",
            "아승기",
            "나유타",
            "불가사의",
            "무량대수",
        ]
        .iter()
        .enumerate()
        .filter(|(i, _)| 4 * (*i as u32 + 1) <= 32)
        .map(|(i, w)| (4 * (i as u32 + 1), w.to_string()))
        .collect(),
        merge_ko,
    ))
});

/// `Num2Word_KO.merge`.
fn merge_ko((lt, ln): Pair, (rt, rn): Pair) -> Pair {
    if ln == 1 && rn <= 10000 {
        (rt, rn)
    } else if 10000 > ln && ln > rn {
        (format!("{lt}{rt}"), ln + rn)
    } else if ln >= 10000 && ln > rn {
        (format!("{lt} {rt}"), ln + rn)
    } else {
        (format!("{lt}{rt}"), ln * rn)
    }
}

/// `Num2Word_KO.to_ordinal` from the cardinal words (1 is "첫 번째"); None where num2words
/// raises (a last group without a native ordinal, e.g. 100).
fn ordinal_ko(card: &str) -> Option<String> {
    fn native(w: &str) -> Option<&'static str> {
        Some(match w {
            "일" => "한",
            "이" => "두",
            "삼" => "세",
            "사" => "네",
            "오" => "다섯",
            "육" => "여섯",
            "칠" => "일곱",
            "팔" => "여덟",
            "구" => "아홉",
            "십" => "열",
            "이십" => "스물",
            "삼십" => "서른",
            "사십" => "마흔",
            "오십" => "쉰",
            "육십" => "예순",
            "칠십" => "일흔",
            "팔십" => "여든",
            "구십" => "아흔",
            _ => return None,
        })
    }
    if card == "일" {
        return Some("첫 번째".into());
    }
    let mut outwords: Vec<String> = card.split(' ').map(str::to_string).collect();
    let last_word = outwords.pop()?;
    let mut lastwords: Vec<String> = last_word.split('백').map(str::to_string).collect();
    let last = lastwords.pop()?;
    let new_last = if last.contains('십') {
        let mut ten_one: Vec<String> = last.split('십').map(str::to_string).collect();
        ten_one[0] = native(&format!("{}십", ten_one[0]))?.to_string();
        if let Some(one) = ten_one.get(1).and_then(|o| native(o)) {
            ten_one[1] = one.to_string();
            ten_one[0] = ten_one[0].replace("스무", "스물");
        }
        ten_one.concat()
    } else {
        native(&last)?.to_string()
    };
    lastwords.push(new_last);
    outwords.push(lastwords.join("백 "));
    Some(format!("{} 번째", outwords.join(" ")))
}

/// `1번째`, `1번`, `1차`, `1째`.
static ORDINAL_SUFFIX: LazyLock<Regex> = LazyLock::new(|| re(r"([0-9]+)(번째|번|차|째)"));

impl NumberWords for Words {
    fn cardinal(&self, n: u128) -> Option<String> {
        self.0.cardinal(n)
    }

    fn ordinal(&self, n: u128) -> Option<String> {
        ordinal_ko(&self.cardinal(n)?)
    }

    fn float(&self, v: f64) -> Option<String> {
        float_words(v, "점", |n| self.cardinal(n))
    }

    fn currency(&self, amount: f64, whole: u128, cents: u128, c: Currency) -> Option<String> {
        let _ = amount;
        // `Num2Word_KO.to_currency`: dollars only (pounds and euros raise), words joined.
        if !matches!(c, Currency::Usd) {
            return None;
        }
        let joined: String = self.cardinal(whole)?.split_whitespace().collect();
        Some(format!("{joined}달러 {}센트", self.cardinal(cents)?))
    }

    fn ordinal_regex(&self) -> &'static Regex {
        &ORDINAL_SUFFIX
    }
}
