"""Writes the lyric frontend's embedded tables from the PyPI packages the reference uses (pinned in
tools/requirements.txt):

src/lyrics/data/pypinyin.tsv.gz: pypinyin's (PyPI, pinned in tools/requirements.txt)
single-character and phrase readings in the style the reference's `chinese_transliterate` asks
for (Style.TONE3, neutral tone as 5, no heteronyms), one entry per line:

    c<TAB><char><TAB><syllable>            the first reading of a character (PINYIN_DICT)
    p<TAB><phrase><TAB><syllable> ...      a phrase of PHRASES_DICT, one syllable per character

The Rust side (`lyrics::chinese`) segments Han runs with pypinyin's forward maximum matching
over these phrases and reads them from this table. pypinyin is MIT-licensed.

src/lyrics/data/cutlet.tsv: cutlet's Hepburn kana table and its exceptions (MIT-licensed), the
romaji rules of the reference's `japanese_cleaners` (`cutlet.Cutlet()` defaults):

    m<TAB><kana><TAB><romaji>              HEPBURN mapping (kana, digraphs, punctuation)
    x<TAB><surface><TAB><spelling>         exceptions.tsv (a whole token's spelling)

    python tools/make_lyric_tables.py
"""
import gzip
import os

import pypinyin
from pypinyin import Style
from pypinyin.constants import PHRASES_DICT, PINYIN_DICT
from pypinyin.converter import UltimateConverter

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cutlet_table():
    import cutlet
    from cutlet.mapping import HEPBURN

    rows = [f"m\t{k}\t{v}" for k, v in HEPBURN.items()]
    rows += [f"x\t{k}\t{v}" for k, v in cutlet.cutlet.load_exceptions().items()]
    assert all(r.count("\t") == 2 for r in rows)
    out = os.path.join(ROOT, "src", "lyrics", "data", "cutlet.tsv")
    with open(out, "w", encoding="utf-8") as f:
        f.write("\n".join(rows) + "\n")
    print(f"cutlet: {len(HEPBURN)} kana, {len(rows) - len(HEPBURN)} exceptions -> {out}")


def main():
    conv = UltimateConverter(neutral_tone_with_five=True)
    lines = []
    for code in sorted(PINYIN_DICT):
        ch = chr(code)
        pys = conv._single_pinyin(ch, Style.TONE3, False, "default", True)
        styled = conv.convert_styles(pys, ch, Style.TONE3, False, "default", True)
        syl = styled[0][0]
        assert syl and "\t" not in syl and " " not in syl, (ch, syl)
        lines.append(f"c\t{ch}\t{syl}")
    for phrase in sorted(PHRASES_DICT):
        styled = conv.convert(phrase, Style.TONE3, False, "default", True)
        syls = [s[0] for s in styled]
        assert len(syls) == len(phrase) and all(s and " " not in s for s in syls), (phrase, syls)
        lines.append(f"p\t{phrase}\t{' '.join(syls)}")
    out = os.path.join(ROOT, "src", "lyrics", "data", "pypinyin.tsv.gz")
    data = ("\n".join(lines) + "\n").encode("utf-8")
    with open(out, "wb") as f:
        f.write(gzip.compress(data, compresslevel=9, mtime=0))
    print(f"pypinyin {pypinyin.__version__}: {len(PINYIN_DICT)} characters, {len(PHRASES_DICT)} "
          f"phrases, {len(data)} bytes -> {out} ({os.path.getsize(out)} bytes)")


if __name__ == "__main__":
    main()
    cutlet_table()
