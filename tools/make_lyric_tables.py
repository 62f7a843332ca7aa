"""Writes the lyric frontend's embedded tables from the PyPI packages the reference uses (pinned in
tools/requirements.txt):

src/lyrics/data/pypinyin.tsv.gz: pypinyin's (PyPI, pinned in tools/requirements.txt)
single-character and phrase readings in the style the reference's `chinese_transliterate` asks
for (Style.TONE3, neutral tone as 5, no heteronyms), one entry per line:

    c<TAB><char><TAB><syllable>            the first reading of a character (PINYIN_DICT)
    p<TAB><phrase><TAB><syllable> ...      a phrase of PHRASES_DICT, one syllable per character

The Rust side (`lyrics::chinese`) segments Han runs with pypinyin's forward maximum matching
over these phrases and reads them from this table. pypinyin is MIT-licensed.

src/lyrics/data/langid.bin.gz: py3langid 0.3.0's naive-Bayes model (`data/model.plzma`,
BSD-3-Clause), the identifier of the reference's LangSegment, as little-endian arrays:

    b"LANGID1\0", u32 classes, per class u8 length + code, u32 features,
    f32 nb_pc[classes], f32 nb_ptc[classes][features] (transposed: it compresses better), u32 n, u16 tk_nextmove[n],
    u32 states, per state u16 state + u16 count + u16 feature[count]   (tk_output)

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


def langid_model():
    import lzma
    import pickle
    import struct
    import py3langid

    path = os.path.join(os.path.dirname(py3langid.__file__), "data", "model.plzma")
    with lzma.open(path) as f:
        nb_ptc, nb_pc, nb_classes, tk_nextmove, tk_output = pickle.load(f)
    n_feats = len(nb_ptc) // len(nb_pc)
    assert max(tk_nextmove) < 65536 and n_feats < 65536
    out = bytearray(b"LANGID1\0")
    out += struct.pack("<I", len(nb_classes))
    for c in nb_classes:
        out += struct.pack("<B", len(c.encode())) + c.encode()
    out += struct.pack("<I", n_feats)
    out += struct.pack(f"<{len(nb_pc)}f", *nb_pc)
    n_cls = len(nb_pc)
    transposed = [nb_ptc[f * n_cls + c] for c in range(n_cls) for f in range(n_feats)]
    out += struct.pack(f"<{len(transposed)}f", *transposed)
    out += struct.pack("<I", len(tk_nextmove)) + struct.pack(f"<{len(tk_nextmove)}H", *tk_nextmove)
    states = sorted((k, v) for k, v in tk_output.items() if len(v) > 0)
    out += struct.pack("<I", len(states))
    for k, v in states:
        out += struct.pack(f"<HH{len(v)}H", k, len(v), *v)
    dest = os.path.join(ROOT, "src", "lyrics", "data", "langid.bin.gz")
    with open(dest, "wb") as f:
        f.write(gzip.compress(bytes(out), compresslevel=9, mtime=0))
    print(f"langid: {len(nb_classes)} classes, {n_feats} features, {len(out)} bytes -> {dest} "
          f"({os.path.getsize(dest)} bytes)")


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
    langid_model()
