//! The vectors the semantic-lookup bench indexes and looks up.
//!
//! Real prompt embeddings are not spread evenly over the sphere: they share
//! a mean direction and most of their spread lies along a few dozen
//! directions, which is what lets a graph index find a neighbour by walking
//! towards it. Uniform random unit vectors in 384 dimensions are the other
//! extreme (every vector about equally far from every other) and no
//! embedder makes them; they are kept as a labelled worst case.

use tollgate_proxy::cache::semantic::vector::normalized;

/// xorshift64* with Box–Muller normals: deterministic, no dependency.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    /// In (0, 1].
    fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let r = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d);
        ((r >> 11) + 1) as f64 / (1u64 << 53) as f64
    }

    pub(crate) fn normal(&mut self) -> f32 {
        let (a, b) = (self.uniform(), self.uniform());
        ((-2.0 * a.ln()).sqrt() * (std::f64::consts::TAU * b).cos()) as f32
    }

    fn normals(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.normal()).collect()
    }
}

/// `v` scaled to unit length, as the embedders leave their vectors.
pub(crate) fn unit(v: Vec<f32>) -> Vec<f32> {
    normalized(v).expect("a drawn vector is not zero")
}

/// `v` moved by 0.15 in a random direction: similarity about 0.989, above
/// the bench's 0.95 threshold, so the lookup should find `v`.
pub(crate) fn near(v: &[f32], rng: &mut Rng) -> Vec<f32> {
    let d = unit(rng.normals(v.len()));
    unit(v.iter().zip(&d).map(|(a, b)| a + 0.15 * b).collect())
}

/// Where vectors are drawn from.
pub(crate) enum Source {
    /// A Gaussian with the mean and covariance of real prompts' embeddings
    /// (made only with `local-embeddings`):
    /// `mean + Σ zᵢ (vᵢ − mean) / √(n−1)`, `zᵢ ~ N(0, 1)`, normalized.
    #[cfg_attr(not(feature = "local-embeddings"), allow(dead_code))]
    Embedded {
        mean: Vec<f32>,
        /// `(vᵢ − mean) / √(n−1)`.
        spread: Vec<Vec<f32>>,
    },
    /// A `latent`-dimensional Gaussian mapped through a fixed random
    /// `dims × latent` matrix, plus isotropic noise, normalized.
    Latent { map: Vec<Vec<f32>>, noise: f32 },
    /// Uniform on the sphere.
    Uniform { dims: usize },
}

impl Source {
    /// From embeddings of real prompts (unit vectors, at least two).
    #[cfg_attr(not(feature = "local-embeddings"), allow(dead_code))]
    pub(crate) fn embedded(vectors: &[Vec<f32>]) -> Source {
        let (n, dims) = (vectors.len(), vectors[0].len());
        let mut mean = vec![0f32; dims];
        for v in vectors {
            mean.iter_mut().zip(v).for_each(|(m, x)| *m += x / n as f32);
        }
        let k = 1.0 / ((n - 1) as f32).sqrt();
        let spread = vectors
            .iter()
            .map(|v| v.iter().zip(&mean).map(|(x, m)| (x - m) * k).collect())
            .collect();
        Source::Embedded { mean, spread }
    }

    pub(crate) fn latent(dims: usize, latent: usize, noise: f32, rng: &mut Rng) -> Source {
        let k = 1.0 / (latent as f32).sqrt();
        let map = (0..latent)
            .map(|_| rng.normals(dims).into_iter().map(|x| x * k).collect())
            .collect();
        Source::Latent { map, noise }
    }

    pub(crate) fn draw(&self, rng: &mut Rng) -> Vec<f32> {
        match self {
            Source::Embedded { mean, spread } => {
                let mut v = mean.clone();
                for s in spread {
                    let z = rng.normal();
                    v.iter_mut().zip(s).for_each(|(x, d)| *x += z * d);
                }
                unit(v)
            }
            Source::Latent { map, noise } => {
                let mut v: Vec<f32> = rng
                    .normals(map[0].len())
                    .into_iter()
                    .map(|x| x * noise)
                    .collect();
                for column in map {
                    let z = rng.normal();
                    v.iter_mut().zip(column).for_each(|(x, c)| *x += z * c);
                }
                unit(v)
            }
            Source::Uniform { dims } => unit(rng.normals(*dims)),
        }
    }
}

/// The participation ratio `(Σλ)² / Σλ²` of the covariance of `vectors`
/// (λ its eigenvalues): about how many directions the spread really
/// uses, computed as `tr(C)² / ‖C‖²` through the Gram matrix.
pub(crate) fn participation_ratio(vectors: &[Vec<f32>]) -> f64 {
    let (n, dims) = (vectors.len(), vectors[0].len());
    let mut mean = vec![0f64; dims];
    for v in vectors {
        mean.iter_mut()
            .zip(v)
            .for_each(|(m, &x)| *m += f64::from(x) / n as f64);
    }
    let centered: Vec<Vec<f64>> = vectors
        .iter()
        .map(|v| {
            v.iter()
                .zip(&mean)
                .map(|(&x, m)| f64::from(x) - m)
                .collect()
        })
        .collect();
    // The non-zero eigenvalues of XᵀX and XXᵀ are the same.
    let (mut trace, mut frobenius) = (0f64, 0f64);
    for i in 0..n {
        for j in 0..n {
            let g: f64 = centered[i]
                .iter()
                .zip(&centered[j])
                .map(|(a, b)| a * b)
                .sum();
            if i == j {
                trace += g;
            }
            frobenius += g * g;
        }
    }
    trace * trace / frobenius
}
