//! The per-arm report of one experiment, from an export of the feature log (`fitrank export`).
//!
//! Each export row is one served item with its outcome labels and the experiments and arms of the
//! ranking that served it. Rows are grouped by arm, then by user (the unit of randomisation), and
//! every metric is compared with the control arm:
//!
//! | metric | unit | test |
//! |---|---|---|
//! | conversion: users with a purchase / users | user | two-proportion z-test |
//! | purchases per user, revenue per user | user | Welch's t-test |
//! | engagement rate, purchases per 1,000 impressions, on-target share | impression, randomised by user | delta method |
//!
//! "On-target share" is the share of impressions of sessions that declared a target audience that
//! went to users inside it ([`audience::in_target`] of the served row's fit). The sample-ratio-mismatch check
//! compares users per arm with the arms' weights and alerts at p < 0.001.
//!
//! Guardrails (p99 latency, error rate) come from the service's metrics, not from the feature log;
//! the stop rule is documented in the README and applied by the operator.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::Serialize;

/// The statistics live beside the experiments in the product, which reads arms out online with
/// the same tests.
pub use fitrank::experiment::stats;

use self::stats::{Comparison, Srm};
use crate::export::{Table, TableError};
use fitrank::domain::audience;

/// One arm's totals.
#[derive(Debug, Clone, Serialize)]
pub struct ArmSummary {
    pub arm: String,
    pub users: usize,
    pub impressions: u64,
    pub engagement_rate: f64,
    pub conversion: f64,
    pub purchases_per_user: f64,
    pub purchases_per_1000_impressions: f64,
    pub revenue_per_user: f64,
    pub on_target_share: f64,
}

/// One metric of one arm against control.
#[derive(Debug, Clone, Serialize)]
pub struct Lift {
    pub arm: String,
    pub metric: &'static str,
    pub control: f64,
    pub treatment: f64,
    #[serde(flatten)]
    pub comparison: Comparison,
}

/// The report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub experiment: String,
    pub control: String,
    pub arms: Vec<ArmSummary>,
    pub lifts: Vec<Lift>,
    pub srm: Option<Srm>,
    /// Users seen in more than one arm (counted in the first); should be 0.
    pub users_in_several_arms: usize,
}

#[derive(Debug, Default, Clone)]
struct UserTotals {
    impressions: f64,
    engaged: f64,
    purchases: f64,
    revenue: f64,
    targeted: f64,
    on_target: f64,
}

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Table(#[from] TableError),
    #[error("no rows of experiment {0:?} in the data")]
    NoRows(String),
    #[error("control arm {0:?} has no rows")]
    NoControl(String),
    #[error("writing the chart {path}: {reason}")]
    Chart { path: String, reason: String },
}

/// Builds the report of `experiment` from `table`. `weights` (arm → traffic weight) feed the SRM
/// check; arms without a weight get 1.
pub fn report(
    table: &Table,
    experiment: &str,
    control: &str,
    weights: &BTreeMap<String, f64>,
) -> Result<Report, ReportError> {
    let has_fit = ["f.fit.overall", "f.fit.declared_share", "f.fit.unknown_share"].iter().all(|c| table.has(c));
    let mut arms: BTreeMap<String, HashMap<String, UserTotals>> = BTreeMap::new();
    let mut user_arm: HashMap<String, String> = HashMap::new();
    let mut several = std::collections::HashSet::new();
    for row in 0..table.rows() {
        let experiments = table.text("experiment", row)?;
        let Some(k) = experiments.split(',').position(|e| e == experiment) else { continue };
        let arm_list = table.text("arm", row)?;
        let Some(arm) = arm_list.split(',').nth(k) else { continue };
        let user = table.text("user_id", row)?;
        let arm = match user_arm.get(&user) {
            Some(first) if first != arm => {
                several.insert(user.clone());
                first.clone()
            }
            Some(first) => first.clone(),
            None => {
                user_arm.insert(user.clone(), arm.to_owned());
                arm.to_owned()
            }
        };
        let t = arms.entry(arm).or_default().entry(user).or_default();
        t.impressions += 1.0;
        t.engaged += table.i64("label_engage", row)? as f64;
        t.purchases += table.i64("label_purchase", row)? as f64;
        t.revenue += table.f64("purchase_amount", row)?;
        if has_fit && table.f32("f.fit.declared_share", row)? > 0.0 {
            t.targeted += 1.0;
            let inside =
                audience::in_target(table.f32("f.fit.overall", row)?, table.f32("f.fit.unknown_share", row)? > 0.0);
            t.on_target += f64::from(u8::from(inside == Some(true)));
        }
    }
    if arms.is_empty() {
        return Err(ReportError::NoRows(experiment.to_owned()));
    }
    let control_users: Vec<UserTotals> =
        arms.get(control).ok_or_else(|| ReportError::NoControl(control.to_owned()))?.values().cloned().collect();

    let summary = |arm: &str, users: &[UserTotals]| {
        let sum = |f: fn(&UserTotals) -> f64| users.iter().map(f).sum::<f64>();
        let (n, imps) = (users.len() as f64, sum(|u| u.impressions));
        ArmSummary {
            arm: arm.to_owned(),
            users: users.len(),
            impressions: imps as u64,
            engagement_rate: sum(|u| u.engaged) / imps,
            conversion: users.iter().filter(|u| u.purchases > 0.0).count() as f64 / n,
            purchases_per_user: sum(|u| u.purchases) / n,
            purchases_per_1000_impressions: 1000.0 * sum(|u| u.purchases) / imps,
            revenue_per_user: sum(|u| u.revenue) / n,
            on_target_share: sum(|u| u.on_target) / sum(|u| u.targeted),
        }
    };

    let c = summary(control, &control_users);
    let mut summaries = Vec::new();
    let mut lifts = Vec::new();
    for (arm, users) in &arms {
        let users: Vec<UserTotals> = users.values().cloned().collect();
        let s = summary(arm, &users);
        if arm != control {
            let mut push = |metric: &'static str, control: f64, treatment: f64, comparison: Option<Comparison>| {
                if let Some(comparison) = comparison {
                    lifts.push(Lift { arm: arm.clone(), metric, control, treatment, comparison });
                }
            };
            let converted = |u: &[UserTotals]| u.iter().filter(|u| u.purchases > 0.0).count() as u64;
            push(
                "conversion",
                c.conversion,
                s.conversion,
                stats::two_proportions(
                    converted(&control_users),
                    control_users.len() as u64,
                    converted(&users),
                    users.len() as u64,
                ),
            );
            let per_user = |u: &[UserTotals], f: fn(&UserTotals) -> f64| u.iter().map(f).collect::<Vec<f64>>();
            push(
                "purchases_per_user",
                c.purchases_per_user,
                s.purchases_per_user,
                stats::welch(&per_user(&control_users, |u| u.purchases), &per_user(&users, |u| u.purchases)),
            );
            push(
                "revenue_per_user",
                c.revenue_per_user,
                s.revenue_per_user,
                stats::welch(&per_user(&control_users, |u| u.revenue), &per_user(&users, |u| u.revenue)),
            );
            let pairs = |u: &[UserTotals], f: fn(&UserTotals) -> (f64, f64)| u.iter().map(f).collect::<Vec<_>>();
            push(
                "engagement_rate",
                c.engagement_rate,
                s.engagement_rate,
                stats::ratio_delta(
                    &pairs(&control_users, |u| (u.engaged, u.impressions)),
                    &pairs(&users, |u| (u.engaged, u.impressions)),
                ),
            );
            let per_mille = stats::ratio_delta(
                &pairs(&control_users, |u| (1000.0 * u.purchases, u.impressions)),
                &pairs(&users, |u| (1000.0 * u.purchases, u.impressions)),
            );
            push(
                "purchases_per_1000_impressions",
                c.purchases_per_1000_impressions,
                s.purchases_per_1000_impressions,
                per_mille,
            );
            let targeted = |u: &[UserTotals]| {
                u.iter().filter(|u| u.targeted > 0.0).map(|u| (u.on_target, u.targeted)).collect::<Vec<_>>()
            };
            push(
                "on_target_share",
                c.on_target_share,
                s.on_target_share,
                stats::ratio_delta(&targeted(&control_users), &targeted(&users)),
            );
        }
        summaries.push(s);
    }
    let observed: Vec<u64> = summaries.iter().map(|s| s.users as u64).collect();
    let w: Vec<f64> = summaries.iter().map(|s| weights.get(&s.arm).copied().unwrap_or(1.0)).collect();
    Ok(Report {
        experiment: experiment.to_owned(),
        control: control.to_owned(),
        srm: stats::srm(&observed, &w),
        arms: summaries,
        lifts,
        users_in_several_arms: several.len(),
    })
}

impl Report {
    /// A readable table.
    pub fn to_text(&self) -> String {
        let mut out = format!("experiment {}  (control: {})\n", self.experiment, self.control);
        out += &format!(
            "{:<14} {:>8} {:>11} {:>9} {:>10} {:>10} {:>9} {:>10} {:>9}\n",
            "arm", "users", "impressions", "engage", "conversion", "buys/user", "buys/1k", "rev/user", "on-target"
        );
        for a in &self.arms {
            out += &format!(
                "{:<14} {:>8} {:>11} {:>9.4} {:>10.4} {:>10.4} {:>9.3} {:>10.2} {:>9.3}\n",
                a.arm,
                a.users,
                a.impressions,
                a.engagement_rate,
                a.conversion,
                a.purchases_per_user,
                a.purchases_per_1000_impressions,
                a.revenue_per_user,
                a.on_target_share
            );
        }
        out += "\nlift against control (95% CI of the difference, two-sided p)\n";
        for l in &self.lifts {
            let c = &l.comparison;
            out += &format!(
                "{:<14} {:<31} {:>+9.4} [{:+.4}, {:+.4}]  lift {:>+7.2}%  p {:.4}{}\n",
                l.arm,
                l.metric,
                c.difference,
                c.ci_low,
                c.ci_high,
                100.0 * c.lift,
                c.p_value,
                if c.p_value < 0.05 { "  *" } else { "" }
            );
        }
        if let Some(s) = &self.srm {
            out += &format!(
                "\nsample ratio: chi-square {:.3}, p {:.5}{}\n",
                s.chi_square,
                s.p_value,
                if s.alert {
                    "  ALERT: users per arm do not match the weights; do not trust the lifts"
                } else {
                    "  ok"
                }
            );
        }
        if self.users_in_several_arms > 0 {
            out += &format!("warning: {} users appear in more than one arm\n", self.users_in_several_arms);
        }
        out
    }

    /// An SVG chart: each metric's relative lift with its 95% interval, one row per arm × metric.
    pub fn write_chart(&self, path: &Path) -> Result<(), ReportError> {
        use plotters::prelude::*;
        let err =
            |e: &dyn std::fmt::Display| ReportError::Chart { path: path.display().to_string(), reason: e.to_string() };
        let rows: Vec<(String, f64, f64, f64)> = self
            .lifts
            .iter()
            .filter(|l| l.control != 0.0 && l.control.is_finite())
            .map(|l| {
                let c = &l.comparison;
                (
                    format!("{} {}", l.arm, l.metric),
                    100.0 * c.lift,
                    100.0 * c.ci_low / l.control,
                    100.0 * c.ci_high / l.control,
                )
            })
            .collect();
        let bound = rows.iter().flat_map(|r| [r.2.abs(), r.3.abs()]).fold(1.0f64, f64::max) * 1.1;
        let height = 120 + 40 * rows.len() as u32;
        let root = SVGBackend::new(path, (760, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let n = rows.len().max(1) as f64;
        let mut chart = ChartBuilder::on(&root)
            .caption(format!("{}: lift vs {} (%, 95% CI)", self.experiment, self.control), ("sans-serif", 20))
            .margin(15)
            .x_label_area_size(35)
            .y_label_area_size(260)
            .build_cartesian_2d(-bound..bound, -0.5f64..(n - 0.5))
            .map_err(|e| err(&e))?;
        let labels: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
        chart
            .configure_mesh()
            .y_labels(rows.len().max(1))
            .y_label_formatter(&|y| labels.get(y.round() as usize).cloned().unwrap_or_default())
            .x_desc("relative lift, %")
            .draw()
            .map_err(|e| err(&e))?;
        chart
            .draw_series(std::iter::once(PathElement::new(vec![(0.0, -0.5), (0.0, n - 0.5)], BLACK.mix(0.5))))
            .map_err(|e| err(&e))?;
        for (i, (_, lift, lo, hi)) in rows.iter().enumerate() {
            let y = i as f64;
            let color = if *lo > 0.0 || *hi < 0.0 { RED } else { BLUE };
            chart
                .draw_series(std::iter::once(PathElement::new(vec![(*lo, y), (*hi, y)], color.stroke_width(3))))
                .map_err(|e| err(&e))?;
            chart.draw_series(std::iter::once(Circle::new((*lift, y), 5, color.filled()))).map_err(|e| err(&e))?;
        }
        root.present().map_err(|e| err(&e))?;
        Ok(())
    }
}

/// Credit of one outcome in an interleaving experiment.
#[derive(Debug, Clone, Serialize)]
pub struct Preference {
    /// Outcome credited: "engage" or "purchase".
    pub outcome: &'static str,
    /// Rankings where arm a's picks got more of the outcome.
    pub wins_a: u64,
    /// Rankings where arm b's picks got more.
    pub wins_b: u64,
    /// Rankings with the outcome where both got the same.
    pub ties: u64,
    /// (wins_b − wins_a) / (wins_a + wins_b): +1 = b always preferred.
    pub preference_b: f64,
    /// Exact two-sided sign test of wins_b against wins_a.
    pub p_value: f64,
}

/// The result of a team-draft interleaving experiment.
#[derive(Debug, Clone, Serialize)]
pub struct InterleavingReport {
    pub experiment: String,
    /// Rankings served under the experiment.
    pub rankings: u64,
    pub preferences: Vec<Preference>,
}

/// Credits each served item's outcomes to the arm that picked it (the exposure's
/// `team-draft:<letters>` gives the team of each position) and compares the arms per ranking.
pub fn interleaving(table: &Table, experiment: &str) -> Result<InterleavingReport, ReportError> {
    // ranking id → [engage a, engage b, purchase a, purchase b]
    let mut credit: HashMap<String, [u64; 4]> = HashMap::new();
    for row in 0..table.rows() {
        let experiments = table.text("experiment", row)?;
        let Some(k) = experiments.split(',').position(|e| e == experiment) else { continue };
        let arms = table.text("arm", row)?;
        let Some(teams) = arms
            .split(',')
            .nth(k)
            .and_then(|a| a.strip_prefix(fitrank::experiment::TEAM_DRAFT_PREFIX).map(str::to_owned))
        else {
            continue;
        };
        let position = table.i64("position", row)?;
        let Some(team) = usize::try_from(position).ok().and_then(|p| teams.as_bytes().get(p).copied()) else {
            continue;
        };
        let b = usize::from(team == b'b');
        let c = credit.entry(table.text("ranking_id", row)?).or_default();
        c[b] += u64::from(table.i64("label_engage", row)? > 0);
        c[2 + b] += u64::from(table.i64("label_purchase", row)? > 0);
    }
    if credit.is_empty() {
        return Err(ReportError::NoRows(experiment.to_owned()));
    }
    let preference = |outcome: &'static str, a: usize, b: usize| {
        let (mut wins_a, mut wins_b, mut ties) = (0, 0, 0);
        for c in credit.values() {
            match c[a].cmp(&c[b]) {
                std::cmp::Ordering::Greater => wins_a += 1,
                std::cmp::Ordering::Less => wins_b += 1,
                std::cmp::Ordering::Equal if c[a] > 0 => ties += 1,
                std::cmp::Ordering::Equal => {}
            }
        }
        let decided = wins_a + wins_b;
        Preference {
            outcome,
            wins_a,
            wins_b,
            ties,
            preference_b: if decided == 0 { 0.0 } else { (wins_b as f64 - wins_a as f64) / decided as f64 },
            p_value: stats::sign_test(wins_b, decided),
        }
    };
    Ok(InterleavingReport {
        experiment: experiment.to_owned(),
        rankings: credit.len() as u64,
        preferences: vec![preference("engage", 0, 1), preference("purchase", 2, 3)],
    })
}

impl InterleavingReport {
    /// A readable table.
    pub fn to_text(&self) -> String {
        let mut out = format!("interleaving experiment {}: {} rankings\n", self.experiment, self.rankings);
        for p in &self.preferences {
            out += &format!(
                "{:<9} a wins {:>6}  b wins {:>6}  ties {:>6}  preference for b {:+.3}  p {:.4}{}\n",
                p.outcome,
                p.wins_a,
                p.wins_b,
                p.ties,
                p.preference_b,
                p.p_value,
                if p.p_value < 0.05 { "  *" } else { "" }
            );
        }
        out
    }
}

/// Reads an export file and reports `experiment`.
pub fn report_file(
    data: &Path,
    experiment: &str,
    control: &str,
    weights: &BTreeMap<String, f64>,
) -> Result<Report, ReportError> {
    report(&Table::read(data)?, experiment, control, weights)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::table::{Column, Values};
    use rand::{Rng, SeedableRng, rngs::StdRng};

    /// An export-shaped table: `users` users split by `treatment_share`, 10 impressions each,
    /// purchase probability per impression `p_control` / `p_treatment`, other layers' experiments
    /// in the same rows.
    fn table(seed: u64, users: usize, treatment_share: f64, p_control: f64, p_treatment: f64) -> Table {
        let mut rng = StdRng::seed_from_u64(seed);
        let (mut exp, mut arm, mut user, mut engage, mut buy, mut amount) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for u in 0..users {
            let treated = rng.gen_bool(treatment_share);
            let p = if treated { p_treatment } else { p_control };
            for _ in 0..10 {
                exp.push("other,e".to_owned());
                arm.push(format!("x,{}", if treated { "treatment" } else { "control" }));
                user.push(format!("u{u}"));
                let bought = rng.gen_bool(p);
                engage.push(i64::from(bought || rng.gen_bool(0.2)));
                buy.push(i64::from(bought));
                amount.push(if bought { 25.0 } else { 0.0 });
            }
        }
        let col = |name: &str, values| Column { name: name.into(), values };
        Table {
            columns: vec![
                col("experiment", Values::Str(exp)),
                col("arm", Values::Str(arm)),
                col("user_id", Values::Str(user)),
                col("label_engage", Values::I64(engage)),
                col("label_purchase", Values::I64(buy)),
                col("purchase_amount", Values::F64(amount)),
            ],
        }
    }

    fn lift<'a>(r: &'a Report, metric: &str) -> &'a Comparison {
        &r.lifts.iter().find(|l| l.metric == metric).unwrap().comparison
    }

    fn equal() -> BTreeMap<String, f64> {
        BTreeMap::from([("control".to_owned(), 1.0), ("treatment".to_owned(), 1.0)])
    }

    #[test]
    fn a_truly_better_arm_is_detected() {
        let r = report(&table(1, 4_000, 0.5, 0.02, 0.03), "e", "control", &equal()).unwrap();
        assert_eq!(r.arms.len(), 2);
        assert_eq!(r.arms[0].impressions, 10 * r.arms[0].users as u64);
        for metric in ["purchases_per_1000_impressions", "purchases_per_user", "conversion", "revenue_per_user"] {
            let c = lift(&r, metric);
            assert!(c.p_value < 0.001 && c.ci_low > 0.0, "{metric}: {c:?}");
        }
        let per_mille = lift(&r, "purchases_per_1000_impressions");
        assert!((per_mille.ci_low..per_mille.ci_high).contains(&10.0), "the true difference is 10 per 1,000");
        assert!(!r.srm.unwrap().alert);
        assert!(r.to_text().contains("purchases_per_1000_impressions"));
    }

    #[test]
    fn a_a_tests_flag_about_five_percent() {
        // 200 A/A experiments: the conversion test should reject at p < 0.05 about 5% of the time
        // (binomial sd 1.5%); a biased test would reject far more often.
        let rejected = (0..200)
            .filter(|seed| {
                let r = report(&table(*seed, 600, 0.5, 0.03, 0.03), "e", "control", &equal()).unwrap();
                lift(&r, "conversion").p_value < 0.05
            })
            .count();
        assert!(rejected <= 20, "{rejected} of 200 A/A tests flagged");
    }

    #[test]
    fn srm_fires_on_a_skewed_split() {
        let r = report(&table(3, 4_000, 0.56, 0.02, 0.02), "e", "control", &equal()).unwrap();
        assert!(r.srm.unwrap().alert, "{:?}", r.srm);
        assert!(r.to_text().contains("ALERT"));
        let dir = tempfile::tempdir().unwrap();
        let chart = dir.path().join("lift.svg");
        r.write_chart(&chart).unwrap();
        assert!(std::fs::read_to_string(&chart).unwrap().contains("<svg"));
    }

    #[test]
    fn interleaving_credits_the_picking_team() {
        // 300 rankings of 4 items; b's picks are engaged with probability 0.3, a's 0.1.
        let mut rng = StdRng::seed_from_u64(9);
        let (mut exp, mut arm, mut rid, mut pos, mut engage, mut buy) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for r in 0..300 {
            let teams: String = (0..4).map(|_| if rng.gen_bool(0.5) { 'a' } else { 'b' }).collect();
            for (p, team) in teams.chars().enumerate() {
                exp.push("il".to_owned());
                arm.push(format!("team-draft:{teams}"));
                rid.push(format!("r{r}"));
                pos.push(p as i64);
                engage.push(i64::from(rng.gen_bool(if team == 'b' { 0.3 } else { 0.1 })));
                buy.push(0);
            }
        }
        let col = |name: &str, values| Column { name: name.into(), values };
        let t = Table {
            columns: vec![
                col("experiment", Values::Str(exp)),
                col("arm", Values::Str(arm)),
                col("ranking_id", Values::Str(rid)),
                col("position", Values::I64(pos)),
                col("label_engage", Values::I64(engage)),
                col("label_purchase", Values::I64(buy)),
            ],
        };
        let r = interleaving(&t, "il").unwrap();
        assert_eq!(r.rankings, 300);
        let engage = &r.preferences[0];
        assert!(engage.wins_b > 2 * engage.wins_a && engage.p_value < 1e-6, "{engage:?}");
        let purchase = &r.preferences[1];
        assert_eq!((purchase.wins_a, purchase.wins_b, purchase.p_value), (0, 0, 1.0));
        assert!(r.to_text().contains("preference for b"));
    }

    #[test]
    fn unknown_experiment_or_control() {
        let t = table(1, 50, 0.5, 0.1, 0.1);
        assert!(matches!(report(&t, "nope", "control", &equal()), Err(ReportError::NoRows(_))));
        assert!(matches!(report(&t, "e", "nope", &equal()), Err(ReportError::NoControl(_))));
    }
}
