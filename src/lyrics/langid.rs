//! py3langid's language identifier (langid.py's naive Bayes over byte n-grams, 97 languages),
//! as the reference's LangSegment calls it: `LanguageIdentifier.from_pickled_model(MODEL_FILE,
//! norm_probs=True).classify(text)`.
//!
//! The model is py3langid 0.3.0's `model.plzma` (BSD-3-Clause, Marco Lui and Adrien
//! Barbaresi), re-encoded by `tools/make_lyric_tables.py` as `data/langid.bin.gz` and embedded.
//! The text's UTF-8 bytes run through the model's automaton; every state it enters adds its
//! n-gram features; the class scores are `nb_pc + counts · nb_ptc`, and the answer is the class
//! with the highest normalised probability `1 / Σ_j exp(score_j - score_i)`. Only the features
//! that occur are summed (in feature order, then the prior added), where numpy multiplies the
//! whole count vector; zeros add nothing, so the scores are the same sums in a fixed order.

use std::sync::OnceLock;

/// The model's arrays.
struct Model {
    classes: Vec<String>,
    /// `nb_pc`: log prior per class.
    pc: Vec<f32>,
    /// `nb_ptc`, feature-major: `ptc[f * classes + c]`.
    ptc: Vec<f32>,
    /// `tk_nextmove`: next state of (state << 8) + byte.
    next: Vec<u16>,
    /// `tk_output`: the features a state emits (empty for most).
    output: Vec<Vec<u16>>,
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> &[u8] {
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        head
    }
    fn u8(&mut self) -> u8 {
        self.take(1)[0]
    }
    fn u16(&mut self) -> u16 {
        let b = self.take(2);
        u16::from_le_bytes([b[0], b[1]])
    }
    fn u32(&mut self) -> usize {
        let b = self.take(4);
        u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize
    }
    fn f32s(&mut self, n: usize) -> Vec<f32> {
        self.take(4 * n)
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    }
}

fn model() -> &'static Model {
    static M: OnceLock<Model> = OnceLock::new();
    M.get_or_init(|| {
        let raw = super::gunzip_embedded(include_bytes!("data/langid.bin.gz"), "langid model");
        let mut r = Reader(&raw);
        assert_eq!(r.take(8), b"LANGID1\0", "embedded langid model");
        let n_classes = r.u32();
        let classes = (0..n_classes)
            .map(|_| {
                let n = r.u8() as usize;
                String::from_utf8_lossy(r.take(n)).into_owned()
            })
            .collect();
        let n_feats = r.u32();
        let pc = r.f32s(n_classes);
        let by_class = r.f32s(n_classes * n_feats);
        let mut ptc = vec![0f32; n_feats * n_classes];
        for c in 0..n_classes {
            for f in 0..n_feats {
                ptc[f * n_classes + c] = by_class[c * n_feats + f];
            }
        }
        let n_next = r.u32();
        let next: Vec<u16> = (0..n_next).map(|_| r.u16()).collect();
        let mut output = vec![Vec::new(); n_next / 256 + 1];
        for _ in 0..r.u32() {
            let state = r.u16() as usize;
            let n = r.u16() as usize;
            let feats = (0..n).map(|_| r.u16()).collect();
            if let Some(slot) = output.get_mut(state) {
                *slot = feats;
            }
        }
        Model {
            classes,
            pc,
            ptc,
            next,
            output,
        }
    })
}

/// The identifier's languages (ISO 639-1 codes), in its order.
pub fn languages() -> &'static [String] {
    &model().classes
}

/// The most likely language of `text` and its normalised probability (py3langid's `classify`
/// with `norm_probs=True`).
pub fn classify(text: &str) -> (&'static str, f32) {
    let m = model();
    let n = m.classes.len();
    // Feature counts (`instance2fv`).
    let mut counts: Vec<(u16, u16)> = Vec::new();
    let mut state = 0usize;
    for &b in text.as_bytes() {
        state = m.next.get((state << 8) + b as usize).copied().unwrap_or(0) as usize;
        for &f in m.output.get(state).map_or(&[][..], Vec::as_slice) {
            match counts.iter_mut().find(|(g, _)| *g == f) {
                Some((_, c)) => *c = c.wrapping_add(1),
                None => counts.push((f, 1)),
            }
        }
    }
    counts.sort_unstable_by_key(|&(f, _)| f);
    // Class scores (`nb_classprobs`).
    let mut pd = vec![0f32; n];
    for &(f, c) in &counts {
        let row = &m.ptc[f as usize * n..(f as usize + 1) * n];
        let c = f32::from(c);
        for (p, &w) in pd.iter_mut().zip(row) {
            *p += c * w;
        }
    }
    for (p, &prior) in pd.iter_mut().zip(&m.pc) {
        *p += prior;
    }
    // Normalised probabilities and their argmax (first on ties). A class scoring 10 below the
    // best has a probability under e^-10, below the best's (at least 1/97): only the others are
    // evaluated.
    let best = pd.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut answer = (0, f32::NEG_INFINITY);
    for (i, &vi) in pd.iter().enumerate() {
        if vi < best - 10.0 {
            continue;
        }
        let prob = 1.0 / pd.iter().map(|&vj| (vj - vi).exp()).sum::<f32>();
        if prob > answer.1 {
            answer = (i, prob);
        }
    }
    (m.classes[answer.0].as_str(), answer.1)
}

#[cfg(test)]
mod tests {
    #[test]
    fn model_and_scores() {
        assert_eq!(super::languages().len(), 97);
        assert_eq!(super::languages()[0], "af");
        let (lang, p) = super::classify("this is a sentence in english");
        assert_eq!(lang, "en");
        assert!(p > 0.9 && p <= 1.0, "{p}");
        assert_eq!(super::classify("ceci est une phrase en français").0, "fr");
    }
}
