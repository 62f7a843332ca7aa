//! Spanish numbers as num2words' `Num2Word_ES` (masculine).

use std::sync::LazyLock;

use regex::Regex;

use super::{float_words, plural_of, re, Cards, Currency, CurrencyForms, NumberWords, Pair};

/// num2words' words of the language.
pub(super) struct Words(Cards);

/// The split-and-merge words.
pub(super) static WORDS: LazyLock<Words> = LazyLock::new(|| {
    Words(Cards::new(
        &ES_LOW,
        &[
            (1000, "mil"),
            (100, "cien"),
            (90, "noventa"),
            (80, "ochenta"),
            (70, "setenta"),
            (60, "sesenta"),
            (50, "cincuenta"),
            (40, "cuarenta"),
            (30, "treinta"),
        ],
        vec![
            (6, "millón".into()),
            (12, "billón".into()),
            (18, "trillón".into()),
            (24, "cuatrillón".into()),
        ],
        merge_es,
    ))
});

const ES_LOW: [&str; 30] = [
    "cero",
    "uno",
    "dos",
    "tres",
    "cuatro",
    "cinco",
    "seis",
    "siete",
    "ocho",
    "nueve",
    "diez",
    "once",
    "doce",
    "trece",
    "catorce",
    "quince",
    "dieciséis",
    "diecisiete",
    "dieciocho",
    "diecinueve",
    "veinte",
    "veintiuno",
    "veintidós",
    "veintitrés",
    "veinticuatro",
    "veinticinco",
    "veintiséis",
    "veintisiete",
    "veintiocho",
    "veintinueve",
];

/// `Num2Word_ES.merge` (masculine).
fn merge_es((mut ct, cn): Pair, (mut nt, nn): Pair) -> Pair {
    if cn == 1 {
        if nn < 1_000_000 {
            return (nt, nn);
        }
        ct = "un".into();
    } else if cn == 100 && nn % 1000 != 0 {
        ct.push_str("to");
    }
    if nn < cn {
        if cn < 100 {
            return (format!("{ct} y {nt}"), cn + nn);
        }
        return (format!("{ct} {nt}"), cn + nn);
    } else if nn % 1_000_000 == 0 && cn > 1 {
        let keep: String = {
            let chars: Vec<char> = nt.chars().collect();
            chars[..chars.len().saturating_sub(3)].iter().collect()
        };
        nt = format!("{keep}lones");
    }
    if nn == 100 {
        match cn {
            5 => {
                ct = "quinien".into();
                nt.clear();
            }
            7 => ct = "sete".into(),
            9 => ct = "nove".into(),
            _ => {}
        }
        nt.push_str("tos");
    } else {
        nt = format!(" {nt}");
    }
    (format!("{ct}{nt}"), cn * nn)
}

impl Words {
    /// `Num2Word_ES.to_ordinal` (masculine).
    fn ordinal_es(&self, v: u128) -> Option<String> {
        fn stem(n: u128) -> Option<&'static str> {
            Some(match n {
                1 => "primer",
                2 => "segund",
                3 => "tercer",
                4 => "cuart",
                5 => "quint",
                6 => "sext",
                7 => "séptim",
                8 => "octav",
                9 => "noven",
                10 => "décim",
                20 => "vigésim",
                30 => "trigésim",
                40 => "quadragésim",
                50 => "quincuagésim",
                60 => "sexagésim",
                70 => "septuagésim",
                80 => "octogésim",
                90 => "nonagésim",
                100 => "centésim",
                200 => "ducentésim",
                300 => "tricentésim",
                400 => "cuadrigentésim",
                500 => "quingentésim",
                600 => "sexcentésim",
                700 => "septigentésim",
                800 => "octigentésim",
                900 => "noningentésim",
                1_000 => "milésim",
                1_000_000 => "millonésim",
                1_000_000_000 => "billonésim",
                1_000_000_000_000 => "trillonésim",
                1_000_000_000_000_000 => "cuadrillonésim",
                _ => return None,
            })
        }
        let text = if v == 0 {
            String::new()
        } else if v <= 10 {
            format!("{}o", stem(v)?)
        } else if v <= 12 {
            format!("{}o{}", stem(10)?, self.ordinal_es(v - 10)?)
        } else if v <= 100 {
            let dec = v / 10 * 10;
            format!("{}o {}", stem(dec)?, self.ordinal_es(v - dec)?)
        } else if v <= 1000 {
            let cen = v / 100 * 100;
            format!("{}o {}", stem(cen)?, self.ordinal_es(v - cen)?)
        } else if v < 1_000_000_000_000_000_000 {
            // int(math.log(v, 1000)) in doubles, as the reference.
            let k = ((v as f64).ln() / 1000f64.ln()) as u32;
            let dec = 1000u128.pow(k);
            let (high, low) = (v / dec, v % dec);
            let card = if high != 1 {
                self.cardinal(high)?
            } else {
                String::new()
            };
            format!("{card}{}o {}", stem(dec)?, self.ordinal_es(low)?)
        } else {
            self.cardinal(v)?
        };
        Some(text.trim().to_string())
    }
}

/// The currency words (`Num2Word_*.CURRENCY_FORMS`), separator and integral cut.
fn forms(c: Currency) -> CurrencyForms {
    let (forms, separator, cut) = match c {
        Currency::Eur => (
            (("euro", "euros"), ("céntimo", "céntimos")),
            " con",
            " con ",
        ),
        Currency::Gbp => (
            (("libra", "libras"), ("penique", "peniques")),
            " con",
            " con ",
        ),
        Currency::Usd => (
            (("dólar", "dólares"), ("centavo", "centavos")),
            " con",
            " con ",
        ),
    };
    CurrencyForms {
        forms,
        separator,
        cut,
    }
}

/// `1º`, `1ª`, `1er`, `2o`, `2a`, `2os`, `2as`.
static ORDINAL_SUFFIX: LazyLock<Regex> = LazyLock::new(|| re(r"([0-9]+)(º|ª|er|o|a|os|as)"));

impl NumberWords for Words {
    fn cardinal(&self, n: u128) -> Option<String> {
        self.0.cardinal(n)
    }

    fn ordinal(&self, n: u128) -> Option<String> {
        self.ordinal_es(n)
    }

    fn float(&self, v: f64) -> Option<String> {
        float_words(v, "punto", |n| self.cardinal(n))
    }

    fn currency(&self, amount: f64, whole: u128, cents: u128, c: Currency) -> Option<String> {
        let forms = forms(c);
        let full = forms.words(whole, cents, |n| self.cardinal(n), plural_of)?;
        // Apocopes and the feminine of "libra", as `Num2Word_ES.to_currency`.
        let sep = format!("{} ", forms.separator);
        let parts: Vec<String> = full
            .split(sep.as_str())
            .enumerate()
            .map(|(i, p)| {
                let mut p = p.to_string();
                if i == 0 && matches!(c, Currency::Gbp) {
                    p = p.replace("uno", "una").replace("cientos", "cientas");
                }
                if i <= 1 {
                    p = p.replace("veintiuno", "veintiún").replace("uno", "un");
                }
                p
            })
            .collect();
        Some(forms.cut_integral(parts.join(&sep), amount))
    }

    fn ordinal_regex(&self) -> &'static Regex {
        &ORDINAL_SUFFIX
    }
}
