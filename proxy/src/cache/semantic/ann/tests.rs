use super::code::{encode, Code, Coded};
use super::*;
use crate::cache::semantic::vector::{dot, normalized};

/// Deterministic unit vectors that lie near a 6-dimensional subspace of
/// `dims`, as sentence embeddings lie near a low-dimensional one.
struct Points {
    s: u64,
    basis: Vec<Vec<f32>>,
}

impl Points {
    fn new(dims: usize) -> Points {
        let mut p = Points {
            s: 0x9e37_79b9_7f4a_7c15,
            basis: Vec::new(),
        };
        p.basis = (0..6).map(|_| p.raw(dims)).collect();
        p
    }

    fn uniform(&mut self) -> f32 {
        self.s ^= self.s << 13;
        self.s ^= self.s >> 7;
        self.s ^= self.s << 17;
        (self.s >> 11) as f32 / (1u64 << 53) as f32 - 0.5
    }

    fn raw(&mut self, dims: usize) -> Vec<f32> {
        (0..dims).map(|_| self.uniform()).collect()
    }

    fn next(&mut self) -> Vec<f32> {
        let dims = self.basis[0].len();
        let mut v: Vec<f32> = (0..dims).map(|_| 0.1 * self.uniform()).collect();
        for b in 0..self.basis.len() {
            let z = self.uniform();
            for (x, e) in v.iter_mut().zip(&self.basis[b]) {
                *x += z * e;
            }
        }
        normalized(v).unwrap()
    }
}

fn nearest(data: &[Vec<f32>], q: &[f32], keep: impl Fn(u64) -> bool) -> Option<u64> {
    (0..data.len() as u64)
        .filter(|&i| keep(i))
        .max_by(|&a, &b| dot(q, &data[a as usize]).total_cmp(&dot(q, &data[b as usize])))
}

fn graph_of(data: &[Vec<f32>]) -> Ann {
    let refs: Vec<(u64, &[f32])> = data
        .iter()
        .enumerate()
        .map(|(i, v)| (i as u64, v.as_slice()))
        .collect();
    Ann::build(&refs)
}

#[test]
fn finds_what_a_full_scan_finds_nearest_first() {
    let mut p = Points::new(48);
    let data: Vec<Vec<f32>> = (0..3000).map(|_| p.next()).collect();
    let ann = graph_of(&data);
    assert_eq!(ann.points(), 3000);
    let mut same = 0;
    for _ in 0..200 {
        let q = p.next();
        let found = ann.search(&q, 8, &|_| true);
        assert_eq!(found.len(), 8);
        let sims: Vec<f32> = found.iter().map(|&i| dot(&q, &data[i as usize])).collect();
        // Ordered by the coded vectors: exact similarities may swap
        // within the coding's error.
        assert!(
            sims.windows(2).all(|w| w[0] >= w[1] - 5e-3),
            "nearest first: {sims:?}"
        );
        let best = nearest(&data, &q, |_| true).unwrap();
        if found.contains(&best) {
            same += 1;
        }
    }
    assert!(same >= 198, "the nearest among the 8 found {same}/200");
}

#[test]
fn rejected_ids_are_walked_through_but_never_returned() {
    let mut p = Points::new(32);
    let data: Vec<Vec<f32>> = (0..2000).map(|_| p.next()).collect();
    let ann = graph_of(&data);
    let odd = |id: u64| id % 2 == 1;
    let mut same = 0;
    for i in 0..100 {
        // Queries on even (rejected) points: their odd neighbours are
        // found through them.
        let q = &data[2 * i];
        let found = ann.search(q, 4, &odd);
        assert!(
            !found.is_empty() && found.iter().all(|&id| odd(id)),
            "{found:?}"
        );
        if Some(found[0]) == nearest(&data, q, odd) {
            same += 1;
        }
    }
    assert!(same >= 97, "top-1 recall among the kept {same}/100");
    assert_eq!(ann.search(&data[0], 4, &|_| false), Vec::<u64>::new());
}

#[test]
fn vectors_of_another_length_are_left_out() {
    let mut p = Points::new(16);
    let data: Vec<Vec<f32>> = (0..50).map(|_| p.next()).collect();
    let ann = graph_of(&data);
    ann.insert(99, &[1.0; 8]);
    ann.insert(100, &[]);
    assert_eq!(ann.points(), 50);
    assert_eq!(ann.search(&[1.0; 8], 4, &|_| true), Vec::<u64>::new());
    assert_eq!(ann.search(&data[7], 1, &|_| true), [7]);
}

#[test]
fn an_empty_graph_finds_nothing_and_grows_from_one_point() {
    let ann = Ann::build(&[]);
    assert_eq!(ann.search(&[1.0, 0.0], 4, &|_| true), Vec::<u64>::new());
    ann.insert(5, &[1.0, 0.0]);
    ann.insert(6, &[0.0, 1.0]);
    assert_eq!(ann.search(&[0.6, 0.8], 2, &|_| true), [6, 5]);
}

#[test]
fn each_layer_holds_about_one_in_m_of_the_one_below() {
    let mut state = 1;
    let levels: Vec<usize> = (0..100_000).map(|_| draw_level(&mut state)).collect();
    let above = |l: usize| levels.iter().filter(|&&x| x >= l).count();
    // 100,000 / 16 = 6,250 and / 256 = 391, give or take the draw.
    assert!((5_800..6_700).contains(&above(1)), "{}", above(1));
    assert!((300..480).contains(&above(2)), "{}", above(2));
    assert!(levels.iter().all(|&l| l <= MAX_LEVEL));
}

#[test]
fn coded_similarities_are_within_a_few_thousandths() {
    let mut p = Points::new(384);
    let mut worst = 0f32;
    for _ in 0..200 {
        let (a, b) = (p.next(), p.next());
        let coded = Coded::of(&a).code().dot(Coded::of(&b).code());
        worst = worst.max((coded - dot(&a, &b)).abs());
    }
    assert!(worst < 3e-3, "{worst}");
    // Odd lengths (a tail past the 16-byte lanes) count every component.
    let v = normalized((1..=21).map(|i| i as f32).collect()).unwrap();
    let c = Coded::of(&v);
    assert!((c.code().dot(c.code()) - 1.0).abs() < 3e-3);
    // A zero vector is similar to nothing.
    let mut bytes = Vec::new();
    assert_eq!(encode(&[0.0; 5], &mut bytes), 0.0);
    assert_eq!(Code::new(&bytes, 0.0).dot(c.code()), 0.0);
}
