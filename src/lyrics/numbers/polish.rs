//! Polish number words as `num2words(lang="pl")`: three-digit groups with the plural forms of
//! the thousands words, decimals as "przecinek" and the fraction digits read as one number,
//! ordinals with the compound forms (`dwutysięczny`), euro and dollar amounts (pounds raise in
//! num2words, so the reference leaves them).

use std::sync::LazyLock;

use regex::Regex;

use super::{re, Currency, NumberWords};

const ONES: [&str; 10] = [
    "",
    "jeden",
    "dwa",
    "trzy",
    "cztery",
    "pięć",
    "sześć",
    "siedem",
    "osiem",
    "dziewięć",
];
const TEENS: [&str; 10] = [
    "dziesięć",
    "jedenaście",
    "dwanaście",
    "trzynaście",
    "czternaście",
    "piętnaście",
    "szesnaście",
    "siedemnaście",
    "osiemnaście",
    "dziewiętnaście",
];
const TENS: [&str; 10] = [
    "",
    "",
    "dwadzieścia",
    "trzydzieści",
    "czterdzieści",
    "pięćdziesiąt",
    "sześćdziesiąt",
    "siedemdziesiąt",
    "osiemdziesiąt",
    "dziewięćdziesiąt",
];
const HUNDREDS: [&str; 10] = [
    "",
    "sto",
    "dwieście",
    "trzysta",
    "czterysta",
    "pięćset",
    "sześćset",
    "siedemset",
    "osiemset",
    "dziewięćset",
];
/// (plain, compound) ordinal forms of 1..=19.
const ONES_ORD: [(&str, &str); 20] = [
    ("", ""),
    ("pierwszy", "pierwszo"),
    ("drugi", "dwu"),
    ("trzeci", "trzy"),
    ("czwarty", "cztero"),
    ("piąty", "pięcio"),
    ("szósty", "sześcio"),
    ("siódmy", "siedmio"),
    ("ósmy", "ośmio"),
    ("dziewiąty", "dziewięcio"),
    ("dziesiąty", "dziesięcio"),
    ("jedenasty", "jedenasto"),
    ("dwunasty", "dwunasto"),
    ("trzynasty", "trzynasto"),
    ("czternasty", "czternasto"),
    ("piętnasty", "piętnasto"),
    ("szesnasty", "szesnasto"),
    ("siedemnasty", "siedemnasto"),
    ("osiemnasty", "osiemnasto"),
    ("dziewiętnasty", "dziewiętnasto"),
];
const TENS_ORD: [(&str, &str); 10] = [
    ("", ""),
    ("", ""),
    ("dwudziesty", "dwudziesto"),
    ("trzydziesty", "trzydiesto"),
    ("czterdziesty", "czterdziesto"),
    ("pięćdziesiąty", "pięćdziesięcio"),
    ("sześćdziesiąty", "sześćdziesięcio"),
    ("siedemdziesiąty", "siedemdziesięcio"),
    ("osiemdziesiąty", "osiemdziesięcio"),
    ("dziewięćdziesiąty", "dziewięćdziesięcio"),
];
const HUNDREDS_ORD: [(&str, &str); 10] = [
    ("", ""),
    ("setny", "stu"),
    ("dwusetny", "dwustu"),
    ("trzysetny", "trzystu"),
    ("czterysetny", "czterystu"),
    ("pięćsetny", "pięcset"),
    ("sześćsetny", "sześćset"),
    ("siedemsetny", "siedemset"),
    ("osiemsetny", "ośiemset"),
    ("dziewięćsetny", "dziewięćset"),
];

/// `Num2Word_PL.pluralize`: 1 / 2-4 (not 12-14) / the rest.
pub(super) fn plural(n: u128, forms: [&str; 3]) -> &str {
    if n == 1 {
        forms[0]
    } else if (2..5).contains(&(n % 10)) && !(10..=20).contains(&(n % 100)) {
        forms[1]
    } else {
        forms[2]
    }
}

/// The forms of 1000^level.
fn thousands(level: usize) -> Option<[String; 3]> {
    if level == 1 {
        return Some(["tysiąc".into(), "tysiące".into(), "tysięcy".into()]);
    }
    const PREFIXES: [&str; 10] = [
        "mi", "bi", "try", "kwadry", "kwinty", "seksty", "septy", "okty", "nony", "decy",
    ];
    let idx = level.checked_sub(2)?;
    let name = format!(
        "{}{}",
        PREFIXES.get(idx / 2)?,
        if idx % 2 == 0 { "lion" } else { "liard" }
    );
    Some([name.clone(), format!("{name}y"), format!("{name}ów")])
}

/// `Num2Word_PL._int2word`.
pub(super) fn cardinal(n: u128) -> Option<String> {
    if n == 0 {
        return Some("zero".into());
    }
    let chunks = super::thousands_groups(n);
    let mut words: Vec<String> = Vec::new();
    let mut level = chunks.len();
    for x in chunks {
        level -= 1;
        if x == 0 {
            continue;
        }
        let (n1, n2, n3) = (
            (x % 10) as usize,
            (x / 10 % 10) as usize,
            (x / 100) as usize,
        );
        if n3 > 0 {
            words.push(HUNDREDS[n3].into());
        }
        if n2 > 1 {
            words.push(TENS[n2].into());
        }
        if n2 == 1 {
            words.push(TEENS[n1].into());
        } else if n1 > 0 && !(level > 0 && x == 1) {
            words.push(ONES[n1].into());
        }
        if level > 0 {
            let [a, b, c] = thousands(level)?;
            words.push(plural(x, [&a, &b, &c]).to_string());
        }
    }
    Some(words.join(" "))
}

/// `Num2Word_PL.to_cardinal` of a float: Python's `str` split at the point, leading zeros of
/// the fraction read "zero", then the fraction as a number (`3.0` reads "trzy przecinek zero
/// zero").
pub(super) fn float(v: f64) -> Option<String> {
    let (left, right) = super::python_float_parts(v)?;
    let (left, right) = (left.as_str(), right.as_str());
    let zeros = right.len() - right.trim_start_matches('0').len();
    Some(format!(
        "{} przecinek {}{}",
        cardinal(left.parse().ok()?)?,
        "zero ".repeat(zeros),
        cardinal(right.parse().ok()?)?
    ))
}

/// `Num2Word_PL.to_ordinal`; None where num2words raises (0, compound hundreds, 10^12 and up).
pub(super) fn ordinal(n: u128) -> Option<String> {
    let mut fragments = super::thousands_groups(n);
    let mut level = 0;
    let mut last = *fragments.last()?;
    while last == 0 {
        level += 1;
        fragments.pop();
        last = *fragments.last()?;
    }
    let mut words: Vec<String> = Vec::new();
    if fragments.len() > 1 {
        words.push(cardinal(n - last * 1000u128.pow(level as u32))?);
    }
    let compound = level > 0;
    let pick = |pair: (&'static str, &'static str)| if compound { pair.1 } else { pair.0 };
    let (n1, n2, n3) = (
        (last % 10) as usize,
        (last / 10 % 10) as usize,
        (last / 100) as usize,
    );
    let last_two = n2 * 10 + n1;
    if last_two == 0 {
        words.push(pick(HUNDREDS_ORD[n3]).into());
    } else if compound && last == 1 {
    } else if last_two < 20 {
        if n3 > 0 {
            if compound {
                return None; // HUNDREDS[n3][1] is an IndexError in num2words
            }
            words.push(HUNDREDS[n3].into());
        }
        words.push(pick(ONES_ORD[last_two]).into());
    } else if last_two % 10 == 0 {
        if n3 > 0 {
            if compound {
                return None;
            }
            words.push(HUNDREDS[n3].into());
        }
        words.push(pick(TENS_ORD[n2]).into());
    } else {
        if n3 > 0 {
            words.push(HUNDREDS[n3].into());
        }
        words.push(TENS_ORD[n2].0.into());
        words.push(ONES_ORD[n1].0.into());
    }
    let mut output = words.join(" ");
    if last == 1 && level > 0 && !output.is_empty() {
        output.push(' ');
    }
    if level > 0 {
        output.push_str(match level {
            1 => "tysięczny",
            2 => "milionowy",
            3 => "milairdowy",
            _ => return None,
        });
    }
    Some(output)
}

/// `num2words(amount, to="currency", lang="pl")` for euros and dollars (None for pounds), with
/// the reference's cut of ", <zero cents>" for whole amounts.
pub(super) fn currency(
    whole: u128,
    cents: u128,
    integral: bool,
    unit: [&str; 3],
    sub: [&str; 3],
) -> Option<String> {
    let full = format!(
        "{} {}, {} {}",
        cardinal(whole)?,
        plural(whole, unit),
        cardinal(cents)?,
        plural(cents, sub)
    );
    Some(match (integral, full.rfind(", ")) {
        (true, Some(i)) => full[..i].to_string(),
        _ => full,
    })
}

/// num2words' Polish (`Num2Word_PL`).
pub(super) struct Polish;

/// `1º`, `1ª`, `1st`, `2nd`, `3rd`, `4th`.
static ORDINAL_SUFFIX: LazyLock<Regex> = LazyLock::new(|| re(r"([0-9]+)(º|ª|st|nd|rd|th)"));

impl NumberWords for Polish {
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
            Currency::Eur => currency(
                whole,
                cents,
                integral,
                ["euro", "euro", "euro"],
                ["cent", "centy", "centów"],
            ),
            Currency::Usd => currency(
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
        }
    }

    fn ordinal_regex(&self) -> &'static Regex {
        &ORDINAL_SUFFIX
    }
}
