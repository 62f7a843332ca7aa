//! German numbers as num2words' `Num2Word_DE`.

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
        &DE_LOW,
        &[
            (1000, "tausend"),
            (100, "hundert"),
            (90, "neunzig"),
            (80, "achtzig"),
            (70, "siebzig"),
            (60, "sechzig"),
            (50, "fünfzig"),
            (40, "vierzig"),
            (30, "dreißig"),
        ],
        eu_high(&["M", "B", "Tr", "Quadr", "Quint"], "illion", "illiarde"),
        merge_de,
    ))
});

const DE_LOW: [&str; 21] = [
    "null",
    "eins",
    "zwei",
    "drei",
    "vier",
    "fünf",
    "sechs",
    "sieben",
    "acht",
    "neun",
    "zehn",
    "elf",
    "zwölf",
    "dreizehn",
    "vierzehn",
    "fünfzehn",
    "sechzehn",
    "siebzehn",
    "achtzehn",
    "neunzehn",
    "zwanzig",
];

/// `Num2Word_DE.merge`.
fn merge_de((mut ct, cn): Pair, (mut nt, nn): Pair) -> Pair {
    if cn == 1 {
        if nn == 100 || nn == 1000 {
            return (format!("ein{nt}"), nn);
        } else if nn < 1_000_000 {
            return (nt, nn);
        }
        ct = "eine".into();
    }
    let val;
    if nn > cn {
        if nn >= 1_000_000 {
            if cn > 1 {
                nt.push_str(if nt.ends_with('e') { "n" } else { "en" });
            }
            ct.push(' ');
        }
        val = cn * nn;
    } else {
        if nn < 10 && 10 < cn && cn < 100 {
            if nn == 1 {
                nt = "ein".into();
            }
            let (a, b) = (ct, format!("{nt}und"));
            nt = a;
            ct = b;
        } else if cn >= 1_000_000 {
            ct.push(' ');
        }
        val = cn + nn;
    }
    (format!("{ct}{nt}"), val)
}

/// The currency words (`Num2Word_*.CURRENCY_FORMS`), separator and integral cut.
fn forms(c: Currency) -> CurrencyForms {
    let (forms, separator, cut) = match c {
        Currency::Eur => ((("Euro", "Euro"), ("Cent", "Cent")), " und", " und "),
        Currency::Gbp => ((("Pfund", "Pfund"), ("Penny", "Pence")), " und", " und "),
        Currency::Usd => ((("Dollar", "Dollar"), ("Cent", "Cent")), " und", " und "),
    };
    CurrencyForms {
        forms,
        separator,
        cut,
    }
}

/// `1st`, `1º`, and `1.` before white space or the end (group 3 keeps what followed).
static ORDINAL_SUFFIX: LazyLock<Regex> =
    LazyLock::new(|| re(r"([0-9]+)(st|nd|rd|th|º|ª|\.(\s|$))"));

impl NumberWords for Words {
    fn cardinal(&self, n: u128) -> Option<String> {
        self.0.cardinal(n)
    }

    fn ordinal(&self, n: u128) -> Option<String> {
        let card = self.cardinal(n)?;
        Some({
            const ORDS: [(&str, &str); 11] = [
                ("eins", "ers"),
                ("drei", "drit"),
                ("acht", "ach"),
                ("sieben", "sieb"),
                ("ig", "igs"),
                ("ert", "erts"),
                ("end", "ends"),
                ("ion", "ions"),
                ("nen", "ns"),
                ("rde", "rds"),
                ("rden", "rds"),
            ];
            let mut w = card.to_lowercase();
            if let Some((k, v)) = ORDS.iter().find(|(k, _)| w.ends_with(k)) {
                w = format!("{}{v}", &w[..w.len() - k.len()]);
            }
            let mut res = format!("{w}te");
            if res == "eintausendste" || res == "einhundertste" {
                res = res.replacen("ein", "", 1);
            }
            static ONE_BIG: LazyLock<Regex> =
                LazyLock::new(|| re(r"eine ([a-z]+(illion|illiard)ste)$"));
            static BIG: LazyLock<Regex> = LazyLock::new(|| re(r" ([a-z]+(illion|illiard)ste)$"));
            let res = ONE_BIG.replace(&res, "$1").into_owned();
            BIG.replace(&res, "$1").into_owned()
        })
    }

    fn float(&self, v: f64) -> Option<String> {
        float_words(v, "Komma", |n| self.cardinal(n))
    }

    fn currency(&self, amount: f64, whole: u128, cents: u128, c: Currency) -> Option<String> {
        let forms = forms(c);
        let full = forms.words(whole, cents, |n| self.cardinal(n), plural_of)?;
        // "ein Euro", not "eins Euro".
        let full = full.replace("eins ", "ein ");
        Some(forms.cut_integral(full, amount))
    }

    fn ordinal_regex(&self) -> &'static Regex {
        &ORDINAL_SUFFIX
    }
}
