//! Chinese number normalisation as the reference's `zh_num2words.normalize_nsw` (the number step
//! of its Chinese cleaners): dates, money, mobile and fixed telephone numbers, fractions,
//! percentages, numbers before a measure word, digit strings (4 to 32 digits, read digit by
//! digit) and the remaining numbers, in that order, become Chinese characters in the "mid"
//! numbering system (万, 亿 = 万万, 兆 = 万亿, ...), `两` before 百 / 千 / 万 / ... as the
//! reference writes it.
//!
//! ```
//! use acestep::lyrics::numbers::chinese::normalize_nsw;
//! assert_eq!(normalize_nsw("2008年8月8日"), "二零零八年八月八日");
//! assert_eq!(normalize_nsw("我有2000元"), "我有两千元");
//! assert_eq!(normalize_nsw("增长了12.5%"), "增长了百分之十二点五");
//! ```

use std::sync::LazyLock;

use regex::Regex;

const DIGITS: [char; 10] = ['零', '一', '二', '三', '四', '五', '六', '七', '八', '九'];

/// Units of the "mid" system with their powers of ten, ascending: 十 百 千 万, then 亿 and up
/// by factors of 10^4.
const UNITS: [(u32, char); 14] = [
    (1, '十'),
    (2, '百'),
    (3, '千'),
    (4, '万'),
    (8, '亿'),
    (12, '兆'),
    (16, '京'),
    (20, '垓'),
    (24, '秭'),
    (28, '穰'),
    (32, '沟'),
    (36, '涧'),
    (40, '正'),
    (44, '载'),
];

/// Money units after a number.
const CURRENCY_UNITS: &str =
    "((亿|千万|百万|万|千|百)|(亿|千万|百万|万|千|百|)元|(亿|千万|百万|万|千|百|)块|角|毛|分)";

/// Measure words after a number.
const COM_QUANTIFIERS: &str = concat!(
    "(匹|张|座|回|场|尾|条|个|首|阙|阵|网|炮|顶|丘|棵|只|支|袭|辆|挑|担|颗|壳|窠|曲|墙|群|腔|",
    "砣|座|客|贯|扎|捆|刀|令|打|手|罗|坡|山|岭|江|溪|钟|队|单|双|对|出|口|头|脚|板|跳|枝|件|贴|",
    "针|线|管|名|位|身|堂|课|本|页|家|户|层|丝|毫|厘|分|钱|两|斤|担|铢|石|钧|锱|忽|(千|毫|微)克|",
    "毫|厘|分|寸|尺|丈|里|寻|常|铺|程|(千|分|厘|毫|微)米|撮|勺|合|升|斗|石|盘|碗|碟|叠|桶|笼|盆|",
    "盒|杯|钟|斛|锅|簋|篮|盘|桶|罐|瓶|壶|卮|盏|箩|箱|煲|啖|袋|钵|年|月|日|季|刻|时|周|天|秒|分|旬|",
    "纪|岁|世|更|夜|春|夏|秋|冬|代|伏|辈|丸|泡|粒|颗|幢|堆|条|根|支|道|面|片|张|颗|块)"
);

/// One symbol of a spelled-out number.
#[derive(Clone, Copy, PartialEq)]
enum Sym {
    Digit(usize),
    Unit(u32, char),
    Point,
    Liang,
}

/// The value of a decimal digit (ASCII or full-width).
fn digit_value(c: char) -> Option<usize> {
    match c {
        '0'..='9' => Some(c as usize - '0' as usize),
        '０'..='９' => Some(c as usize - '０' as usize),
        _ => None,
    }
}

/// The symbols of an integer string with units (the reference's recursive `get_value`).
fn with_units(value: &[char], use_zeros: bool) -> Vec<Sym> {
    let start = value.iter().take_while(|&&c| c == '0').count();
    let stripped = &value[start..];
    match stripped.len() {
        0 => Vec::new(),
        1 => {
            let d = Sym::Digit(digit_value(stripped[0]).unwrap_or(0));
            if use_zeros && start > 0 {
                vec![Sym::Digit(0), d]
            } else {
                vec![d]
            }
        }
        n => {
            let &(power, ch) = UNITS
                .iter()
                .rev()
                .find(|(p, _)| (*p as usize) < n)
                .unwrap_or(&UNITS[0]);
            let p = power as usize;
            let mut out = with_units(&value[..value.len() - p], true);
            out.push(Sym::Unit(power, ch));
            out.extend(with_units(&stripped[n - p..], true));
            out
        }
    }
}

/// `num2chn`: a number string (digits, at most one `.`) in Chinese characters. `use_units`:
/// 二千零五 (else digit by digit, 二零零五); `alt_two`: 两 before units other than 十.
pub fn num2chn(number: &str, alt_two: bool, use_units: bool) -> String {
    let (int_part, dec_part) = match number.split_once('.') {
        Some((i, d)) => (i, d),
        None => (number, ""),
    };
    let int_chars: Vec<char> = int_part.chars().collect();
    let digit = |c: &char| Sym::Digit(digit_value(*c).unwrap_or(0));
    let mut syms = if use_units && int_chars.len() > 1 {
        with_units(&int_chars, true)
    } else {
        int_chars.iter().map(digit).collect()
    };
    if !dec_part.is_empty() {
        syms.push(Sym::Point);
        syms.extend(dec_part.chars().map(|c| digit(&c)));
    }
    if alt_two {
        for i in 0..syms.len() {
            if syms[i] != Sym::Digit(2) {
                continue;
            }
            let next = syms.get(i + 1).copied();
            let prev = if i > 0 { Some(syms[i - 1]) } else { None };
            if let Some(Sym::Unit(np, _)) = next {
                let prev_ok = match prev {
                    None => true,
                    Some(Sym::Unit(pp, _)) => pp != 1,
                    _ => false,
                };
                if np != 1 && prev_ok {
                    syms[i] = Sym::Liang;
                }
            }
        }
    }
    let mut out: String = syms
        .iter()
        .map(|s| match *s {
            Sym::Digit(d) => DIGITS[d],
            Sym::Unit(_, c) => c,
            Sym::Point => '点',
            Sym::Liang => '两',
        })
        .collect();
    if out.starts_with('点') {
        out.insert(0, '零');
    }
    // 一十五 -> 十五
    let mut it = out.chars();
    if let (Some('一'), Some('十')) = (it.next(), it.next()) {
        out = out.chars().skip(1).collect();
    }
    out
}

/// `Cardinal.cardinal2chntext`.
fn cardinal(s: &str) -> String {
    num2chn(s, true, true)
}

/// `Digit.digit2chntext`.
fn digits(s: &str) -> String {
    num2chn(s, false, false)
}

/// `Date.date2chntext`: year digit by digit, month and day as cardinals.
fn date(d: &str) -> String {
    let (year, other) = match d.trim().split_once('年') {
        Some((y, o)) => (format!("{}年", digits(y)), o.to_string()),
        None => (String::new(), d.to_string()),
    };
    if other.is_empty() {
        return year;
    }
    let (month, day) = match other.trim().split_once('月') {
        Some((m, rest)) => (format!("{}月", cardinal(m)), rest.to_string()),
        None => (String::new(), d.to_string()),
    };
    let day = match day.chars().last() {
        Some(last) => {
            let head: String = day.chars().take(day.chars().count() - 1).collect();
            format!("{}{last}", cardinal(&head))
        }
        None => day,
    };
    format!("{year}{month}{day}")
}

static NUMBER: LazyLock<Regex> = LazyLock::new(|| re(r"(\d+(\.\d+)?)"));

fn re(pattern: &str) -> Regex {
    // The patterns are fixed strings of this file.
    Regex::new(pattern).unwrap_or_else(|e| panic!("zh_num2words pattern {pattern}: {e}"))
}

/// `Money.money2chntext`: every number of the amount as a cardinal.
fn money(m: &str) -> String {
    let mut out = m.to_string();
    for c in NUMBER.captures_iter(m) {
        out = out.replacen(&c[1], &cardinal(&c[1]), 1);
    }
    out
}

/// `TelePhone.telephone2chntext`: digit groups read digit by digit.
fn telephone(t: &str, fixed: bool) -> String {
    if fixed {
        t.split('-').map(digits).collect()
    } else {
        t.trim_matches('+').split_whitespace().map(digits).collect()
    }
}

struct Rules {
    date: Regex,
    money: Regex,
    mobile: Regex,
    fixed: Regex,
    fraction: Regex,
    percentage: Regex,
    quantified: Regex,
    digit_string: Regex,
    particular: Regex,
}

static RULES: LazyLock<Rules> = LazyLock::new(|| Rules {
    date: re(r"\D+((([089]\d|(19|20)\d{2})年)?(\d{1,2}月(\d{1,2}[日号])?)?)"),
    money: re(&format!(
        r"\D+((\d+(\.\d+)?)[多余几]?{CURRENCY_UNITS}(\d{CURRENCY_UNITS}?)?)"
    )),
    mobile: re(r"\D((\+?86 ?)?1([38]\d|5[0-35-9]|7[678]|9[89])\d{8})\D"),
    fixed: re(r"\D((0(10|2[1-3]|[3-9]\d{2})-?)?[1-9]\d{6,7})\D"),
    fraction: re(r"(\d+/\d+)"),
    percentage: re(r"(\d+(\.\d+)?%)"),
    quantified: re(&format!(r"(\d+(\.\d+)?)[多余几]?{COM_QUANTIFIERS}")),
    digit_string: re(r"(\d{4,32})"),
    particular: re(r"(([a-zA-Z]+)二([a-zA-Z]+))"),
});

/// Replaces, for each match of `pattern` in `text` (as found before any replacement), the first
/// occurrence of its group 1 by `f(group 1)`: the reference's `findall` + `str.replace(m, x, 1)`.
fn replace_each(text: &str, pattern: &Regex, f: impl Fn(&str) -> String) -> String {
    let found: Vec<String> = pattern
        .captures_iter(text)
        .map(|c| c.get(1).map_or("", |m| m.as_str()).to_string())
        .collect();
    let mut out = text.to_string();
    for m in found {
        if !m.is_empty() {
            out = out.replacen(&m, &f(&m), 1);
        }
    }
    out
}

/// `normalize_nsw`: numbers in `text` spelled out in Chinese characters.
pub fn normalize_nsw(raw: &str) -> String {
    let r = &*RULES;
    let text = format!("^{raw}$");
    let text = replace_each(&text, &r.date, date);
    let text = replace_each(&text, &r.money, money);
    let text = replace_each(&text, &r.mobile, |t| telephone(t, false));
    let text = replace_each(&text, &r.fixed, |t| telephone(t, true));
    let text = replace_each(&text, &r.fraction, |f| {
        let (num, den) = f.split_once('/').unwrap_or((f, ""));
        format!("{}分之{}", cardinal(den), cardinal(num))
    });
    let text = text.replace('％', "%");
    let text = replace_each(&text, &r.percentage, |p| {
        format!("百分之{}", cardinal(p.trim().trim_matches('%')))
    });
    let text = replace_each(&text, &r.quantified, cardinal);
    let text = replace_each(&text, &r.digit_string, digits);
    let text = replace_each(&text, &NUMBER, cardinal);
    // P2P, B2C, O2O, ... back to their digit.
    let found: Vec<(String, String, String)> = r
        .particular
        .captures_iter(&text)
        .map(|c| (c[1].to_string(), c[2].to_string(), c[3].to_string()))
        .collect();
    let mut text = text;
    for (all, a, b) in found {
        text = text.replacen(&all, &format!("{a}2{b}"), 1);
    }
    text.trim_start_matches('^')
        .trim_end_matches('$')
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cardinals_in_the_mid_system() {
        let c = |s| num2chn(s, true, true);
        assert_eq!(c("0"), "零");
        assert_eq!(c("10"), "十");
        assert_eq!(c("15"), "十五");
        assert_eq!(c("105"), "一百零五");
        assert_eq!(c("2000"), "两千");
        assert_eq!(c("22000"), "两万两千"); // as the reference: 两 before 千 after 万
        assert_eq!(c("100000"), "十万");
        assert_eq!(c("3.05"), "三点零五");
        assert_eq!(c("0.5"), "零点五");
        assert_eq!(c("200000000"), "两亿");
        assert_eq!(num2chn("2005", false, false), "二零零五");
    }
}
