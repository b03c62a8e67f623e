//! The real-data benchmark: MovieLens 100k through fitrank's own feature path.
//!
//! MovieLens is not live commerce, so the benchmark maps it onto fitrank's vocabulary and then
//! uses exactly the code that serves and trains: [`fitrank::features::extract`] builds every row,
//! linfa fits the head ([`crate::train::fit`]), the serving scorer predicts, [`crate::train::metrics`]
//! measures.
//!
//! # Protocol (the literature's)
//!
//! Ratings of 3 are dropped; a rating above 3 is a positive, below 3 a negative. The remaining
//! ratings are shuffled by the seed and split 80 / 10 / 10 into train, validation and test. The L2
//! strength is chosen on validation log loss; test AUC and log loss are reported.
//!
//! # Mapping
//!
//! - **user → [`UserProfile`]**: age → age band, gender, zip code → region (`US-<first digit>`,
//!   `CA` for Canadian codes, language `en`).
//! - **movie → [`LiveSession`]**: its genre → category slot (one per movie, the most specific
//!   of its genres, see [`GENRE_SLOTS`]); its release year → price-band slot (era, see [`era`]).
//!   Movies declare no target audience.
//! - **history → live statistics and user activity**: every *training* rating is an impression
//!   of the movie to the user, a positive one also a view, a negative one a hide. Folding them with
//!   [`LiveStats::apply`] and [`UserActivity::apply`] gives the movie's smoothed positive rate, its
//!   audience composition by segment, and the user's view rate and genre affinity — the
//!   engagement features, computed by the same code as in the live service.
//!
//! History never includes the row being scored: validation and test rows see the statistics of
//! all training rows; each training row sees those of the other four of five folds of the
//! training rows (out-of-fold), so its own label cannot leak into its features. The history is an
//! aggregate without time: every event and request is at time 0, so time decay and windows see
//! the whole history.
//!
//! `--features demographic` leaves history out entirely: user demographics and movie attributes,
//! with their crosses.
//!
//! - **ids → the identity block** ([`fitrank::features::identity`]): the user's id and the movie's
//!   (as the session's host: a movie recurs across the data the way a host's shows recur) each get
//!   a learned weight, [`IDENTITY_BUCKETS`] hashed slots per kind, in both feature sets — the
//!   literature's MovieLens fields include both ids, and so do the anchors of issue 3.
//!   `--identity-buckets 0` leaves them out.
//! - **who liked what → latent factors** on those slots: a Bayesian probit factorisation machine
//!   over the two ids, each side also placed by whom it met ([`crate::train::gibbs`]),
//!   [`FACTOR_DIMS`] factors averaged over [`FACTOR_SAMPLES`] posterior draws, its score one more
//!   column of the head, out of fold for the training rows. `--factor-samples 0` fits the factors
//!   by alternating least squares, `--factor-dims 0` leaves them out.
//!
//! The data set is not part of this repository; see the licence in its README.

use std::collections::HashMap;
use std::path::Path;

use ndarray::Array1;
use rand::{SeedableRng, rngs::StdRng, seq::SliceRandom};
use serde::Serialize;

use crate::train::{Dataset, fit, metrics};
use fitrank::domain::{
    AgeBand, Category, Event, EventKind, Gender, LiveSession, LiveStats, PriceBand, RequestContext, SessionStatus,
    Surface, UserActivity, UserProfile, Viewer,
};
use fitrank::features::{FeatureInput, IdentityKeys};

/// Why the benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum MovieLensError {
    #[error("cannot read {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{file} line {line}: {what}")]
    Format { file: &'static str, line: usize, what: String },
    #[error(transparent)]
    Train(#[from] crate::train::TrainError),
}

/// One rating.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rating {
    pub user: u32,
    pub item: u32,
    pub rating: u8,
}

/// A movie's attributes.
#[derive(Debug, Clone, PartialEq)]
pub struct Movie {
    /// Release year, `None` when the file gives none.
    pub year: Option<u32>,
    /// The 19 genre flags in `u.genre` order (0 = unknown, 1 = Action, …).
    pub genres: [bool; 19],
}

/// A user's demographics as the files give them.
#[derive(Debug, Clone, PartialEq)]
pub struct Person {
    pub age: u32,
    pub gender: Gender,
    pub occupation: String,
    pub zip: String,
}

/// The parsed data set.
#[derive(Debug, Clone, Default)]
pub struct MovieLens {
    pub users: HashMap<u32, Person>,
    pub movies: HashMap<u32, Movie>,
    pub ratings: Vec<Rating>,
}

/// Which features the benchmark uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FeatureSet {
    /// Demographics, movie attributes and engagement history.
    Full,
    /// Demographics and movie attributes only.
    Demographic,
}

/// Category slot of each genre group. A movie takes the slot of its first genre in
/// [`GENRE_PRIORITY`] (the most specific first).
pub const GENRE_SLOTS: [(&str, Category); 19] = [
    ("unknown", Category::Other),
    ("Action", Category::Beauty),
    ("Adventure", Category::Beauty),
    ("Animation", Category::Toys),
    ("Children's", Category::Toys),
    ("Comedy", Category::Sportswear),
    ("Crime", Category::Jewelry),
    ("Documentary", Category::Health),
    ("Drama", Category::Fashion),
    ("Fantasy", Category::Home),
    ("Film-Noir", Category::Jewelry),
    ("Horror", Category::Food),
    ("Musical", Category::Outdoor),
    ("Mystery", Category::Jewelry),
    ("Romance", Category::Electronics),
    ("Sci-Fi", Category::Home),
    ("Thriller", Category::Jewelry),
    ("War", Category::Collectibles),
    ("Western", Category::Collectibles),
];

/// Genre indexes (into [`GENRE_SLOTS`]), most specific first.
pub const GENRE_PRIORITY: [usize; 19] = [7, 3, 4, 12, 11, 10, 18, 17, 15, 9, 13, 6, 16, 14, 1, 2, 5, 8, 0];

/// The category slot of a movie.
pub fn category(movie: &Movie) -> Category {
    GENRE_PRIORITY.iter().find(|g| movie.genres[**g]).map_or(Category::Other, |g| GENRE_SLOTS[*g].1)
}

/// The price-band slot of a movie: its era. Before 1970, 1970–1989, 1990–1995, 1996 and later.
pub fn era(movie: &Movie) -> PriceBand {
    match movie.year {
        Some(y) if y < 1970 => PriceBand::Budget,
        Some(y) if y < 1990 => PriceBand::Mid,
        Some(y) if y < 1996 => PriceBand::Premium,
        _ => PriceBand::Luxury,
    }
}

fn age_band(age: u32) -> AgeBand {
    match age {
        0..=17 => AgeBand::A13To17,
        18..=24 => AgeBand::A18To24,
        25..=34 => AgeBand::A25To34,
        35..=44 => AgeBand::A35To44,
        45..=54 => AgeBand::A45To54,
        55..=64 => AgeBand::A55To64,
        _ => AgeBand::A65Plus,
    }
}

fn profile(p: &Person) -> UserProfile {
    let region = match p.zip.chars().next() {
        Some(c) if c.is_ascii_digit() && p.zip.chars().all(|c| c.is_ascii_digit()) => format!("US-{c}"),
        Some(_) => "CA".to_owned(),
        None => String::new(),
    };
    UserProfile {
        age_band: age_band(p.age),
        gender: p.gender,
        region: region.into(),
        language: "en".into(),
        interests: Vec::new(),
    }
}

fn session(item: u32, movie: &Movie) -> LiveSession {
    LiveSession {
        session_id: item.to_string(),
        host_id: format!("movie-{item}"),
        category: category(movie),
        price_band: era(movie),
        language: "en".into(),
        region: "US".into(),
        start_time_ms: 0,
        status: SessionStatus::Live,
        end_time_ms: 0,
        target: Default::default(),
    }
}

fn read(dir: &Path, name: &str) -> Result<String, MovieLensError> {
    let path = dir.join(name);
    // The files are Latin-1 (movie titles); only ASCII fields are used, so decode lossily.
    std::fs::read(&path)
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .map_err(|source| MovieLensError::Io { path: path.display().to_string(), source })
}

fn field<T: std::str::FromStr>(
    fields: &[&str],
    i: usize,
    file: &'static str,
    line: usize,
) -> Result<T, MovieLensError> {
    let raw = fields.get(i).ok_or_else(|| MovieLensError::Format { file, line, what: format!("no field {i}") })?;
    raw.trim().parse().map_err(|_| MovieLensError::Format { file, line, what: format!("field {i} is {raw:?}") })
}

/// Parses `u.user`, `u.item` and `u.data` of a MovieLens 100k directory.
pub fn load(dir: &Path) -> Result<MovieLens, MovieLensError> {
    let mut data = MovieLens::default();
    for (n, line) in read(dir, "u.user")?.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split('|').collect();
        let gender = match f.get(2).copied() {
            Some("M") => Gender::Male,
            Some("F") => Gender::Female,
            other => {
                return Err(MovieLensError::Format { file: "u.user", line: n + 1, what: format!("gender {other:?}") });
            }
        };
        let person = Person {
            age: field(&f, 1, "u.user", n + 1)?,
            gender,
            occupation: f.get(3).unwrap_or(&"").to_string(),
            zip: f.get(4).unwrap_or(&"").trim().to_string(),
        };
        data.users.insert(field(&f, 0, "u.user", n + 1)?, person);
    }
    for (n, line) in read(dir, "u.item")?.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split('|').collect();
        if f.len() < 24 {
            return Err(MovieLensError::Format { file: "u.item", line: n + 1, what: format!("{} fields", f.len()) });
        }
        let year = f[2].rsplit('-').next().and_then(|y| y.parse().ok());
        let mut genres = [false; 19];
        for (g, flag) in genres.iter_mut().enumerate() {
            *flag = f[f.len() - 19 + g] == "1";
        }
        data.movies.insert(field(&f, 0, "u.item", n + 1)?, Movie { year, genres });
    }
    for (n, line) in read(dir, "u.data")?.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let rating = Rating {
            user: field(&f, 0, "u.data", n + 1)?,
            item: field(&f, 1, "u.data", n + 1)?,
            rating: field(&f, 2, "u.data", n + 1)?,
        };
        if !data.users.contains_key(&rating.user) || !data.movies.contains_key(&rating.item) {
            return Err(MovieLensError::Format {
                file: "u.data",
                line: n + 1,
                what: format!("unknown user {} or item {}", rating.user, rating.item),
            });
        }
        data.ratings.push(rating);
    }
    Ok(data)
}

/// One benchmark run's settings.
#[derive(Debug, Clone)]
pub struct Protocol {
    pub seed: u64,
    pub features: FeatureSet,
    /// L2 strengths tried; the best validation log loss wins.
    pub alphas: Vec<f64>,
    pub max_iterations: u64,
    /// Slots per kind of the identity block; 0 for none.
    pub identity_buckets: u32,
    /// Latent factors per identity slot; 0 for none (and none without identity buckets).
    pub factor_dims: u32,
    /// L2 strength on the factors.
    pub factor_alpha: f64,
    /// Posterior draws of Bayesian factors; 0 for alternating least squares.
    pub factor_samples: u32,
}

/// What a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub seed: u64,
    pub features: FeatureSet,
    pub identity_buckets: u32,
    pub factor_dims: u32,
    pub factor_alpha: f64,
    pub factor_samples: u32,
    pub auc: f64,
    pub logloss: f64,
    pub alpha: f64,
    pub validation_logloss: f64,
    pub train_rows: usize,
    pub validation_rows: usize,
    pub test_rows: usize,
}

/// Out-of-fold folds of the training rows.
const FOLDS: usize = 5;

/// Default slots per kind of the identity block: 943 users and 1,682 movies land on distinct
/// slots but for a handful of pairs.
pub const IDENTITY_BUCKETS: u32 = 1 << 16;

/// Default latent factors per identity slot: the user × movie term (collaborative filtering).
pub const FACTOR_DIMS: u32 = 4;

/// Default L2 strength on the factors (alternating least squares only).
pub const FACTOR_ALPHA: f64 = 5.0;

/// Default posterior draws of the Bayesian factors (`crate::train::gibbs`): 4 × 60 + 2 = 242
/// values per slot. 0 fits the factors by alternating least squares instead.
pub const FACTOR_SAMPLES: u32 = 60;

/// The identity keys of a rating: the user, and the movie as the session's host.
fn identity(r: &Rating) -> IdentityKeys {
    IdentityKeys::of(&format!("user-{}", r.user), &format!("movie-{}", r.item))
}

/// History: live statistics per movie and activity per user.
#[derive(Default, Clone)]
struct History {
    stats: HashMap<u32, LiveStats>,
    activity: HashMap<u32, UserActivity>,
}

impl History {
    fn add(&mut self, r: &Rating, user: &UserProfile, movie: &LiveSession) {
        let stats = self.stats.entry(r.item).or_default();
        let activity = self.activity.entry(r.user).or_default();
        let viewer = Viewer::of(Some(user), &movie.target);
        let outcome = if r.rating > 3 { EventKind::View } else { EventKind::Hide };
        for kind in [EventKind::Impression, outcome] {
            let event = Event {
                event_id: String::new(),
                kind,
                user_id: String::new(),
                session_id: String::new(),
                time_ms: 0,
                ranking_id: String::new(),
                position: 0,
                watch_seconds: 0.0,
                amount: 0.0,
                order_id: String::new(),
            };
            stats.apply(&event, viewer);
            activity.apply(movie.category, movie.price_band, &event);
        }
    }
}

/// The three labelled splits of a run (label: rating above 3, in both label columns).
#[derive(Debug, Clone)]
pub struct Splits {
    pub train: Dataset,
    pub validation: Dataset,
    pub test: Dataset,
}

/// Splits the ratings by the protocol and builds each split's rows through the feature path.
pub fn splits(data: &MovieLens, protocol: &Protocol) -> Splits {
    let profiles: HashMap<u32, UserProfile> = data.users.iter().map(|(id, p)| (*id, profile(p))).collect();
    let sessions: HashMap<u32, LiveSession> = data.movies.iter().map(|(id, m)| (*id, session(*id, m))).collect();
    let mut rows: Vec<Rating> = data.ratings.iter().copied().filter(|r| r.rating != 3).collect();
    rows.shuffle(&mut StdRng::seed_from_u64(protocol.seed));
    let n = rows.len();
    let (n_train, n_valid) = (n * 8 / 10, n / 10);
    let (train, rest) = rows.split_at(n_train);
    let (valid, test) = rest.split_at(n_valid);

    let empty = History::default();
    let (all, folds) = match protocol.features {
        FeatureSet::Demographic => (empty.clone(), vec![empty.clone(); FOLDS]),
        FeatureSet::Full => {
            let mut all = History::default();
            let mut folds = vec![History::default(); FOLDS];
            for (i, r) in train.iter().enumerate() {
                let (user, movie) = (&profiles[&r.user], &sessions[&r.item]);
                all.add(r, user, movie);
                for (k, fold) in folds.iter_mut().enumerate() {
                    if k != i % FOLDS {
                        fold.add(r, user, movie);
                    }
                }
            }
            (all, folds)
        }
    };
    let context = RequestContext { time_ms: 0, surface: Surface::HomeFeed };
    let no_stats = LiveStats::default();
    let no_activity = UserActivity::default();
    // Row i of `ratings` sees histories[i % histories.len()].
    let build = |ratings: &[Rating], histories: &[History]| {
        let mut data = Dataset::from_inputs(ratings.iter().enumerate().map(|(i, r)| {
            let h = &histories[i % histories.len()];
            let input = FeatureInput {
                user: &profiles[&r.user],
                activity: h.activity.get(&r.user).unwrap_or(&no_activity),
                session: &sessions[&r.item],
                stats: h.stats.get(&r.item).unwrap_or(&no_stats),
                context: &context,
            };
            (input, r.rating > 3, r.rating > 3)
        }));
        data.ids = ratings.iter().map(identity).collect();
        data
    };
    Splits {
        train: build(train, &folds),
        validation: build(valid, std::slice::from_ref(&all)),
        test: build(test, std::slice::from_ref(&all)),
    }
}

/// Runs the protocol on `data`.
pub fn run(data: &MovieLens, protocol: &Protocol) -> Result<Report, MovieLensError> {
    let Splits { train: train_set, validation: valid_set, test: test_set } = splits(data, protocol);

    let buckets = protocol.identity_buckets;
    let factor_dims = if buckets == 0 { 0 } else { protocol.factor_dims };
    let factor_samples = if factor_dims == 0 { 0 } else { protocol.factor_samples };
    let identity = fit::Identity {
        keys: &train_set.ids,
        buckets,
        factor_dims,
        factor_alpha: protocol.factor_alpha,
        factor_samples,
    };
    let design = fit::design(train_set.x.view(), fit::Solver::Sparse, Some(identity))?;
    let x = design.for_label(train_set.engaged.view())?;
    let mut best: Option<(f64, f64, fitrank::model::LinearHead)> = None;
    for &alpha in &protocol.alphas {
        let head = fit::fit_head("movielens", &x, train_set.engaged.view(), alpha, protocol.max_iterations)?;
        let p = fit::predict(&head, valid_set.x.view(), &valid_set.ids);
        let loss = metrics::log_loss(&p, as_slice(&valid_set.engaged));
        if best.as_ref().is_none_or(|(l, _, _)| loss < *l) {
            best = Some((loss, alpha, head));
        }
    }
    let (validation_logloss, alpha, head) =
        best.ok_or_else(|| crate::train::TrainError::Data("no alpha to try".into()))?;
    let p = fit::predict(&head, test_set.x.view(), &test_set.ids);
    let y = as_slice(&test_set.engaged);
    Ok(Report {
        seed: protocol.seed,
        features: protocol.features,
        identity_buckets: buckets,
        factor_dims,
        factor_alpha: protocol.factor_alpha,
        factor_samples,
        auc: metrics::auc(&p, y),
        logloss: metrics::log_loss(&p, y),
        alpha,
        validation_logloss,
        train_rows: train_set.len(),
        validation_rows: valid_set.len(),
        test_rows: test_set.len(),
    })
}

fn as_slice(a: &Array1<bool>) -> &[bool] {
    a.as_slice().expect("a fresh label array is contiguous")
}

#[cfg(test)]
mod tests {
    use super::*;
    use fitrank::features::{NUM_FEATURES, feature_names};

    fn write(dir: &Path, users: &str, items: &str, ratings: &str) {
        std::fs::write(dir.join("u.user"), users).unwrap();
        std::fs::write(dir.join("u.item"), items).unwrap();
        std::fs::write(dir.join("u.data"), ratings).unwrap();
    }

    fn item_line(id: u32, year: &str, genres: &[usize]) -> String {
        let flags: Vec<&str> = (0..19).map(|g| if genres.contains(&g) { "1" } else { "0" }).collect();
        format!("{id}|Movie {id} (x)|01-Jan-{year}||http://x|{}\n", flags.join("|"))
    }

    fn column(name: &str) -> usize {
        feature_names().iter().position(|n| n == name).unwrap()
    }

    #[test]
    fn loads_the_files_and_maps_genres_and_eras() {
        let dir = tempfile::tempdir().unwrap();
        let items = item_line(1, "1995", &[5, 14]) + &item_line(2, "1962", &[8]) + &item_line(3, "", &[]);
        write(dir.path(), "1|24|M|technician|85711\n2|53|F|other|T8H1N\n", &items, "1\t1\t5\t881250949\n2\t2\t1\t1\n");
        let data = load(dir.path()).unwrap();
        assert_eq!(data.ratings, vec![Rating { user: 1, item: 1, rating: 5 }, Rating { user: 2, item: 2, rating: 1 }]);
        assert_eq!(data.users[&2].gender, Gender::Female);
        assert_eq!(profile(&data.users[&1]).region.as_ref(), "US-8");
        assert_eq!(profile(&data.users[&2]).region.as_ref(), "CA");
        // Comedy + Romance: the more specific Romance wins.
        assert_eq!(category(&data.movies[&1]), GENRE_SLOTS[14].1);
        assert_eq!(era(&data.movies[&1]), PriceBand::Premium);
        assert_eq!(era(&data.movies[&2]), PriceBand::Budget);
        assert_eq!(category(&data.movies[&3]), Category::Other);

        write(dir.path(), "1|24|M|technician|85711\n", &items, "1\t1\t5\t1\n7\t1\t4\t1\n");
        let err = load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("u.data line 2") && err.contains("unknown user 7"), "{err}");
    }

    /// A world where only the movie decides the rating: good movies get 5, bad ones 1, with 10%
    /// of ratings flipped. History must find it; demographics alone cannot.
    fn quality_world(users: u32, items: u32) -> MovieLens {
        let mut data = MovieLens::default();
        for u in 1..=users {
            let gender = if u % 2 == 0 { Gender::Female } else { Gender::Male };
            data.users.insert(u, Person { age: 18 + u % 50, gender, occupation: "x".into(), zip: "12345".into() });
        }
        for i in 1..=items {
            data.movies.insert(i, Movie { year: Some(1994), genres: std::array::from_fn(|g| g == 8) });
        }
        let mut rng = StdRng::seed_from_u64(5);
        for u in 1..=users {
            for i in 1..=items {
                if rand::Rng::gen_bool(&mut rng, 0.3) {
                    let good = i % 3 != 0;
                    let flip = rand::Rng::gen_bool(&mut rng, 0.1);
                    data.ratings.push(Rating { user: u, item: i, rating: if good != flip { 5 } else { 1 } });
                }
            }
        }
        data
    }

    #[test]
    fn history_or_identity_finds_movie_quality_and_demographics_alone_do_not() {
        let data = quality_world(300, 60);
        let mut protocol = Protocol {
            seed: 3,
            features: FeatureSet::Full,
            alphas: vec![1.0, 10.0],
            max_iterations: 200,
            identity_buckets: 0,
            factor_dims: 0,
            factor_alpha: 1.0,
            factor_samples: 0,
        };
        let full = run(&data, &protocol).unwrap();
        protocol.features = FeatureSet::Demographic;
        let demographic = run(&data, &protocol).unwrap();
        protocol.identity_buckets = 4096;
        let with_ids = run(&data, &protocol).unwrap();
        // The best achievable AUC is about 0.9 (10% flipped); chance is 0.5. The movie's id
        // weight learns its quality from the training rows, as its history does.
        assert!(full.auc > 0.85, "full AUC {}", full.auc);
        assert!(demographic.auc < 0.6, "demographic AUC {}", demographic.auc);
        assert!(with_ids.auc > 0.85, "demographic + identity AUC {}", with_ids.auc);
        assert_eq!(with_ids.identity_buckets, 4096);
        assert_eq!(full.train_rows + full.validation_rows + full.test_rows, data.ratings.len());
    }

    #[test]
    fn a_training_row_never_sees_its_own_rating() {
        // Every user rates one movie nobody else rates: out-of-fold, no training row has history
        // of its movie or its user; held-out rows see the training rows of nobody else either.
        let mut data = MovieLens::default();
        for k in 1..=200 {
            data.users.insert(k, Person { age: 30, gender: Gender::Male, occupation: "x".into(), zip: "1".into() });
            data.movies.insert(k, Movie { year: Some(1990), genres: [false; 19] });
            data.ratings.push(Rating { user: k, item: k, rating: if k % 2 == 0 { 5 } else { 1 } });
        }
        let protocol = Protocol {
            seed: 1,
            features: FeatureSet::Full,
            alphas: vec![1.0],
            max_iterations: 10,
            identity_buckets: IDENTITY_BUCKETS,
            factor_dims: FACTOR_DIMS,
            factor_alpha: FACTOR_ALPHA,
            factor_samples: FACTOR_SAMPLES,
        };
        let s = splits(&data, &protocol);
        let empty = s.train.x.row(0).to_owned();
        for split in [&s.train, &s.validation, &s.test] {
            for row in split.x.rows() {
                assert_eq!(row, empty, "a row depends on a rating");
            }
        }
        assert_eq!(empty[column("live.log_impressions")], 0.0);
        assert_eq!(empty[column("user.log_impressions")], 0.0);
        assert_eq!(empty.len(), NUM_FEATURES);
    }
}
