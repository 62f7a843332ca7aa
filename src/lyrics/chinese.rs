//! Chinese to pinyin as the reference's `chinese_transliterate` (`pypinyin`, style TONE3, neutral
//! tone as 5, no heteronyms): each Han character becomes its syllable with the tone number at the
//! end (`ni3hao3`), everything else stays.
//!
//! Readings come from the `pinyin` crate (per character, the same pinyin-data table pypinyin uses
//! for single characters). pypinyin also reads phrases from its phrase dictionary, which changes
//! the reading of some polyphonic characters in context (音乐 yue4, 长大 zhang3); those differ here.

use pinyin::ToPinyin;

/// Chinese and ASCII punctuation (the reference's `CN_PUNCS + string.punctuation`).
const PUNCTUATION: &str = "！？｡。＂＃＄％＆＇（）＊＋，－／：；＜＝＞＠［＼］＾＿｀｛｜｝～｟｠｢｣､、〃《》「」『』【】〔〕〖〗〘〙〚〛〜〝〞〟〰〾〿–—‘’‛“”„‟…‧﹏·〈〉-!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";

/// The number step of the reference's cleaners for Chinese (`zh_num2words` = `TextNorm()`):
/// numbers spelled out ([`super::zh_num2words::normalize_nsw`]), then every punctuation mark
/// becomes an ASCII comma.
pub fn text_norm(text: &str) -> String {
    super::zh_num2words::normalize_nsw(text)
        .chars()
        .map(|c| if PUNCTUATION.contains(c) { ',' } else { c })
        .collect()
}

/// The TONE3 pinyin of `text`.
pub fn transliterate(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for c in text.chars() {
        match c.to_pinyin() {
            Some(p) => {
                let syllable = p.with_tone_num_end().replace('ü', "v");
                out.push_str(&syllable);
                if !syllable.ends_with(|d: char| d.is_ascii_digit()) {
                    out.push('5');
                }
            }
            None => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn punctuation_becomes_commas() {
        assert_eq!(
            super::text_norm("跟我走吧，我们!don't"),
            "跟我走吧,我们,don,t"
        );
    }

    #[test]
    fn tone_numbers_at_the_end() {
        assert_eq!(super::transliterate("我爱你"), "wo3ai4ni3");
        assert_eq!(super::transliterate("绿 baby"), "lv4 baby");
    }
}
