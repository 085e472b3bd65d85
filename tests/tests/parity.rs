//! all-MiniLM-L6-v2 against sentence-transformers' own output (the team's fixture).

use quiver_encoder::{Encoder, Overrides, Pooling, TextKind};
use quiver_tests::{cosine, minilm_dir, minilm_reference, norm};

#[test]
fn token_ids_match_exactly() {
    let reference = minilm_reference();
    let encoder = Encoder::from_dir(minilm_dir()).unwrap();
    assert_eq!(encoder.sentence_config().max_seq_length, reference.max_seq_length);
    for case in &reference.cases {
        let ids = encoder.tokenize(&case.text, TextKind::Raw).unwrap();
        assert_eq!(ids, case.token_ids, "case {} ({})", case.id, case.group);
        assert_eq!(ids.len() == 256 && case.truncated, case.truncated, "case {}", case.id);
    }
}

fn check_pooling(pooling: Pooling, normalize: bool, expected: impl Fn(&quiver_tests::Case) -> &[f32]) {
    let reference = minilm_reference();
    let files = quiver_encoder::ModelFiles::read_dir(minilm_dir()).unwrap();
    let overrides = Overrides { pooling: Some(pooling), normalize: Some(normalize), ..Default::default() };
    let encoder = Encoder::load_with(&files, &overrides).unwrap();
    let texts: Vec<&str> = reference.cases.iter().map(|c| c.text.as_str()).collect();
    let one_by_one = encoder.embed(&texts, TextKind::Raw, 1).unwrap();
    let batched = encoder.embed(&texts, TextKind::Raw, 32).unwrap();
    assert_eq!(one_by_one.dim, reference.dim);
    let mut worst = (1.0f32, "");
    for (i, case) in reference.cases.iter().enumerate() {
        let c = cosine(one_by_one.row(i), expected(case));
        if c < worst.0 {
            worst = (c, &case.id);
        }
        assert!(c >= 0.9999, "{pooling:?}: case {} cosine {c}", case.id);
        // Padding must not leak into any pooling: batch size changes nothing.
        let same = cosine(one_by_one.row(i), batched.row(i));
        assert!(same >= 0.99999, "{pooling:?}: case {} batch 1 vs 32 cosine {same}", case.id);
        if !normalize {
            let (n, r) = (norm(one_by_one.row(i)), norm(expected(case)));
            assert!((n - r).abs() <= 1e-3 * r, "case {}: norm {n} vs {r}", case.id);
        }
    }
    eprintln!("{pooling:?} normalize={normalize}: worst cosine {} ({})", worst.0, worst.1);
}

#[test]
fn mean_pooling_matches_sentence_transformers() {
    check_pooling(Pooling::Mean, true, |c| &c.mean);
}

#[test]
fn unnormalised_mean_matches_in_direction_and_norm() {
    check_pooling(Pooling::Mean, false, |c| &c.mean_unnormalized);
}

#[test]
fn cls_pooling_matches() {
    check_pooling(Pooling::Cls, true, |c| &c.cls);
}

#[test]
fn max_pooling_matches() {
    check_pooling(Pooling::Max, true, |c| &c.max);
}

#[test]
fn pair_cosines_match() {
    let reference = minilm_reference();
    let encoder = Encoder::from_dir(minilm_dir()).unwrap();
    let texts: Vec<&str> = reference.cases.iter().map(|c| c.text.as_str()).collect();
    let e = encoder.embed(&texts, TextKind::Raw, 16).unwrap();
    let row = |id: &str| e.row(reference.cases.iter().position(|c| c.id == id).unwrap());
    for pair in &reference.pairs {
        let c = cosine(row(&pair.a), row(&pair.b));
        assert!((c - pair.cosine).abs() <= 1e-4, "{} vs {}: {c} != {}", pair.a, pair.b, pair.cosine);
    }
}

/// Threads share a batch by running parts of it through the whole model: any number of
/// threads gives the same vectors, bit for bit, float and quantized.
#[test]
fn thread_count_changes_no_vector() {
    let texts: Vec<String> = minilm_reference().cases.into_iter().map(|c| c.text).collect();
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
    let q8 = minilm_dir().with_file_name("all-MiniLM-L6-v2-q8_0");
    for dir in [minilm_dir(), q8] {
        let encoder = Encoder::from_dir(&dir).unwrap();
        let embed = |threads| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| encoder.embed(&texts, TextKind::Raw, 32).unwrap()).data
        };
        let one = embed(1);
        for threads in [2, 3, 8] {
            assert!(one == embed(threads), "{}: {threads} threads changed a vector", dir.display());
        }
    }
}
