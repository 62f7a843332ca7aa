//! Dutch numbers as num2words' `Num2Word_NL`.

use std::sync::LazyLock;

use regex::Regex;

use super::{eu_high, float_words, re, Cards, Currency, CurrencyForms, NumberWords, Pair};

/// num2words' words of the language.
pub(super) struct Words(Cards);

/// The split-and-merge words.
pub(super) static WORDS: LazyLock<Words> = LazyLock::new(|| {
    Words(Cards::new(
        &NL_LOW,
        &[
            (1000, "duizend"),
            (100, "honderd"),
            (90, "negentig"),
            (80, "tachtig"),
            (70, "zeventig"),
            (60, "zestig"),
            (50, "vijftig"),
            (40, "veertig"),
            (30, "dertig"),
        ],
        eu_high(&["m", "b", "tr", "quadr", "quint"], "iljoen", "iljard"),
        merge_nl,
    ))
});

const NL_LOW: [&str; 21] = [
    "nul",
    "één",
    "twee",
    "drie",
    "vier",
    "vijf",
    "zes",
    "zeven",
    "acht",
    "negen",
    "tien",
    "elf",
    "twaalf",
    "dertien",
    "veertien",
    "vijftien",
    "zestien",
    "zeventien",
    "achttien",
    "negentien",
    "twintig",
];

/// `Num2Word_NL.merge`.
fn merge_nl((mut ct, cn): Pair, (mut nt, nn): Pair) -> Pair {
    if cn == 1 {
        if nn < 1_000_000 {
            return (nt, nn);
        }
        ct = "een".into();
    }
    let val;
    if nn > cn {
        if nn >= 1_000_000 {
            ct.push(' ');
        }
        val = cn * nn;
    } else {
        if nn < 10 && 10 < cn && cn < 100 {
            if nn == 1 {
                nt = "een".into();
            }
            nt.push_str(if nt.ends_with('e') { "ën" } else { "en" });
            std::mem::swap(&mut nt, &mut ct);
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
        Currency::Eur => ((("euro", "euro"), ("cent", "cent")), ",", ", "),
        Currency::Gbp => ((("pond", "pond"), ("penny", "pence")), ",", ", "),
        Currency::Usd => ((("dollar", "dollar"), ("cent", "cent")), ",", ", "),
    };
    CurrencyForms {
        forms,
        separator,
        cut,
    }
}

/// `1ste`, `2de`, `3e`.
static ORDINAL_SUFFIX: LazyLock<Regex> = LazyLock::new(|| re(r"([0-9]+)(de|ste|e)"));

impl NumberWords for Words {
    fn cardinal(&self, n: u128) -> Option<String> {
        self.0.cardinal(n)
    }

    fn ordinal(&self, n: u128) -> Option<String> {
        let card = self.cardinal(n)?;
        Some({
            const ORDS: [(&str, &str); 18] = [
                ("nul", "nuld"),
                ("één", "eerst"),
                ("twee", "tweed"),
                ("drie", "derd"),
                ("vier", "vierd"),
                ("vijf", "vijfd"),
                ("zes", "zesd"),
                ("zeven", "zevend"),
                ("acht", "achtst"),
                ("negen", "negend"),
                ("tien", "tiend"),
                ("elf", "elfd"),
                ("twaalf", "twaalfd"),
                ("ig", "igst"),
                ("erd", "erdst"),
                ("end", "endst"),
                ("joen", "joenst"),
                ("rd", "rdst"),
            ];
            let mut w = card;
            if let Some((k, v)) = ORDS.iter().find(|(k, _)| w.ends_with(k)) {
                w = format!("{}{v}", &w[..w.len() - k.len()]);
            }
            format!("{w}e")
        })
    }

    fn float(&self, v: f64) -> Option<String> {
        float_words(v, "komma", |n| self.cardinal(n))
    }

    fn currency(&self, amount: f64, whole: u128, cents: u128, c: Currency) -> Option<String> {
        let forms = forms(c);
        // Dutch always uses the singular.
        let full = forms.words(whole, cents, |n| self.cardinal(n), |_, f| f.0)?;
        Some(forms.cut_integral(full, amount))
    }

    fn ordinal_regex(&self) -> &'static Regex {
        &ORDINAL_SUFFIX
    }
}
