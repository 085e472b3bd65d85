//! One engine-neutral suite run against every kernel implementation this processor has:
//! each must agree with the scalar reference, and searches must rank identically.

use quiver_index::kernels::{self, Kernels};
use quiver_index::{Document, FlatIndex, IndexConfig, SearchOptions, Strategy};
use rand::{Rng, SeedableRng};

fn rng() -> rand::rngs::StdRng {
    rand::rngs::StdRng::seed_from_u64(7)
}

fn scalar() -> &'static dyn Kernels {
    kernels::available()[0]
}

#[test]
fn scalar_comes_first_and_best_is_available() {
    assert_eq!(scalar().name(), "scalar");
    let names: Vec<_> = kernels::available().iter().map(|k| k.name()).collect();
    assert!(names.contains(&kernels::best().name()), "{names:?}");
    eprintln!("kernels here: {names:?}");
}

#[test]
fn every_kernel_matches_scalar() {
    let mut rng = rng();
    // Odd dimensions exercise the tails after the vector bodies.
    for dim in [1usize, 7, 16, 33, 100, 384, 1027] {
        let rows = 37;
        let q: Vec<f32> = (0..dim).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let x: Vec<f32> = (0..dim * rows).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let qi: Vec<i8> = (0..dim).map(|_| rng.gen_range(-127..=127)).collect();
        let xi: Vec<i8> = (0..dim * rows).map(|_| rng.gen_range(-127..=127)).collect();
        let words = dim.div_ceil(64);
        let qb: Vec<u64> = (0..words).map(|_| rng.gen()).collect();
        let xb: Vec<u64> = (0..words * rows).map(|_| rng.gen()).collect();

        let (mut f_ref, mut i_ref, mut h_ref) = (vec![0f32; rows], vec![0i32; rows], vec![0u32; rows]);
        scalar().dot_f32(&q, &x, &mut f_ref);
        scalar().dot_i8(&qi, &xi, &mut i_ref);
        scalar().hamming(&qb, &xb, &mut h_ref);
        for k in kernels::available() {
            let (mut f, mut i, mut h) = (vec![0f32; rows], vec![0i32; rows], vec![0u32; rows]);
            k.dot_f32(&q, &x, &mut f);
            k.dot_i8(&qi, &xi, &mut i);
            k.hamming(&qb, &xb, &mut h);
            for (a, b) in f.iter().zip(&f_ref) {
                assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()), "{} dot_f32 dim {dim}: {a} vs {b}", k.name());
            }
            assert_eq!(i, i_ref, "{} dot_i8 dim {dim}", k.name());
            assert_eq!(h, h_ref, "{} hamming dim {dim}", k.name());
        }
    }
}

#[test]
fn every_kernel_ranks_the_same() {
    let mut rng = rng();
    let dim = 64;
    let vectors: Vec<f32> = (0..dim * 2000).map(|_| rng.gen_range(-1.0..1.0)).collect();
    let mut index = FlatIndex::new(IndexConfig::new(dim)).unwrap();
    let docs: Vec<Document> = vectors
        .chunks(dim)
        .enumerate()
        .map(|(i, v)| Document { id: format!("d{i}"), vector: v, metadata: serde_json::Value::Null, text: None })
        .collect();
    index.upsert(&docs).unwrap();
    let query: Vec<f32> = (0..dim).map(|_| rng.gen_range(-1.0..1.0)).collect();
    for strategy in [Strategy::Exact, Strategy::Int8, Strategy::Binary, Strategy::BinaryRescore] {
        let options = SearchOptions { k: 20, strategy, ..Default::default() };
        let reference: Vec<usize> =
            index.search_with(scalar(), &query, &options).unwrap().iter().map(|h| h.row).collect();
        for k in kernels::available() {
            let rows: Vec<usize> = index.search_with(k, &query, &options).unwrap().iter().map(|h| h.row).collect();
            assert_eq!(rows, reference, "{} with {strategy:?}", k.name());
        }
    }
}
