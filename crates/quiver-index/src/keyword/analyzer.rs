//! Text to index terms, the same way for documents and queries.
//!
//! 1. Folding: Unicode NFKD, combining marks dropped, lower-cased, `ß` → `ss` and final
//!    `ς` → `σ`. So `Kühlschrank`, `Kuhlschrank` and `KÜHLSCHRANK` (NFC or NFD) are one
//!    term, `café` matches `cafe`, and full-width or ligature forms (`ﬁ`) match plain ones.
//! 2. Splitting: a word is a run of alphanumeric characters (`char::is_alphanumeric`);
//!    everything else separates words, so punctuation and emoji never become terms.
//!    Han ideographs and hiragana are one term per character, as Chinese and Japanese are
//!    written without spaces.
//! 3. Compounds: words joined by hyphens give each part and the joined whole
//!    (`Labor-Kühlschrank` → `labor`, `kuhlschrank`, `laborkuhlschrank`), so either half or
//!    the closed spelling finds the compound.
//! 4. Stop words: a short English and German list (after folding) is dropped, except from
//!    the joined form of a compound.
//! 5. Stemming: English plurals only, by Harman's S-stemmer on words of four characters or
//!    more (`shoes` → `shoe`, `batteries` → `battery`; `glass` and `status` stay). It is
//!    applied to every word, German included: being the same on both sides, a German word
//!    it shortens still matches itself.

use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;

/// The terms of `text`, in order of appearance (a repeated word repeats its term).
pub fn analyze(text: &str) -> Vec<String> {
    let mut terms = Vec::new();
    let mut compound = Vec::new();
    let mut word = String::new();
    for c in fold(text).chars() {
        if is_single_char_word(c) {
            end_compound(&mut compound, &mut word, &mut terms);
            terms.push(c.to_string());
        } else if c.is_alphanumeric() {
            word.push(c);
        } else if is_hyphen(c) && !word.is_empty() {
            compound.push(std::mem::take(&mut word));
        } else {
            end_compound(&mut compound, &mut word, &mut terms);
        }
    }
    end_compound(&mut compound, &mut word, &mut terms);
    terms
}

/// NFKD, combining marks dropped, lower case; `ß` and final sigma folded as case folding does.
fn fold(text: &str) -> String {
    let mut folded = String::with_capacity(text.len());
    // Lower-casing after NFKD: a few capitals (`ℌ`) only become letters there, and the
    // marks that lower-casing adds (`İ` → `i̇`) are dropped with the rest.
    for c in text.nfkd().flat_map(char::to_lowercase) {
        match c {
            'ß' => folded.push_str("ss"),
            'ς' => folded.push('σ'),
            c if is_combining_mark(c) => {}
            c => folded.push(c),
        }
    }
    folded
}

/// Emits the parts of a hyphenated compound (or the lone word) and, for a real compound,
/// the parts joined.
fn end_compound(compound: &mut Vec<String>, word: &mut String, terms: &mut Vec<String>) {
    if !word.is_empty() {
        compound.push(std::mem::take(word));
    }
    let joined = (compound.len() > 1).then(|| compound.concat());
    terms.extend(compound.drain(..).filter(|part| !is_stop_word(part)).map(stem));
    terms.extend(joined.map(stem));
}

/// `-` and the Unicode hyphen (NFKD maps the non-breaking hyphen to it). Dashes are not
/// hyphens: `1990–2000` is a range, not a compound.
fn is_hyphen(c: char) -> bool {
    matches!(c, '-' | '\u{2010}')
}

/// Han ideographs (the unified blocks and extensions) and hiragana.
fn is_single_char_word(c: char) -> bool {
    matches!(c,
        '\u{3040}'..='\u{309F}'
        | '\u{3400}'..='\u{4DBF}'
        | '\u{4E00}'..='\u{9FFF}'
        | '\u{F900}'..='\u{FAFF}'
        | '\u{20000}'..='\u{2FA1F}'
        | '\u{30000}'..='\u{323AF}')
}

/// Frequent English and German function words, in folded form. Words that are also
/// common English nouns (`hat`, `bin`, `war`) are left out.
fn is_stop_word(word: &str) -> bool {
    matches!(
        word,
        // English (Lucene's list)
        "a" | "an" | "and" | "are" | "as" | "at" | "be" | "but" | "by" | "for" | "if" | "in" | "into" | "is"
            | "it" | "no" | "not" | "of" | "on" | "or" | "such" | "that" | "the" | "their" | "then" | "there"
            | "these" | "they" | "this" | "to" | "was" | "will" | "with"
            // German
            | "aber" | "als" | "am" | "auch" | "auf" | "aus" | "bei" | "bis" | "da" | "dass" | "dem" | "den"
            | "der" | "des" | "die" | "doch" | "du" | "durch" | "ein" | "eine" | "einem" | "einen" | "einer"
            | "eines" | "er" | "es" | "fur" | "ich" | "ihr" | "im" | "ist" | "ja" | "mit" | "nach" | "nicht"
            | "noch" | "nur" | "oder" | "sich" | "sie" | "sind" | "so" | "uber" | "und" | "unter" | "vom"
            | "von" | "vor" | "wie" | "wir" | "zu" | "zum" | "zur"
    )
}

/// Harman's S-stemmer: `-ies` → `-y` (not after `a` or `e`), else a final `s` is dropped
/// (not after `u` or `s`). Its middle rule, `-es` → `-e`, comes to the same as the last.
fn stem(mut word: String) -> String {
    if word.chars().count() < 4 {
        return word;
    }
    let ends = |suffix: &str| word.ends_with(suffix);
    if ends("ies") && !ends("aies") && !ends("eies") {
        word.truncate(word.len() - 3);
        word.push('y');
    } else if ends("s") && !ends("us") && !ends("ss") {
        word.pop();
    }
    word
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s_stemmer_rules() {
        for (word, stemmed) in [
            ("shoes", "shoe"),
            ("boxes", "boxe"),
            ("batteries", "battery"),
            ("trees", "tree"),
            ("cats", "cat"),
            ("glass", "glass"),
            ("status", "status"),
            ("gas", "gas"),
            ("preis", "prei"),
        ] {
            assert_eq!(stem(word.to_owned()), stemmed, "{word}");
        }
    }
}
