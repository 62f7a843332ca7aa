//! Spelling out numbers in a lyric line, as the reference's `expand_numbers_multilingual` (which
//! calls the `num2words` package): thousands separators removed, currency amounts
//! (`$ £ €`), decimals, ordinals (`1st`, `21st`), then cardinals.
//!
//! English, German, French, Dutch, Spanish, Italian and Portuguese are implemented, word for word as `num2words` (its
//! split-and-merge of number words with each language's merge rule, ordinals, decimals and
//! currency forms); for the other languages [`expand_numbers`] returns `None` and the caller
//! leaves digits as they are (a known difference from the reference, listed in the README).

mod arabic;
mod hungarian;
mod italian;
mod polish;
mod russian;
mod turkish;

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
/// (languages other than en, de, fr, nl, es, it, pt) or where the reference would raise (it then keeps the
/// text).
pub fn expand_numbers(text: &str, lang: Language) -> Option<String> {
    if lang == Language::Zh {
        return Some(super::chinese::text_norm(text));
    }
    let num = Words::of(lang)?;
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
    t = num.expand_ordinals(&t)?;
    try_replace(&NUMBER, &t, |c| num.cardinal(c[0].parse().ok()?))
}

/// The currencies the reference spells out.
#[derive(Clone, Copy)]
enum Currency {
    Usd,
    Gbp,
    Eur,
}

/// A (words, value) pair of num2words' split-and-merge.
type Pair = (String, u128);

/// A language's merge rule.
type Merge = fn(Pair, Pair) -> Pair;

/// A language's number words: 0..=20 (Spanish 0..=29), the tens / hundred / thousand words, the powers of ten
/// from a million up (exponent, word), and its merge rule.
type Spec = (
    &'static [&'static str],
    &'static [(u128, &'static str)],
    Vec<(u32, String)>,
    Merge,
);

/// `num2words` for one language: its number words (`cards`, largest first), its `merge` rule,
/// ordinals, point word and currency forms.
struct Words {
    lang: Language,
    cards: Vec<(u128, String)>,
    merge: Merge,
}

/// Word forms (singular, plural) of a currency unit and its hundredth.
type Forms = ((&'static str, &'static str), (&'static str, &'static str));

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
const FR_LOW: [&str; 21] = [
    "zéro", "un", "deux", "trois", "quatre", "cinq", "six", "sept", "huit", "neuf", "dix", "onze",
    "douze", "treize", "quatorze", "quinze", "seize", "dix-sept", "dix-huit", "dix-neuf", "vingt",
];
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

impl Words {
    /// The words of `lang`, if implemented.
    fn of(lang: Language) -> Option<Self> {
        let (low, mid, high, merge): Spec = match lang {
            Language::En => (
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
            ),
            Language::De => (
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
            ),
            Language::Fr => (
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
            ),
            Language::Nl => (
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
            ),
            Language::Es => (
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
            ),
            // Languages whose num2words builds words its own way (one file each): no cards; every
            // entry point dispatches to their module before the split-and-merge is reached.
            Language::It
            | Language::Hu
            | Language::Pl
            | Language::Ru
            | Language::Tr
            | Language::Ar => (&[], &[], vec![], merge_en),
            Language::Ko => (
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
            ),
            // The reference asks num2words for "cz", which num2words 0.5.14 (its pinned version)
            // does not know: it raises, and Czech lines keep their digits.
            Language::Cs => return None,
            Language::Pt => (
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
            ),
            _ => return None,
        };
        let mut cards: Vec<(u128, String)> =
            high.into_iter().map(|(e, w)| (10u128.pow(e), w)).collect();
        cards.extend(mid.iter().map(|&(v, w)| (v, w.to_string())));
        cards.extend(
            low.iter()
                .enumerate()
                .rev()
                .map(|(v, w)| (v as u128, w.to_string())),
        );
        cards.sort_by_key(|c| std::cmp::Reverse(c.0));
        Some(Self { lang, cards, merge })
    }

    /// `num2words(n)`; None beyond the largest number word (the reference's own limit is higher).
    fn cardinal(&self, n: u128) -> Option<String> {
        match self.lang {
            Language::It => return italian::cardinal(n),
            Language::Hu => return hungarian::cardinal(n),
            Language::Pl => return polish::cardinal(n),
            Language::Ru => return russian::cardinal(n),
            Language::Tr => return turkish::cardinal(n),
            Language::Ar => return arabic::cardinal(n),
            _ => {}
        }
        if n >= self.cards.first()?.0.checked_mul(1000)? {
            return None;
        }
        let words = self.pair(n).0;
        Some(if self.lang == Language::Pt {
            portuguese_thousands_e(words)
        } else {
            words
        })
    }

    /// `Num2Word_Base.splitnum` + `clean`: the largest card <= n, its multiplier, the rest.
    fn pair(&self, n: u128) -> Pair {
        let (unit, word) = self
            .cards
            .iter()
            .find(|(v, _)| *v <= n)
            .cloned()
            .unwrap_or((0, String::new()));
        let (div, rem) = if n == 0 || unit == 0 {
            (1, 0)
        } else {
            (n / unit, n % unit)
        };
        let left = if div == 1 {
            (self.word(1), 1)
        } else {
            self.pair(div)
        };
        let mut out = (self.merge)(left, (word, unit));
        if rem > 0 {
            out = (self.merge)(out, self.pair(rem));
        }
        out
    }

    /// The card word of a small number.
    fn word(&self, n: u128) -> String {
        self.cards
            .iter()
            .find(|(v, _)| *v == n)
            .map(|(_, w)| w.clone())
            .unwrap_or_default()
    }

    /// The ordinal suffix regex of the language.
    fn expand_ordinals(&self, text: &str) -> Option<String> {
        static EN: LazyLock<Regex> = LazyLock::new(|| re(r"([0-9]+)(st|nd|rd|th)"));
        static FR: LazyLock<Regex> = LazyLock::new(|| re(r"([0-9]+)(º|ª|er|re|e|ème)"));
        static NL: LazyLock<Regex> = LazyLock::new(|| re(r"([0-9]+)(de|ste|e)"));
        static ES: LazyLock<Regex> = LazyLock::new(|| re(r"([0-9]+)(º|ª|er|o|a|os|as)"));
        static IT: LazyLock<Regex> = LazyLock::new(|| re(r"([0-9]+)(º|°|ª|o|a|i|e)"));
        static PT: LazyLock<Regex> = LazyLock::new(|| re(r"([0-9]+)(º|ª|o|a|os|as)"));
        static PL: LazyLock<Regex> = LazyLock::new(|| re(r"([0-9]+)(º|ª|st|nd|rd|th)"));
        static RU: LazyLock<Regex> = LazyLock::new(|| re(r"([0-9]+)(-й|-я|-е|-ое|-ье|-го)"));
        static TR: LazyLock<Regex> = LazyLock::new(|| re(r"([0-9]+)(\.|inci|nci|uncu|üncü|\.)"));
        static AR: LazyLock<Regex> = LazyLock::new(|| re(r"([0-9]+)(ون|ين|ث|ر|ى)"));
        static KO: LazyLock<Regex> = LazyLock::new(|| re(r"([0-9]+)(번째|번|차|째)"));
        static HU: LazyLock<Regex> =
            LazyLock::new(|| re(r"([0-9]+)(\.|adik|edik|odik|edik|ödik|ödike|ik)"));
        // German `1.` needs a look-ahead (a dot before whitespace or the end).
        static DE: LazyLock<Regex> = LazyLock::new(|| re(r"([0-9]+)(st|nd|rd|th|º|ª|\.(\s|$))"));
        let regex = match self.lang {
            Language::En => &*EN,
            Language::Fr => &*FR,
            Language::Nl => &*NL,
            Language::De => &*DE,
            Language::Es => &*ES,
            Language::It => &*IT,
            Language::Pt => &*PT,
            Language::Hu => &*HU,
            Language::Ko => &*KO,
            Language::Pl => &*PL,
            Language::Ru => &*RU,
            Language::Tr => &*TR,
            Language::Ar => &*AR,
            _ => return None,
        };
        try_replace(regex, text, |c| {
            // Keep what the look-ahead saw.
            let tail = c.get(3).map_or("", |m| m.as_str());
            Some(format!("{}{tail}", self.ordinal(c[1].parse().ok()?)?))
        })
    }

    /// `num2words(n, ordinal=True)`.
    fn ordinal(&self, n: u128) -> Option<String> {
        let card = self.cardinal(n)?;
        Some(match self.lang {
            Language::En => {
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
            }
            Language::De => {
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
                static BIG: LazyLock<Regex> =
                    LazyLock::new(|| re(r" ([a-z]+(illion|illiard)ste)$"));
                let res = ONE_BIG.replace(&res, "$1").into_owned();
                BIG.replace(&res, "$1").into_owned()
            }
            Language::Fr => {
                if n == 1 {
                    "premier".into()
                } else if let Some(stem) = card.strip_suffix("cinq") {
                    format!("{stem}cinquième")
                } else if let Some(stem) = card.strip_suffix("neuf") {
                    format!("{stem}neuvième")
                } else {
                    format!("{}ième", card.strip_suffix('e').unwrap_or(&card))
                }
            }
            Language::Es => self.ordinal_es(n)?,
            Language::It => italian::ordinal(n)?,
            Language::Pt => ordinal_pt(n),
            Language::Hu => hungarian::ordinal(n)?,
            Language::Ko => ordinal_ko(&card)?,
            Language::Pl => polish::ordinal(n)?,
            Language::Ru => russian::ordinal(n)?,
            Language::Tr => turkish::ordinal(n)?,
            Language::Ar => arabic::ordinal(n)?,
            Language::Nl => {
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
            }
            _ => return None,
        })
    }

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

    /// The word between the integer and fraction digits of a decimal.
    fn point_word(&self) -> &'static str {
        match self.lang {
            Language::De => "Komma",
            Language::Fr => "virgule",
            Language::Nl => "komma",
            Language::Es => "punto",
            Language::Pt => "vírgula",
            Language::Ko => "점",
            _ => "point",
        }
    }

    /// `num2words(float(s))` for a decimal `s` (`,` or `.` as the point).
    fn decimal(&self, s: &str) -> Option<String> {
        let v: f64 = s.replace(',', ".").parse().ok()?;
        self.float(v)
    }

    /// `Num2Word_Base.to_cardinal` of a float: integral values as integers, else the integer
    /// part, the point word, and each digit of the shortest representation's fraction.
    fn float(&self, v: f64) -> Option<String> {
        match self.lang {
            Language::It => return italian::float(v),
            Language::Hu => return hungarian::float(v),
            Language::Pl => return polish::float(v),
            Language::Ru => return russian::float(v),
            Language::Ar => return arabic::float(v),
            _ => {}
        }
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
        let mut out = vec![self.cardinal(pre as u128)?, self.point_word().to_string()];
        for d in digits.chars().take(precision as usize) {
            out.push(self.cardinal(u128::from(d.to_digit(10)?))?);
        }
        Some(out.join(" "))
    }

    /// Currency words, separator before the cents, and the reference's `and_equivalents` cut.
    fn currency_forms(&self, c: Currency) -> (Forms, &'static str, &'static str) {
        match (self.lang, c) {
            (Language::De, Currency::Eur) => {
                ((("Euro", "Euro"), ("Cent", "Cent")), " und", " und ")
            }
            (Language::De, Currency::Gbp) => {
                ((("Pfund", "Pfund"), ("Penny", "Pence")), " und", " und ")
            }
            (Language::De, Currency::Usd) => {
                ((("Dollar", "Dollar"), ("Cent", "Cent")), " und", " und ")
            }
            (Language::Fr, Currency::Eur) => {
                ((("euro", "euros"), ("centime", "centimes")), " et", " et ")
            }
            (Language::Fr, Currency::Gbp) => {
                ((("livre", "livres"), ("penny", "pence")), " et", " et ")
            }
            (Language::Fr, Currency::Usd) => {
                ((("dollar", "dollars"), ("cent", "cents")), " et", " et ")
            }
            (Language::Es, Currency::Eur) => (
                (("euro", "euros"), ("céntimo", "céntimos")),
                " con",
                " con ",
            ),
            (Language::Es, Currency::Gbp) => (
                (("libra", "libras"), ("penique", "peniques")),
                " con",
                " con ",
            ),
            (Language::Es, Currency::Usd) => (
                (("dólar", "dólares"), ("centavo", "centavos")),
                " con",
                " con ",
            ),
            (Language::It, Currency::Eur) => {
                ((("euro", "euro"), ("centesimo", "centesimi")), " e", " e ")
            }
            (Language::It, Currency::Gbp) => {
                ((("sterlina", "sterline"), ("penny", "penny")), " e", " e ")
            }
            (Language::It, Currency::Usd) => (
                (("dollaro", "dollari"), ("centesimo", "centesimi")),
                " e",
                " e ",
            ),
            (Language::Pt, Currency::Eur) => {
                ((("euro", "euros"), ("cêntimo", "cêntimos")), " e", " e ")
            }
            (Language::Pt, Currency::Gbp) => {
                ((("libra", "libras"), ("péni", "pence")), " e", " e ")
            }
            (Language::Pt, Currency::Usd) => {
                ((("dólar", "dólares"), ("cêntimo", "cêntimos")), " e", " e ")
            }
            (Language::Nl, Currency::Eur) => ((("euro", "euro"), ("cent", "cent")), ",", ", "),
            (Language::Nl, Currency::Gbp) => ((("pond", "pond"), ("penny", "pence")), ",", ", "),
            (Language::Nl, Currency::Usd) => ((("dollar", "dollar"), ("cent", "cent")), ",", ", "),
            (_, Currency::Eur) => ((("euro", "euro"), ("cent", "cents")), ",", ", "),
            (_, Currency::Gbp) => (
                (("pound sterling", "pounds sterling"), ("penny", "pence")),
                ",",
                ", ",
            ),
            (_, Currency::Usd) => ((("dollar", "dollars"), ("cent", "cents")), ",", ", "),
        }
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
        if self.lang == Language::Pl {
            let integral = amount.fract() == 0.0;
            return match currency {
                Currency::Eur => polish::currency(
                    whole,
                    cents,
                    integral,
                    ["euro", "euro", "euro"],
                    ["cent", "centy", "centów"],
                ),
                Currency::Usd => polish::currency(
                    whole,
                    cents,
                    integral,
                    [
                        "dolar amerykański",
                        "dolary amerykańskie",
                        "dolarów amerykańskich",
                    ],
                    ["cent", "centy", "centów"],
                ),
                Currency::Gbp => None,
            };
        }
        if self.lang == Language::Ar {
            return arabic::currency(amount);
        }
        if self.lang == Language::Tr {
            // `Num2Word_TR.to_currency` takes no currency argument: the reference's call raises.
            return None;
        }
        if self.lang == Language::Ru {
            let integral = amount.fract() == 0.0;
            return match currency {
                Currency::Usd => russian::currency(whole, cents, integral, true),
                Currency::Eur => russian::currency(whole, cents, integral, false),
                Currency::Gbp => None,
            };
        }
        if self.lang == Language::Ko {
            // `Num2Word_KO.to_currency`: dollars only (pounds and euros raise), words joined.
            if !matches!(currency, Currency::Usd) {
                return None;
            }
            let joined: String = self.cardinal(whole)?.split_whitespace().collect();
            return Some(format!("{joined}달러 {}센트", self.cardinal(cents)?));
        }
        let ((unit, sub), separator, cut) = self.currency_forms(currency);
        let plural = |n: u128, forms: (&'static str, &'static str)| {
            // Dutch always uses the singular.
            if n == 1 || self.lang == Language::Nl {
                forms.0
            } else {
                forms.1
            }
        };
        let mut full = format!(
            "{} {}{separator} {} {}",
            self.cardinal(whole)?,
            plural(whole, unit),
            self.cardinal(cents)?,
            plural(cents, sub)
        );
        if self.lang == Language::De {
            // "ein Euro", not "eins Euro".
            full = full.replace("eins ", "ein ");
        }
        if self.lang == Language::Pt {
            // "um milhão de euros"; no "e zero cêntimos", as `Num2Word_PT.to_currency`.
            let plural = unit.1;
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
            full = full.replace(" e zero cêntimos", "");
        }
        if self.lang == Language::It {
            // "una sterlina"; "un" for "uno" everywhere, as `Num2Word_IT.to_currency`.
            if matches!(currency, Currency::Gbp) && full.split(' ').next() == Some("uno") {
                full = full.replacen("uno", "una", 1);
            }
            full = full.replace("uno", "un");
        }
        if self.lang == Language::Es {
            // Apocopes and the feminine of "libra", as `Num2Word_ES.to_currency`.
            let sep = format!("{separator} ");
            let parts: Vec<String> = full
                .split(sep.as_str())
                .enumerate()
                .map(|(i, p)| {
                    let mut p = p.to_string();
                    if i == 0 && matches!(currency, Currency::Gbp) {
                        p = p.replace("uno", "una").replace("cientos", "cientas");
                    }
                    if i <= 1 {
                        p = p.replace("veintiuno", "veintiún").replace("uno", "un");
                    }
                    p
                })
                .collect();
            full = parts.join(&sep);
        }
        if amount.fract() == 0.0 {
            if let Some(i) = full.rfind(cut) {
                full.truncate(i);
            }
        }
        Some(full)
    }
}

/// The large-number words of the EU languages: for each prefix (million's `m`, billion's `b`,
/// ...), 10^(6k) gets `mega` and 10^(6k+3) `giga` (German `Million`, `Milliarde`).
fn eu_high(prefixes: &[&str], mega: &str, giga: &str) -> Vec<(u32, String)> {
    prefixes
        .iter()
        .enumerate()
        .flat_map(|(i, p)| {
            let e = 6 + 6 * i as u32;
            [(e, format!("{p}{mega}")), (e + 3, format!("{p}{giga}"))]
        })
        .collect()
}

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

/// `utils.splitbyx(str(n), 3)` of num2words: the digit groups of `n`, the first one short.
fn thousands_groups(n: u128) -> Vec<u128> {
    let digits = n.to_string();
    let len = digits.len();
    if len <= 3 {
        return vec![n];
    }
    let mut out = Vec::new();
    if !len.is_multiple_of(3) {
        out.push(digits[..len % 3].parse().unwrap_or(0));
    }
    let mut i = len % 3;
    while i < len {
        out.push(digits[i..i + 3].parse().unwrap_or(0));
        i += 3;
    }
    out
}

/// Python's `str(float)` split at the point (`3.0` -> ("3", "0")); None where Python would use
/// an exponent (num2words then fails).
fn python_float_parts(v: f64) -> Option<(String, String)> {
    if !v.is_finite() || (v != 0.0 && !(1e-4..1e16).contains(&v)) {
        return None;
    }
    let repr = format!("{v}");
    Some(match repr.split_once('.') {
        Some((l, r)) => (l.to_string(), r.to_string()),
        None => (repr, "0".to_string()),
    })
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

    fn w(lang: Language) -> Words {
        Words::of(lang).unwrap()
    }

    #[test]
    fn english_like_num2words() {
        let e = w(Language::En);
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

    /// Values printed by num2words 0.5 (the reference's dependency).
    #[test]
    fn german_french_dutch_like_num2words() {
        let nums = [
            1,
            21,
            71,
            80,
            81,
            91,
            100,
            101,
            200,
            1000,
            1985,
            2020,
            1_000_000,
            2_000_000,
            3_500_000_000,
        ];
        let ords = [1, 2, 3, 7, 8, 20, 21, 100, 1000, 1_000_000];
        type Case = (
            Language,
            [&'static str; 15],
            [&'static str; 10],
            [&'static str; 5],
        );
        let cases: [Case; 4] = [
            (
                Language::Es,
                [
                    "uno",
                    "veintiuno",
                    "setenta y uno",
                    "ochenta",
                    "ochenta y uno",
                    "noventa y uno",
                    "cien",
                    "ciento uno",
                    "doscientos",
                    "mil",
                    "mil novecientos ochenta y cinco",
                    "dos mil veinte",
                    "un millón",
                    "dos millones",
                    "tres mil quinientos millones",
                ],
                [
                    "primero",
                    "segundo",
                    "tercero",
                    "séptimo",
                    "octavo",
                    "vigésimo",
                    "vigésimo primero",
                    "centésimo",
                    "milésimo",
                    "millonésimo",
                ],
                [
                    "veinticinco punto cinco",
                    "uno punto cero cinco",
                    "cincuenta euros",
                    "un dólar",
                    "veintiuna libras con cincuenta peniques",
                ],
            ),
            (
                Language::De,
                [
                    "eins",
                    "einundzwanzig",
                    "einundsiebzig",
                    "achtzig",
                    "einundachtzig",
                    "einundneunzig",
                    "einhundert",
                    "einhunderteins",
                    "zweihundert",
                    "eintausend",
                    "eintausendneunhundertfünfundachtzig",
                    "zweitausendzwanzig",
                    "eine Million",
                    "zwei Millionen",
                    "drei Milliarden fünfhundert Millionen",
                ],
                [
                    "erste",
                    "zweite",
                    "dritte",
                    "siebte",
                    "achte",
                    "zwanzigste",
                    "einundzwanzigste",
                    "hundertste",
                    "tausendste",
                    "millionste",
                ],
                [
                    "fünfundzwanzig Komma fünf",
                    "eins Komma null fünf",
                    "fünfzig Euro",
                    "ein Dollar",
                    "einundzwanzig Pfund und fünfzig Pence",
                ],
            ),
            (
                Language::Fr,
                [
                    "un",
                    "vingt et un",
                    "soixante et onze",
                    "quatre-vingts",
                    "quatre-vingt-un",
                    "quatre-vingt-onze",
                    "cent",
                    "cent un",
                    "deux cents",
                    "mille",
                    "mille neuf cent quatre-vingt-cinq",
                    "deux mille vingt",
                    "un million",
                    "deux millions",
                    "trois milliards cinq cents millions",
                ],
                [
                    "premier",
                    "deuxième",
                    "troisième",
                    "septième",
                    "huitième",
                    "vingtième",
                    "vingt et unième",
                    "centième",
                    "millième",
                    "un millionième",
                ],
                [
                    "vingt-cinq virgule cinq",
                    "un virgule zéro cinq",
                    "cinquante euros",
                    "un dollar",
                    "vingt et un livres et cinquante pence",
                ],
            ),
            (
                Language::Nl,
                [
                    "één",
                    "eenentwintig",
                    "eenenzeventig",
                    "tachtig",
                    "eenentachtig",
                    "eenennegentig",
                    "honderd",
                    "honderdéén",
                    "tweehonderd",
                    "duizend",
                    "duizendnegenhonderdvijfentachtig",
                    "tweeduizendtwintig",
                    "een miljoen",
                    "twee miljoen",
                    "drie miljard vijfhonderd miljoen",
                ],
                [
                    "eerste",
                    "tweede",
                    "derde",
                    "zevende",
                    "achtste",
                    "twintigste",
                    "eenentwintigste",
                    "honderdste",
                    "duizendste",
                    "een miljoenste",
                ],
                [
                    "vijfentwintig komma vijf",
                    "één komma nul vijf",
                    "vijftig euro",
                    "één dollar",
                    "eenentwintig pond, vijftig penny",
                ],
            ),
        ];
        for (lang, cards, ordinals, other) in cases {
            let x = w(lang);
            for (n, want) in nums.iter().zip(cards) {
                assert_eq!(x.cardinal(*n).unwrap(), want, "{lang:?} {n}");
            }
            for (n, want) in ords.iter().zip(ordinals) {
                assert_eq!(x.ordinal(*n).unwrap(), want, "{lang:?} ordinal {n}");
            }
            assert_eq!(x.decimal("25,5").unwrap(), other[0]);
            assert_eq!(x.decimal("1.05").unwrap(), other[1]);
            assert_eq!(x.currency_text("50€", Currency::Eur).unwrap(), other[2]);
            assert_eq!(x.currency_text("$1", Currency::Usd).unwrap(), other[3]);
            assert_eq!(x.currency_text("£21.50", Currency::Gbp).unwrap(), other[4]);
        }
    }
}
