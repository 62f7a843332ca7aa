//! Spelling out numbers in a lyric line, as the reference's `expand_numbers_multilingual` (which
//! calls the `num2words` package): thousands separators removed, currency amounts
//! (`$ £ €`), decimals, ordinals (`1st`, `21st`), then cardinals.
//!
//! This file is the driver ([`expand_numbers`]) and what the languages share: the
//! [`NumberWords`] trait each language implements in its own file, num2words' split-and-merge of
//! number words ([`Cards`], for the languages built on it), its decimal and currency forms.
//! Chinese numbers are `zh_num2words` ([`chinese`]). Czech keeps its digits as the reference
//! does (it asks num2words for a language num2words lacks); Japanese and Hindi lines are not
//! number-expanded by the reference either.

mod arabic;
pub mod chinese;
mod dutch;
mod english;
mod french;
mod german;
mod hungarian;
mod italian;
mod korean;
mod polish;
mod portuguese;
mod russian;
mod spanish;
mod turkish;

use std::sync::LazyLock;

use regex::{Captures, Regex};

use super::Language;

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).unwrap_or_else(|e| panic!("number pattern {pattern}: {e}"))
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

/// One language's `num2words`: what [`expand_numbers`] asks of it. Each language implements
/// it in its own file.
trait NumberWords: Sync {
    /// `num2words(n)`; None where not spelled (beyond the largest number word).
    fn cardinal(&self, n: u128) -> Option<String>;

    /// `num2words(n, ordinal=True)` (only asked for numbers [`NumberWords::cardinal`] spells);
    /// None where num2words raises.
    fn ordinal(&self, n: u128) -> Option<String>;

    /// `num2words(v)` of a float (integral values as integers).
    fn float(&self, v: f64) -> Option<String>;

    /// The reference's `_expand_currency` of `amount` (`whole` units and `cents` as
    /// `parse_currency_parts` rounds them); None where num2words raises.
    fn currency(&self, amount: f64, whole: u128, cents: u128, currency: Currency)
        -> Option<String>;

    /// The ordinal suffixes of the language (`1st`, `2.`, `3º`): group 1 the number; a group 3,
    /// when there is one, is kept after the words.
    fn ordinal_regex(&self) -> &'static Regex;

    /// Whether `1,000` groups thousands (English, Russian) rather than `1.000`.
    fn comma_thousands(&self) -> bool {
        false
    }

    /// Whether decimals (`3.5`, `3,5`) are spelled out (all but Turkish).
    fn spells_decimals(&self) -> bool {
        true
    }
}

/// The words of `lang`, if the reference spells its numbers with num2words.
fn words_of(lang: Language) -> Option<&'static dyn NumberWords> {
    Some(match lang {
        Language::En => &*english::WORDS,
        Language::De => &*german::WORDS,
        Language::Fr => &*french::WORDS,
        Language::Nl => &*dutch::WORDS,
        Language::Es => &*spanish::WORDS,
        Language::Pt => &*portuguese::WORDS,
        Language::Ko => &*korean::WORDS,
        Language::It => &italian::Italian,
        Language::Hu => &hungarian::Hungarian,
        Language::Pl => &polish::Polish,
        Language::Ru => &russian::Russian,
        Language::Tr => &turkish::Turkish,
        Language::Ar => &arabic::Arabic,
        // The reference asks num2words for "cz", which num2words 0.5.14 (its pinned version)
        // does not know: it raises, and Czech lines keep their digits.
        Language::Cs | Language::Zh | Language::Ja | Language::Hi => return None,
    })
}

/// The number expansion of `text` (already lowercased) in `lang`; None where the reference does
/// none or would raise (it then keeps the text).
pub fn expand_numbers(text: &str, lang: Language) -> Option<String> {
    if lang == Language::Zh {
        return Some(super::chinese::text_norm(text));
    }
    let num = words_of(lang)?;
    let mut t = if num.comma_thousands() {
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
        match try_replace(re, &t, |c| currency_text(num, &c[0], currency)) {
            Some(next) => t = next,
            None => break,
        }
    }
    if num.spells_decimals() {
        t = try_replace(&DECIMAL, &t, |c| decimal(num, &c[1]))?;
    }
    t = try_replace(num.ordinal_regex(), &t, |c| {
        // Keep what a look-ahead group saw.
        let tail = c.get(3).map_or("", |m| m.as_str());
        Some(format!("{}{tail}", ordinal(num, c[1].parse().ok()?)?))
    })?;
    try_replace(&NUMBER, &t, |c| num.cardinal(c[0].parse().ok()?))
}

/// `num2words(n, ordinal=True)`: None where the cardinal is not spelled, as num2words (which
/// spells the cardinal first).
fn ordinal(num: &dyn NumberWords, n: u128) -> Option<String> {
    num.cardinal(n)?;
    num.ordinal(n)
}

/// `num2words(float(s))` for a decimal `s` (`,` or `.` as the point).
fn decimal(num: &dyn NumberWords, s: &str) -> Option<String> {
    let v: f64 = s.replace(',', ".").parse().ok()?;
    num.float(v)
}

/// The reference's `_expand_currency` of a match such as `$100`, `£20`, `3,50€`.
fn currency_text(num: &dyn NumberWords, m: &str, currency: Currency) -> Option<String> {
    let digits: String = m
        .replace(',', ".")
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let amount: f64 = parse_python_float(&digits)?;
    let (whole, cents) = quantize_cents(amount)?;
    num.currency(amount, whole, cents, currency)
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

/// num2words' split-and-merge (`Num2Word_Base`): the number words (`cards`, largest first) and
/// the language's `merge` rule.
struct Cards {
    cards: Vec<(u128, String)>,
    merge: Merge,
}

impl Cards {
    /// The words 0..=n of `low` (index = value), the tens / hundred / thousand words `mid`, the
    /// powers of ten `high` (exponent, word), and the merge rule.
    fn new(low: &[&str], mid: &[(u128, &str)], high: Vec<(u32, String)>, merge: Merge) -> Self {
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
        Self { cards, merge }
    }

    /// `num2words(n)`; None beyond the largest number word (the reference's own limit is
    /// higher).
    fn cardinal(&self, n: u128) -> Option<String> {
        if n >= self.cards.first()?.0.checked_mul(1000)? {
            return None;
        }
        Some(self.pair(n).0)
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
}

/// `Num2Word_Base.to_cardinal` of a float: integral values as integers, else the integer part,
/// the `point` word, and each digit of the shortest representation's fraction, spelled by
/// `cardinal`.
fn float_words(v: f64, point: &str, cardinal: impl Fn(u128) -> Option<String>) -> Option<String> {
    if !v.is_finite() || !(0.0..1e30).contains(&v) {
        return None;
    }
    if v.fract() == 0.0 {
        return cardinal(v as u128);
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
    let mut out = vec![cardinal(pre as u128)?, point.to_string()];
    for d in digits.chars().take(precision as usize) {
        out.push(cardinal(u128::from(d.to_digit(10)?))?);
    }
    Some(out.join(" "))
}

/// Word forms (singular, plural) of a currency unit and its hundredth.
type Forms = ((&'static str, &'static str), (&'static str, &'static str));

/// A currency's words in `Num2Word_Base.to_currency`: the unit and cent forms, the separator
/// before the cents, and what an integral amount cuts off (`and_equivalents`).
struct CurrencyForms {
    forms: Forms,
    separator: &'static str,
    cut: &'static str,
}

/// The base (English) currency forms, used by the languages without their own.
fn base_currency_forms(c: Currency) -> CurrencyForms {
    let forms = match c {
        Currency::Eur => (("euro", "euro"), ("cent", "cents")),
        Currency::Gbp => (("pound sterling", "pounds sterling"), ("penny", "pence")),
        Currency::Usd => (("dollar", "dollars"), ("cent", "cents")),
    };
    CurrencyForms {
        forms,
        separator: ",",
        cut: ", ",
    }
}

impl CurrencyForms {
    /// `"<whole> <unit><separator> <cents> <cent unit>"`, the plural picked by `plural`.
    fn words(
        &self,
        whole: u128,
        cents: u128,
        cardinal: impl Fn(u128) -> Option<String>,
        plural: impl Fn(u128, (&'static str, &'static str)) -> &'static str,
    ) -> Option<String> {
        let (unit, sub) = self.forms;
        Some(format!(
            "{} {}{} {} {}",
            cardinal(whole)?,
            plural(whole, unit),
            self.separator,
            cardinal(cents)?,
            plural(cents, sub)
        ))
    }

    /// `full` without its cents when `amount` is integral.
    fn cut_integral(&self, mut full: String, amount: f64) -> String {
        if amount.fract() == 0.0 {
            if let Some(i) = full.rfind(self.cut) {
                full.truncate(i);
            }
        }
        full
    }
}

/// num2words' usual plural: the singular for one.
fn plural_of(n: u128, forms: (&'static str, &'static str)) -> &'static str {
    if n == 1 {
        forms.0
    } else {
        forms.1
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

    /// A language's words, with the driver's entry points as methods (as the tests read).
    struct W(&'static dyn NumberWords);

    impl W {
        fn cardinal(&self, n: u128) -> Option<String> {
            self.0.cardinal(n)
        }
        fn ordinal(&self, n: u128) -> Option<String> {
            ordinal(self.0, n)
        }
        fn decimal(&self, s: &str) -> Option<String> {
            decimal(self.0, s)
        }
        fn currency_text(&self, m: &str, c: Currency) -> Option<String> {
            currency_text(self.0, m, c)
        }
    }

    fn w(lang: Language) -> W {
        W(words_of(lang).unwrap())
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
