//! Portuguese numbers as num2words' `Num2Word_PT`.

use std::sync::LazyLock;

use regex::Regex;

use super::{float_words, plural_of, re, Cards, Currency, CurrencyForms, NumberWords, Pair};

/// num2words' words of the language.
pub(super) struct Words(Cards);

/// The split-and-merge words.
pub(super) static WORDS: LazyLock<Words> = LazyLock::new(|| {
    Words(Cards::new(
        &PT_LOW,
        &[
            (1000, "mil"),
            (100, "cem"),
            (90, "noventa"),
            (80, "oitenta"),
            (70, "setenta"),
            (60, "sessenta"),
            (50, "cinquenta"),
            (40, "quarenta"),
            (30, "trinta"),
        ],
        vec![
            (6, "milião".into()),
            (12, "bilião".into()),
            (18, "trilião".into()),
            (24, "quatrilião".into()),
        ],
        merge_pt,
    ))
});

const PT_LOW: [&str; 21] = [
    "zero",
    "um",
    "dois",
    "três",
    "quatro",
    "cinco",
    "seis",
    "sete",
    "oito",
    "nove",
    "dez",
    "onze",
    "doze",
    "treze",
    "catorze",
    "quinze",
    "dezasseis",
    "dezassete",
    "dezoito",
    "dezanove",
    "vinte",
];

/// `Num2Word_PT.merge`.
fn merge_pt((mut ct, cn): Pair, (mut nt, nn): Pair) -> Pair {
    if cn == 1 {
        if nn < 1_000_000 {
            return (nt, nn);
        }
        ct = "um".into();
    } else if cn == 100 && nn % 1000 != 0 {
        ct = "cento".into();
    }
    let drop4 = |s: &str| -> String {
        let c: Vec<char> = s.chars().collect();
        c[..c.len().saturating_sub(4)].iter().collect()
    };
    if nn < cn {
        return (format!("{ct} e {nt}"), cn + nn);
    } else if nn % 1_000_000_000 == 0 && cn > 1 {
        nt = format!("{}liões", drop4(&nt));
    } else if nn % 1_000_000 == 0 && cn > 1 {
        nt = format!("{}lhões", drop4(&nt));
    }
    if nt == "milião" {
        nt = "milhão".into();
    }
    if nn == 100 {
        ct = match cn {
            1 => "cento",
            2 => "duzentos",
            3 => "trezentos",
            4 => "quatrocentos",
            5 => "quinhentos",
            6 => "seiscentos",
            7 => "setecentos",
            8 => "oitocentos",
            _ => "novecentos",
        }
        .into();
        nt.clear();
    } else {
        nt = format!(" {nt}");
    }
    (format!("{ct}{nt}"), cn * nn)
}

/// `Num2Word_PT.to_cardinal`'s clean-up: "mil e duzentos e ..." loses the first "e" when a
/// hundreds word follows a thousands word and another "e" comes later.
fn portuguese_thousands_e(mut words: String) -> String {
    const EXTS: [&str; 7] = [
        "mil",
        "milhão",
        "milhões",
        "mil milhões",
        "bilião",
        "biliões",
        "mil biliões",
    ];
    static RES: LazyLock<Vec<Regex>> = LazyLock::new(|| {
        EXTS.iter()
            .map(|ext| re(&format!(r"^{ext} e \w*entos? ")))
            .collect()
    });
    for (ext, re) in EXTS.iter().zip(RES.iter()) {
        let hit = words.match_indices(ext).any(|(i, _)| {
            re.find(&words[i..])
                .is_some_and(|m| words[i + m.end()..].contains('e'))
        });
        if hit {
            words = words.replace(&format!("{ext} e"), ext);
        }
    }
    words
}

/// `Num2Word_PT.to_ordinal`: digit by digit from the right, with thousands words.
fn ordinal_pt(n: u128) -> String {
    const ORDS: [[&str; 10]; 3] = [
        [
            "", "primeiro", "segundo", "terceiro", "quarto", "quinto", "sexto", "sétimo", "oitavo",
            "nono",
        ],
        [
            "",
            "décimo",
            "vigésimo",
            "trigésimo",
            "quadragésimo",
            "quinquagésimo",
            "sexagésimo",
            "septuagésimo",
            "octogésimo",
            "nonagésimo",
        ],
        [
            "",
            "centésimo",
            "ducentésimo",
            "tricentésimo",
            "quadrigentésimo",
            "quingentésimo",
            "seiscentésimo",
            "septigentésimo",
            "octigentésimo",
            "nongentésimo",
        ],
    ];
    let digits = n.to_string();
    let mut parts: Vec<&str> = Vec::new();
    let mut separator = "";
    for (idx, c) in digits.chars().rev().enumerate() {
        if idx > 0 && idx % 3 == 0 {
            separator = match idx {
                3 => "milésimo",
                6 => "milionésimo",
                9 => "milésimo milionésimo",
                12 => "bilionésimo",
                15 => "milésimo bilionésimo",
                _ => "",
            };
        }
        if c != '0' && !separator.is_empty() {
            parts.push(separator);
            separator = "";
        }
        parts.push(ORDS[idx % 3][c.to_digit(10).unwrap_or(0) as usize]);
    }
    parts.reverse();
    let joined = collapse(parts.join(" ").trim());
    match joined.strip_prefix("primeiro") {
        Some(rest) if digits != "1" => rest.chars().skip(1).collect(),
        _ => joined,
    }
}

/// Runs of whitespace to one space.
fn collapse(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The currency words (`Num2Word_*.CURRENCY_FORMS`), separator and integral cut.
fn forms(c: Currency) -> CurrencyForms {
    let (forms, separator, cut) = match c {
        Currency::Eur => ((("euro", "euros"), ("cêntimo", "cêntimos")), " e", " e "),
        Currency::Gbp => ((("libra", "libras"), ("péni", "pence")), " e", " e "),
        Currency::Usd => ((("dólar", "dólares"), ("cêntimo", "cêntimos")), " e", " e "),
    };
    CurrencyForms {
        forms,
        separator,
        cut,
    }
}

/// `1º`, `1ª`, `2o`, `2a`, `2os`, `2as`.
static ORDINAL_SUFFIX: LazyLock<Regex> = LazyLock::new(|| re(r"([0-9]+)(º|ª|o|a|os|as)"));

impl NumberWords for Words {
    fn cardinal(&self, n: u128) -> Option<String> {
        self.0.cardinal(n).map(portuguese_thousands_e)
    }

    fn ordinal(&self, n: u128) -> Option<String> {
        Some(ordinal_pt(n))
    }

    fn float(&self, v: f64) -> Option<String> {
        float_words(v, "vírgula", |n| self.cardinal(n))
    }

    fn currency(&self, amount: f64, whole: u128, cents: u128, c: Currency) -> Option<String> {
        let forms = forms(c);
        let mut full = forms.words(whole, cents, |n| self.cardinal(n), plural_of)?;
        // "um milhão de euros"; no "e zero cêntimos", as `Num2Word_PT.to_currency`.
        let plural = forms.forms.0 .1;
        for ext in [
            "milhão",
            "milhões",
            "bilião",
            "biliões",
            "trilião",
            "triliões",
        ] {
            if full.contains(&format!("{ext} {plural}")) {
                full = full.replacen(ext, &format!("{ext} de"), 1);
            }
        }
        let full = full.replace(" e zero cêntimos", "");
        Some(forms.cut_integral(full, amount))
    }

    fn ordinal_regex(&self) -> &'static Regex {
        &ORDINAL_SUFFIX
    }
}
