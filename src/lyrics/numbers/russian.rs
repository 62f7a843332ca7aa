//! Russian number words as `num2words(lang="ru")` with its defaults (nominative, masculine):
//! cardinals, ordinals (joined ones such as `двухтысячный`), decimals (`целая` / `целых` and
//! the fraction's ordinal denominator), dollar and euro amounts (pounds raise in num2words, so
//! the reference leaves them).

use std::sync::LazyLock;

use regex::Regex;

use super::{re, Currency, NumberWords};

/// Grammatical gender of the forms asked for (`m`, `f`, `n`) or the plural.
#[derive(Clone, Copy, PartialEq)]
enum Form {
    M,
    F,
    N,
    Plural,
}

/// Case: nominative or genitive (the only two the reference's calls reach).
#[derive(Clone, Copy, PartialEq)]
enum Case {
    Nom,
    Gen,
}

/// ONES[n] (nominative by form, genitive masculine).
fn ones(n: usize, case: Case, form: Form) -> &'static str {
    const NOM: [[&str; 4]; 10] = [
        ["ноль"; 4],
        ["один", "одна", "одно", "одни"],
        ["два", "две", "два", "двое"],
        ["три", "три", "три", "трое"],
        ["четыре", "четыре", "четыре", "четверо"],
        ["пять"; 4],
        ["шесть"; 4],
        ["семь"; 4],
        ["восемь"; 4],
        ["девять"; 4],
    ];
    const GEN: [&str; 10] = [
        "ноля",
        "одного",
        "двух",
        "трёх",
        "четырёх",
        "пяти",
        "шести",
        "семи",
        "восьми",
        "девяти",
    ];
    match case {
        Case::Gen => GEN[n],
        Case::Nom => NOM[n][form as usize],
    }
}

const TENS_PREFIX: [&str; 10] = [
    "",
    "один",
    "две",
    "три",
    "четыр",
    "пят",
    "шест",
    "сем",
    "восем",
    "девят",
];

/// TENS[o]: 10..19.
fn teens(o: usize, case: Case) -> String {
    match (o, case) {
        (0, Case::Nom) => "десять".into(),
        (0, Case::Gen) => "десяти".into(),
        (_, Case::Nom) => format!("{}надцать", TENS_PREFIX[o]),
        (_, Case::Gen) => format!("{}надцати", TENS_PREFIX[o]),
    }
}

/// TWENTIES[t]: 20..90.
fn tens(t: usize, case: Case) -> &'static str {
    const NOM: [&str; 10] = [
        "",
        "",
        "двадцать",
        "тридцать",
        "сорок",
        "пятьдесят",
        "шестьдесят",
        "семьдесят",
        "восемьдесят",
        "девяносто",
    ];
    const GEN: [&str; 10] = [
        "",
        "",
        "двадцати",
        "тридцати",
        "сорока",
        "пятидесяти",
        "шестидесяти",
        "семидесяти",
        "восьмидесяти",
        "девяноста",
    ];
    match case {
        Case::Nom => NOM[t],
        Case::Gen => GEN[t],
    }
}

/// HUNDREDS[h].
fn hundreds(h: usize, case: Case) -> &'static str {
    const NOM: [&str; 10] = [
        "",
        "сто",
        "двести",
        "триста",
        "четыреста",
        "пятьсот",
        "шестьсот",
        "семьсот",
        "восемьсот",
        "девятьсот",
    ];
    const GEN: [&str; 10] = [
        "",
        "ста",
        "двухсот",
        "трёхсот",
        "четырёхсот",
        "пятисот",
        "шестисот",
        "семисот",
        "восьмисот",
        "девятисот",
    ];
    match case {
        Case::Nom => NOM[h],
        Case::Gen => GEN[h],
    }
}

/// An ordinal adjective: `prefix` + the ending of (case, form); `group` picks `ой` / `ый` for the
/// masculine nominative.
fn adjective(prefix: &str, group: usize, case: Case, form: Form) -> String {
    let ending = match (case, form) {
        (Case::Nom, Form::M) => ["ой", "ый"][group],
        (Case::Nom, Form::F) => "ая",
        (Case::Nom, Form::N) => "ое",
        (Case::Nom, Form::Plural) => "ые",
        (Case::Gen, Form::F) => "ой",
        (Case::Gen, Form::Plural) => "ых",
        (Case::Gen, _) => "ого",
    };
    format!("{prefix}{ending}")
}

/// ONES_ORD[o].
fn ones_ord(o: usize, case: Case, form: Form) -> String {
    if o == 3 {
        let nom = ["третий", "третья", "третье", "третьи"];
        let gen = ["третьего", "третьей", "третьего", "третьих"];
        return match case {
            Case::Nom => nom[form as usize],
            Case::Gen => gen[form as usize],
        }
        .into();
    }
    const PREFIX: [&str; 10] = [
        "нулев",
        "перв",
        "втор",
        "",
        "четвёрт",
        "пят",
        "шест",
        "седьм",
        "восьм",
        "девят",
    ];
    const GROUP: [usize; 10] = [0, 1, 0, 0, 1, 1, 0, 0, 0, 1];
    adjective(PREFIX[o], GROUP[o], case, form)
}

/// The plural forms of 1000^level (nominative).
fn thousands(level: usize) -> Option<[String; 3]> {
    if level == 1 {
        return Some(["тысяча".into(), "тысячи".into(), "тысяч".into()]);
    }
    let prefix = thousands_prefix(level)?;
    Some([
        prefix.to_string(),
        format!("{prefix}а"),
        format!("{prefix}ов"),
    ])
}

fn thousands_prefix(level: usize) -> Option<&'static str> {
    [
        "миллион",
        "миллиард",
        "триллион",
        "квадриллион",
        "квинтиллион",
        "секстиллион",
        "септиллион",
        "октиллион",
        "нониллион",
    ]
    .get(level.checked_sub(2)?)
    .copied()
}

/// `Num2Word_RU.pluralize`.
fn plural(n: u128, forms: &[String; 3]) -> &str {
    if matches!(n % 100, 11..=14) {
        &forms[2]
    } else if n % 10 == 1 {
        &forms[0]
    } else if matches!(n % 10, 2..=4) {
        &forms[1]
    } else {
        &forms[2]
    }
}

/// `Num2Word_RU._int2word(n, cardinal, case, plural/gender)`.
fn int2word(n: u128, cardinal: bool, case: Case, form: Form) -> Option<String> {
    if n == 0 {
        return Some(if cardinal {
            ones(0, Case::Nom, form).into()
        } else {
            ones_ord(0, case, form)
        });
    }
    let chunks = super::thousands_groups(n);
    let ord_join = chunks.last() == Some(&0);
    let last_nonzero = chunks.iter().rposition(|&x| x != 0)?;
    let rightest = chunks.len() - 1 - last_nonzero;
    let mut words: Vec<String> = Vec::new();
    let mut level = chunks.len();
    for x in chunks {
        level -= 1;
        if x == 0 {
            continue;
        }
        let (o, t, h) = (
            (x % 10) as usize,
            (x / 10 % 10) as usize,
            (x / 100) as usize,
        );
        if cardinal {
            if h > 0 {
                words.push(hundreds(h, case).into());
            }
            if t > 1 {
                words.push(tens(t, case).into());
            }
            if t == 1 {
                words.push(teens(o, case));
            } else if o > 0 {
                let f = if level == 1 { Form::F } else { form };
                words.push(ones(o, case, f).into());
            }
            if level > 0 {
                words.push(plural(x, &thousands(level)?).to_string());
            }
        } else if !(ord_join && rightest == level) {
            if h > 0 {
                if t == 0 && o == 0 {
                    let prefix = if h == 1 {
                        "сот"
                    } else {
                        hundreds(h, Case::Gen)
                    };
                    words.push(adjective(prefix, 1, case, form));
                } else {
                    words.push(hundreds(h, Case::Nom).into());
                }
            }
            if t > 1 {
                if o == 0 {
                    const PREFIX: [&str; 10] = [
                        "",
                        "",
                        "двадцат",
                        "тридцат",
                        "сороков",
                        "пятидесят",
                        "шестидесят",
                        "семидесят",
                        "восьмидесят",
                        "девяност",
                    ];
                    words.push(adjective(PREFIX[t], usize::from(t != 4), case, form));
                } else {
                    words.push(tens(t, Case::Nom).into());
                }
            }
            if t == 1 {
                let prefix = if o == 0 {
                    "десят".to_string()
                } else {
                    format!("{}надцат", TENS_PREFIX[o])
                };
                words.push(adjective(&prefix, 1, case, form));
            } else if o > 0 {
                if level == 0 {
                    words.push(ones_ord(o, case, form));
                } else if o == 1 && h == 0 && t == 0 {
                } else if level == 1 {
                    words.push(ones(o, Case::Nom, Form::F).into());
                } else {
                    words.push(ones(o, Case::Nom, Form::M).into());
                }
            }
            if level > 0 {
                // The thousands word of a non-final group is nominative (the reference's
                // `t_case`); only the defaults' nominative is reached here.
                words.push(plural(x, &thousands(level)?).to_string());
            }
        } else {
            let mut joined = String::new();
            if h > 1 {
                joined.push_str(hundreds(h, Case::Gen));
            } else if h == 1 {
                joined.push_str(hundreds(1, Case::Nom));
            }
            if t == 9 {
                joined.push_str(tens(9, Case::Nom));
            } else if t > 1 {
                joined.push_str(tens(t, Case::Gen));
            }
            if t == 1 {
                joined.push_str(&teens(o, Case::Gen));
            } else if o > 0 {
                if level == 0 {
                    joined.push_str(&ones_ord(o, case, form));
                } else if o == 1 && t != 1 {
                    if !(t == 0 && h == 0) {
                        joined.push_str(ones(1, Case::Nom, Form::N));
                    }
                } else {
                    joined.push_str(ones(o, Case::Gen, Form::M));
                }
            }
            if level > 0 {
                let prefix = if level == 1 {
                    "тысячн".to_string()
                } else {
                    format!("{}н", thousands_prefix(level)?)
                };
                joined.push_str(&adjective(&prefix, 1, case, form));
            }
            words.push(joined);
        }
    }
    Some(words.join(" "))
}

/// `num2words(n, lang="ru")`.
pub(super) fn cardinal(n: u128) -> Option<String> {
    int2word(n, true, Case::Nom, Form::M)
}

/// `num2words(n, lang="ru", ordinal=True)`.
pub(super) fn ordinal(n: u128) -> Option<String> {
    int2word(n, false, Case::Nom, Form::M)
}

/// `Num2Word_RU.to_cardinal` of a float: feminine integer part, `целая` / `целых`, the fraction
/// digits as a feminine number, and its denominator (`десятая`, `сотых`, ...).
pub(super) fn float(v: f64) -> Option<String> {
    let (left, right) = super::python_float_parts(v)?;
    let (left, right) = (left.as_str(), right.as_str());
    let l: u128 = left.parse().ok()?;
    let point = ["целая".to_string(), "целых".into(), "целых".into()];
    let power = 10u128.checked_pow(right.len() as u32)?;
    let denominator = if right.ends_with('1') && !right.ends_with("11") {
        int2word(power, false, Case::Nom, Form::F)?
    } else {
        int2word(power, false, Case::Gen, Form::Plural)?
    };
    Some(format!(
        "{} {} {} {denominator}",
        int2word(l, true, Case::Nom, Form::F)?,
        plural(l, &point),
        int2word(right.parse().ok()?, true, Case::Nom, Form::F)?
    ))
}

/// `num2words(amount, to="currency", lang="ru")` for dollars and euros, with the reference's cut
/// of ", <zero cents>" for whole amounts.
pub(super) fn currency(whole: u128, cents: u128, integral: bool, dollars: bool) -> Option<String> {
    let unit: [String; 3] = if dollars {
        ["доллар".into(), "доллара".into(), "долларов".into()]
    } else {
        ["евро".into(), "евро".into(), "евро".into()]
    };
    let sub: [String; 3] = ["цент".into(), "цента".into(), "центов".into()];
    let full = format!(
        "{} {}, {} {}",
        cardinal(whole)?,
        plural(whole, &unit),
        cardinal(cents)?,
        plural(cents, &sub)
    );
    Some(match (integral, full.rfind(", ")) {
        (true, Some(i)) => full[..i].to_string(),
        _ => full,
    })
}

/// num2words' Russian (`Num2Word_RU`).
pub(super) struct Russian;

/// `1-й`, `1-я`, `1-е`, `1-ое`, `1-ье`, `1-го`.
static ORDINAL_SUFFIX: LazyLock<Regex> = LazyLock::new(|| re(r"([0-9]+)(-й|-я|-е|-ое|-ье|-го)"));

impl NumberWords for Russian {
    fn cardinal(&self, n: u128) -> Option<String> {
        cardinal(n)
    }

    fn ordinal(&self, n: u128) -> Option<String> {
        ordinal(n)
    }

    fn float(&self, v: f64) -> Option<String> {
        float(v)
    }

    fn currency(&self, amount: f64, whole: u128, cents: u128, c: Currency) -> Option<String> {
        let integral = amount.fract() == 0.0;
        match c {
            Currency::Usd => currency(whole, cents, integral, true),
            Currency::Eur => currency(whole, cents, integral, false),
            Currency::Gbp => None,
        }
    }

    fn ordinal_regex(&self) -> &'static Regex {
        &ORDINAL_SUFFIX
    }

    fn comma_thousands(&self) -> bool {
        true
    }
}
