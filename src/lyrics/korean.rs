//! Korean romanisation as the reference (`hangul_romanize.Transliter(academic)`): each Hangul
//! syllable spelled with the Revised Romanisation jamo letters, with a `-` before a syllable
//! whose initial is the silent ㅇ, or where the previous final and this initial would read
//! ambiguously (e.g. `n` + `g` vs `ng`), when the previous character is a syllable too.
//! Everything else passes through unchanged.

use std::collections::HashSet;
use std::sync::LazyLock;

const INITIALS: [&str; 19] = [
    "g", "kk", "n", "d", "tt", "l", "m", "b", "pp", "s", "ss", "", "j", "jj", "ch", "k", "t", "p",
    "h",
];
const VOWELS: [&str; 21] = [
    "a", "ae", "ya", "yae", "eo", "e", "yeo", "ye", "o", "wa", "wae", "oe", "yo", "u", "wo", "we",
    "wi", "yu", "eu", "ui", "i",
];
const FINALS: [&str; 28] = [
    "", "g", "kk", "gs", "n", "nj", "nh", "d", "l", "lg", "lm", "lb", "ls", "lt", "lp", "lh", "m",
    "b", "bs", "s", "ss", "ng", "j", "ch", "k", "t", "p", "h",
];
/// Index of the silent initial ㅇ.
const SILENT_INITIAL: usize = 11;

/// Final + initial letter strings that split into a (final, initial) pair in more than one way.
static AMBIGUOUS: LazyLock<HashSet<String>> = LazyLock::new(|| {
    let mut out = HashSet::new();
    for f in FINALS {
        for i in INITIALS {
            let combined = format!("{f}{i}");
            let splits = (0..combined.len())
                .filter(|&k| combined.is_char_boundary(k))
                .filter(|&k| FINALS.contains(&&combined[..k]) && INITIALS.contains(&&combined[k..]))
                .count();
            if splits > 1 {
                out.insert(combined);
            }
        }
    }
    out
});

/// (initial, vowel, final) indices of a precomposed Hangul syllable.
fn syllable(c: char) -> Option<(usize, usize, usize)> {
    let code = c as u32;
    if !(0xAC00..=0xD7A3).contains(&code) {
        return None;
    }
    let index = (code - 0xAC00) as usize;
    Some((index / 588, (index / 28) % 21, index % 28))
}

/// Romanises `text`.
pub fn romanize(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 2);
    let mut prev: Option<(usize, usize, usize)> = None;
    for c in text.chars() {
        let now = syllable(c);
        match now {
            None => out.push(c),
            Some((i, v, f)) => {
                if let Some((_, _, pf)) = prev {
                    if i == SILENT_INITIAL
                        || AMBIGUOUS.contains(&format!("{}{}", FINALS[pf], INITIALS[i]))
                    {
                        out.push('-');
                    }
                }
                out.push_str(INITIALS[i]);
                out.push_str(VOWELS[v]);
                out.push_str(FINALS[f]);
            }
        }
        prev = now;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn romanises_like_the_reference() {
        // Values printed by the reference's hangul_romanize (academic rule).
        assert_eq!(romanize("사랑해"), "salanghae");
        assert_eq!(romanize("안녕하세요"), "annyeonghase-yo");
        assert_eq!(romanize("한글"), "hangeul");
        assert_eq!(romanize("좋아"), "joh-a");
        assert_eq!(romanize("Hi 서울!"), "Hi seo-ul!");
    }
}
