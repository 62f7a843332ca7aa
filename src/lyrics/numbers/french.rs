//! French numbers as num2words' `Num2Word_FR`.

use std::sync::LazyLock;

use regex::Regex;

use super::{
    eu_high, float_words, plural_of, re, Cards, Currency, CurrencyForms, NumberWords, Pair,
};

/// num2words' words of the language.
pub(super) struct Words(Cards);

/// The split-and-merge words.
pub(super) static WORDS: LazyLock<Words> = LazyLock::new(|| {
    Words(Cards::new(
        &FR_LOW,
        &[
            (1000, "mille"),
            (100, "cent"),
            (80, "quatre-vingts"),
            (60, "soixante"),
            (50, "cinquante"),
            (40, "quarante"),
            (30, "trente"),
        ],
        eu_high(&["m", "b", "tr", "quadr", "quint"], "illion", "illiard"),
        merge_fr,
    ))
});

const FR_LOW: [&str; 21] = [
    "zéro", "un", "deux", "trois", "quatre", "cinq", "six", "sept", "huit", "neuf", "dix", "onze",
    "douze", "treize", "quatorze", "quinze", "seize", "dix-sept", "dix-huit", "dix-neuf", "vingt",
];

/// `Num2Word_FR.merge`.
fn merge_fr((mut ct, cn): Pair, (mut nt, nn): Pair) -> Pair {
    if cn == 1 {
        if nn < 1_000_000 {
            return (nt, nn);
        }
    } else {
        let c = cn as i128;
        if ((c - 80).rem_euclid(100) == 0 || (cn % 100 == 0 && cn < 1000))
            && nn < 1_000_000
            && ct.ends_with('s')
        {
            ct.pop();
        }
        if cn < 1000 && nn != 1000 && !nt.ends_with('s') && nn % 100 == 0 {
            nt.push('s');
        }
    }
    if nn < cn && cn < 100 {
        if nn % 10 == 1 && cn != 80 {
            return (format!("{ct} et {nt}"), cn + nn);
        }
        return (format!("{ct}-{nt}"), cn + nn);
    }
    if nn > cn {
        return (format!("{ct} {nt}"), cn * nn);
    }
    (format!("{ct} {nt}"), cn + nn)
}

/// The currency words (`Num2Word_*.CURRENCY_FORMS`), separator and integral cut.
fn forms(c: Currency) -> CurrencyForms {
    let (forms, separator, cut) = match c {
        Currency::Eur => ((("euro", "euros"), ("centime", "centimes")), " et", " et "),
        Currency::Gbp => ((("livre", "livres"), ("penny", "pence")), " et", " et "),
        Currency::Usd => ((("dollar", "dollars"), ("cent", "cents")), " et", " et "),
    };
    CurrencyForms {
        forms,
        separator,
        cut,
    }
}

/// `1er`, `2e`, `3ème`, `1º`.
static ORDINAL_SUFFIX: LazyLock<Regex> = LazyLock::new(|| re(r"([0-9]+)(º|ª|er|re|e|ème)"));

impl NumberWords for Words {
    fn cardinal(&self, n: u128) -> Option<String> {
        self.0.cardinal(n)
    }

    fn ordinal(&self, n: u128) -> Option<String> {
        let card = self.cardinal(n)?;
        Some(if n == 1 {
            "premier".into()
        } else if let Some(stem) = card.strip_suffix("cinq") {
            format!("{stem}cinquième")
        } else if let Some(stem) = card.strip_suffix("neuf") {
            format!("{stem}neuvième")
        } else {
            format!("{}ième", card.strip_suffix('e').unwrap_or(&card))
        })
    }

    fn float(&self, v: f64) -> Option<String> {
        float_words(v, "virgule", |n| self.cardinal(n))
    }

    fn currency(&self, amount: f64, whole: u128, cents: u128, c: Currency) -> Option<String> {
        let forms = forms(c);
        let full = forms.words(whole, cents, |n| self.cardinal(n), plural_of)?;
        Some(forms.cut_integral(full, amount))
    }

    fn ordinal_regex(&self) -> &'static Regex {
        &ORDINAL_SUFFIX
    }
}
