//! The export's column layout, in one place: [`append_row`] writes it and [`inputs_from_row`] /
//! [`features_from_row`] read it back. `docs/EXPORT.md` documents it for data scientists.
//!
//! A row is one served item: identifiers and scores, outcome labels, the **raw inputs** of the
//! feature extractor (user, activity, session, live stats, context) and the **served feature row**
//! (`f.<feature name>`). Keeping both means features can be recomputed offline, by this or a later
//! schema, and compared with what was served.

use std::collections::HashMap;

use fitrank::domain::stats::counter;
use fitrank::domain::window::{Decayed, WINDOW_NAMES};
use fitrank::domain::{
    AgeBand, Category, Gender, LiveSession, LiveStats, PriceBand, RequestContext, SEGMENTS, SessionStatus, Surface,
    TargetAudience, UserActivity, UserProfile,
};
use fitrank::featurelog::{ServedItem, ServedRanking};
use fitrank::features::{FeatureInput, NUM_FEATURES, Row, feature_names};

use super::table::{Column, Table, TableBuilder, TableError};

/// Outcomes joined to one served item.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Labels {
    /// Viewed or watched within the attribution window.
    pub engaged: bool,
    /// Bought within the attribution window.
    pub purchased: bool,
    /// Sum of purchase amounts.
    pub amount: f64,
    /// A return or refund followed.
    pub returned: bool,
    /// Purchases attributed to the item.
    pub purchases: u32,
    /// Of them, how many a return reversed (a return naming the order, or one without an order id
    /// attributed to the item).
    pub reversed: u32,
    /// Seconds watched within the window.
    pub watch_seconds: f64,
}

impl Labels {
    /// At least one purchase that no return reversed: the net-purchase label.
    pub fn net_purchased(&self) -> bool {
        self.purchases > self.reversed
    }
}

const COUNTER_NAMES: [&str; counter::COUNT] = ["impressions", "views", "watch_seconds", "purchases"];

fn list(items: impl IntoIterator<Item = impl serde::Serialize>) -> String {
    serde_json::to_string(&items.into_iter().collect::<Vec<_>>()).expect("lists serialise")
}

/// Appends the row of one served item.
pub fn append_row(b: &mut TableBuilder, r: &ServedRanking, item: &ServedItem, labels: &Labels, row: &Row) {
    let s = &item.session;
    b.str("ranking_id", r.ranking_id.as_str());
    b.i64("time_ms", r.context.time_ms);
    b.str("user_id", r.user_id.as_str());
    b.str("session_id", s.session_id.as_str());
    b.i64("position", i64::from(item.position));
    b.str("model_version", r.model_version.as_str());
    b.str("schema_hash", r.schema_hash.as_str());
    b.str("experiment", r.experiment.as_str());
    b.str("arm", r.arm.as_str());
    b.f32("propensity", item.propensity);
    b.f32("score", item.score);
    b.f32("p_engage", item.p_engage);
    b.f32("p_purchase", item.p_purchase);

    b.i64("label_engage", i64::from(labels.engaged));
    b.i64("label_purchase", i64::from(labels.purchased));
    b.f64("purchase_amount", labels.amount);
    b.i64("label_return", i64::from(labels.returned));
    b.i64("label_net_purchase", i64::from(labels.net_purchased()));
    b.f64("watch_seconds", labels.watch_seconds);

    let u = &r.user;
    b.str("user.age_band", u.age_band.name());
    b.str("user.gender", u.gender.name());
    b.str("user.region", &*u.region);
    b.str("user.language", &*u.language);
    b.str("user.interests", list(&u.interests));
    b.i64("activity.at_ms", r.activity.at_ms);
    for c in Category::ALL {
        b.f32(&format!("activity.{}", c.name()), r.activity.by_category[c.index()]);
    }
    b.f32("activity.impressions", r.activity.impressions);
    b.f32("activity.views", r.activity.views);
    for c in Category::ALL {
        b.f32(&format!("activity.impressions.{}", c.name()), r.activity.category_impressions[c.index()]);
        b.f32(&format!("activity.views.{}", c.name()), r.activity.category_views[c.index()]);
    }
    b.f32("activity.purchases", r.activity.purchases);
    b.f32("activity.returns", r.activity.returns);
    for p in PriceBand::ALL {
        b.f32(&format!("activity.price_impressions.{}", p.name()), r.activity.price_impressions[p.index()]);
        b.f32(&format!("activity.price_views.{}", p.name()), r.activity.price_views[p.index()]);
        b.f32(&format!("activity.price_purchases.{}", p.name()), r.activity.price_purchases[p.index()]);
    }
    b.str("context.surface", r.context.surface.name());

    b.str("session.host_id", s.host_id.as_str());
    b.str("session.category", s.category.name());
    b.str("session.price_band", s.price_band.name());
    b.str("session.language", s.language.as_str());
    b.str("session.region", s.region.as_str());
    b.i64("session.start_time_ms", s.start_time_ms);
    b.i64("target.min_age", i64::from(s.target.min_age));
    b.i64("target.max_age", i64::from(s.target.max_age));
    b.str("target.genders", list(s.target.genders.iter().map(|g| g.name())));
    b.str("target.regions", list(&s.target.regions));
    b.str("target.interests", list(&s.target.interests));

    let st = &item.stats;
    for (name, v) in [
        ("stats.impressions", st.impressions),
        ("stats.views", st.views),
        ("stats.interactions", st.interactions),
        ("stats.follows", st.follows),
        ("stats.add_to_carts", st.add_to_carts),
        ("stats.purchases", st.purchases),
        ("stats.returns", st.returns),
        ("stats.hides", st.hides),
        ("stats.on_target_views", st.on_target_views),
        ("stats.known_views", st.known_views),
    ] {
        b.i64(name, v as i64);
    }
    b.f64("stats.watch_seconds", st.watch_seconds);
    b.f64("stats.revenue", st.revenue);
    b.i64("stats.windows.at_ms", st.windows.at_ms);
    for (c, cname) in COUNTER_NAMES.iter().enumerate() {
        for (w, wname) in WINDOW_NAMES.iter().enumerate() {
            b.f32(&format!("stats.w.{cname}.{wname}"), st.windows.values[c][w]);
        }
    }
    b.str("stats.segment_views", list(st.segment_views));
    b.str("stats.segment_purchases", list(st.segment_purchases));
    // Derived, for people reading the export: the audience the session had reached by then.
    let observed = fitrank::domain::observed(&s.target, st);
    b.f64("observed.viewers_inside_share", observed.viewers_inside_share.unwrap_or(f64::NAN));
    b.f64("observed.buyers_inside_share", observed.buyers_inside_share.unwrap_or(f64::NAN));
    b.str("observed.mismatch", observed.mismatch.as_deref().unwrap_or(""));

    for (name, v) in feature_names().iter().zip(row.iter()) {
        b.f32(&format!("f.{name}"), *v);
    }
    b.end_row();
}

/// Extractor inputs rebuilt from an exported row.
#[derive(Debug, Clone, PartialEq)]
pub struct OwnedInput {
    pub user: UserProfile,
    pub activity: UserActivity,
    pub session: LiveSession,
    pub stats: LiveStats,
    pub context: RequestContext,
}

impl OwnedInput {
    /// Borrowed view for [`fitrank::features::extract`].
    pub fn input(&self) -> FeatureInput<'_> {
        FeatureInput {
            user: &self.user,
            activity: &self.activity,
            session: &self.session,
            stats: &self.stats,
            context: &self.context,
        }
    }
}

/// A table's columns found by name through an index built once: [`RawColumns::inputs`] reads about
/// 80 cells a row, and [`Table::column`] scans every column per lookup.
pub struct RawColumns<'a> {
    table: &'a Table,
    index: HashMap<&'a str, usize>,
}

impl<'a> RawColumns<'a> {
    /// Indexes `table`'s column names (the first of a repeated name wins, as in [`Table::column`]).
    pub fn new(table: &'a Table) -> Self {
        let mut index = HashMap::with_capacity(table.columns.len());
        for (i, c) in table.columns.iter().enumerate() {
            index.entry(c.name.as_str()).or_insert(i);
        }
        RawColumns { table, index }
    }

    fn column(&self, name: &str) -> Result<&'a Column, TableError> {
        let table: &'a Table = self.table;
        self.index.get(name).map(|i| &table.columns[*i]).ok_or_else(|| TableError::MissingColumn(name.to_owned()))
    }

    fn text(&self, name: &str, row: usize) -> Result<String, TableError> {
        Ok(self.column(name)?.text(row).into_owned())
    }

    fn i64(&self, name: &str, row: usize) -> Result<i64, TableError> {
        self.column(name)?.i64(row)
    }

    fn f32(&self, name: &str, row: usize) -> Result<f32, TableError> {
        self.column(name)?.f32(row)
    }

    fn f64(&self, name: &str, row: usize) -> Result<f64, TableError> {
        self.column(name)?.f64(row)
    }

    /// Rebuilds the extractor's inputs of row `row`.
    pub fn inputs(&self, row: usize) -> Result<OwnedInput, TableError> {
        let user = UserProfile {
            age_band: named(self, "user.age_band", row, AgeBand::from_name)?,
            gender: named(self, "user.gender", row, Gender::from_name)?,
            region: self.text("user.region", row)?.into(),
            language: self.text("user.language", row)?.into(),
            interests: json_list(self, "user.interests", row)?,
        };
        let mut activity = UserActivity { at_ms: self.i64("activity.at_ms", row)?, ..Default::default() };
        for c in Category::ALL {
            activity.by_category[c.index()] = self.f32(&format!("activity.{}", c.name()), row)?;
        }
        activity.impressions = self.f32("activity.impressions", row)?;
        activity.views = self.f32("activity.views", row)?;
        for c in Category::ALL {
            activity.category_impressions[c.index()] = self.f32(&format!("activity.impressions.{}", c.name()), row)?;
            activity.category_views[c.index()] = self.f32(&format!("activity.views.{}", c.name()), row)?;
        }
        activity.purchases = self.f32("activity.purchases", row)?;
        activity.returns = self.f32("activity.returns", row)?;
        for p in PriceBand::ALL {
            let band = |what: &str| self.f32(&format!("activity.{what}.{}", p.name()), row);
            activity.price_impressions[p.index()] = band("price_impressions")?;
            activity.price_views[p.index()] = band("price_views")?;
            activity.price_purchases[p.index()] = band("price_purchases")?;
        }
        let genders: Vec<String> = json_list(self, "target.genders", row)?;
        let session = LiveSession {
            session_id: self.text("session_id", row)?,
            host_id: self.text("session.host_id", row)?,
            category: named(self, "session.category", row, Category::from_name)?,
            price_band: named(self, "session.price_band", row, PriceBand::from_name)?,
            language: self.text("session.language", row)?,
            region: self.text("session.region", row)?,
            start_time_ms: self.i64("session.start_time_ms", row)?,
            status: SessionStatus::Live,
            end_time_ms: 0,
            target: TargetAudience {
                min_age: self.i64("target.min_age", row)? as u32,
                max_age: self.i64("target.max_age", row)? as u32,
                genders: genders.iter().filter_map(|g| Gender::from_name(g)).collect(),
                regions: json_list(self, "target.regions", row)?,
                interests: json_list(self, "target.interests", row)?,
            },
        };
        let mut windows = Decayed { at_ms: self.i64("stats.windows.at_ms", row)?, ..Default::default() };
        for (c, cname) in COUNTER_NAMES.iter().enumerate() {
            for (w, wname) in WINDOW_NAMES.iter().enumerate() {
                windows.values[c][w] = self.f32(&format!("stats.w.{cname}.{wname}"), row)?;
            }
        }
        let segments = |column: &str| -> Result<[u32; SEGMENTS], TableError> {
            let v: Vec<u32> = json_list(self, column, row)?;
            v.try_into().map_err(|_| TableError::NotANumber {
                column: column.into(),
                row,
                value: "wrong length".into(),
            })
        };
        let (segment_views, segment_purchases) =
            (segments("stats.segment_views")?, segments("stats.segment_purchases")?);
        let count = |name: &str| self.i64(name, row).map(|v| v as u64);
        let stats = LiveStats {
            impressions: count("stats.impressions")?,
            views: count("stats.views")?,
            watch_seconds: self.f64("stats.watch_seconds", row)?,
            interactions: count("stats.interactions")?,
            follows: count("stats.follows")?,
            add_to_carts: count("stats.add_to_carts")?,
            purchases: count("stats.purchases")?,
            revenue: self.f64("stats.revenue", row)?,
            returns: count("stats.returns")?,
            hides: count("stats.hides")?,
            on_target_views: count("stats.on_target_views")?,
            known_views: count("stats.known_views")?,
            windows,
            segment_views,
            segment_purchases,
        };
        let context = RequestContext {
            time_ms: self.i64("time_ms", row)?,
            surface: named(self, "context.surface", row, Surface::from_name)?,
        };
        Ok(OwnedInput { user, activity, session, stats, context })
    }
}

fn named<T: Copy>(t: &RawColumns<'_>, col: &str, row: usize, parse: fn(&str) -> Option<T>) -> Result<T, TableError> {
    let text = t.text(col, row)?;
    parse(&text).ok_or(TableError::NotANumber { column: col.to_owned(), row, value: text })
}

fn json_list<T: serde::de::DeserializeOwned>(t: &RawColumns<'_>, col: &str, row: usize) -> Result<Vec<T>, TableError> {
    let text = t.text(col, row)?;
    serde_json::from_str(&text).map_err(|_| TableError::NotANumber { column: col.to_owned(), row, value: text })
}

/// Rebuilds the extractor's inputs of row `row` (for many rows, index once with [`RawColumns`]).
pub fn inputs_from_row(t: &Table, row: usize) -> Result<OwnedInput, TableError> {
    RawColumns::new(t).inputs(row)
}

/// The served feature row of row `row`.
pub fn features_from_row(t: &Table, row: usize) -> Result<Row, TableError> {
    FeatureColumns::new(t)?.row(row)
}

/// The `f.*` columns of a table in schema order, looked up once for reading many rows.
pub struct FeatureColumns<'a>(Vec<&'a Column>);

impl<'a> FeatureColumns<'a> {
    /// Finds every feature's column; a missing one is an error naming it.
    pub fn new(t: &'a Table) -> Result<Self, TableError> {
        feature_names().iter().map(|name| t.column(&format!("f.{name}"))).collect::<Result<_, _>>().map(FeatureColumns)
    }

    /// The feature row `row`.
    pub fn row(&self, row: usize) -> Result<Row, TableError> {
        let mut out = [0f32; NUM_FEATURES];
        for (dst, column) in out.iter_mut().zip(&self.0) {
            *dst = column.f32(row)?;
        }
        Ok(out)
    }
}

/// A table with every column of the layout and no rows.
pub fn empty_table() -> Table {
    let session = std::sync::Arc::new(LiveSession {
        session_id: String::new(),
        host_id: String::new(),
        category: Category::Other,
        price_band: PriceBand::Mid,
        language: String::new(),
        region: String::new(),
        start_time_ms: 0,
        status: SessionStatus::Live,
        end_time_ms: 0,
        target: TargetAudience::default(),
    });
    let item = ServedItem {
        session,
        stats: LiveStats::default(),
        position: 0,
        score: 0.0,
        p_engage: 0.0,
        p_purchase: 0.0,
        propensity: 1.0,
        features: Default::default(),
    };
    let ranking = ServedRanking {
        ranking_id: String::new(),
        user_id: String::new(),
        user: UserProfile::default(),
        activity: UserActivity::default(),
        context: RequestContext { time_ms: 0, surface: Surface::Unknown },
        schema_hash: String::new(),
        model_version: String::new(),
        experiment: String::new(),
        arm: String::new(),
        items: vec![],
    };
    let mut b = TableBuilder::default();
    append_row(&mut b, &ranking, &item, &Labels::default(), &[0.0; NUM_FEATURES]);
    b.table.empty_like()
}

/// Adds every raw-input column of the layout that `table` lacks, filled with its empty value
/// (unknown demographics, no target, zero stats, category `other`, price band `mid`), so that
/// [`inputs_from_row`] can read tables from other sources. Returns the names it added.
pub fn fill_missing_inputs(table: &mut Table) -> Vec<String> {
    use super::table::{Column, Values};
    let rows = table.rows();
    let template = empty_table();
    let mut added = Vec::new();
    for c in template.columns {
        let raw = c.name.starts_with("user.")
            || c.name.starts_with("activity.")
            || c.name.starts_with("session.")
            || c.name.starts_with("target.")
            || c.name.starts_with("stats.")
            || c.name.starts_with("context.")
            || c.name == "time_ms"
            || c.name == "session_id";
        if !raw || table.has(&c.name) {
            continue;
        }
        let text = |v: &str| Values::Str(vec![v.to_owned(); rows]);
        let values = match (c.name.as_str(), &c.values) {
            ("user.age_band" | "user.gender" | "context.surface", _) => text("unknown"),
            ("session.category", _) => text("other"),
            ("session.price_band", _) => text("mid"),
            ("stats.segment_views" | "stats.segment_purchases", _) => text(&list([0u32; SEGMENTS])),
            (n, _) if n.ends_with("interests") || n.ends_with("genders") || n.ends_with("regions") => text("[]"),
            (_, Values::I64(_)) => Values::I64(vec![0; rows]),
            (_, Values::F64(_)) => Values::F64(vec![0.0; rows]),
            (_, Values::F32(_)) => Values::F32(vec![0.0; rows]),
            (_, Values::Str(_)) => text(""),
        };
        added.push(c.name.clone());
        table.columns.push(Column { name: c.name, values });
    }
    added
}
