//! `fitrank evaluate`: model versions measured on a data set, side by side.
//!
//! For each version and each head (engage, purchase): AUC, log loss, a reliability table and
//! expected calibration error (10 equal-width bins). For ranking quality, rows are grouped by
//! `ranking_id`, ordered by the model's policy score, and scored with NDCG@k against the purchase
//! and engagement labels (requests without a positive are skipped); the order actually served
//! (`position`) is measured the same way as a reference. Plots: ROC and reliability curves per
//! head as SVG, one line per version.

pub mod offpolicy;
mod plots;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::export::Table;
use crate::train::metrics::{self, CalibrationBin};
use crate::train::{Dataset, fit};
use fitrank::features::schema::scalar;
use fitrank::model::{ModelArtifact, ModelError, registry_newest};
use fitrank::policy::Policy;

/// Metrics of one head.
#[derive(Debug, Clone, Serialize)]
pub struct HeadReport {
    pub auc: f64,
    pub logloss: f64,
    pub ece: f64,
    pub base_rate: f64,
    pub mean_predicted: f64,
    pub calibration: Vec<CalibrationBin>,
}

/// Metrics of one model version.
#[derive(Debug, Clone, Serialize)]
pub struct ModelReport {
    /// `<name>/<version>`.
    pub model: String,
    pub engage: HeadReport,
    pub purchase: HeadReport,
    /// Mean NDCG@k over requests with at least one purchase.
    pub ndcg_purchase: Option<f64>,
    /// Mean NDCG@k over requests with at least one engagement.
    pub ndcg_engage: Option<f64>,
    /// IPS / SNIPS estimate of this model's top-slot purchase rate from the logged placement
    /// probabilities (needs `ranking_id`, `position` and `propensity` columns).
    pub off_policy: Option<offpolicy::OffPolicyEstimate>,
    /// The candidate's purchases per ranking over the first `k` positions of its slate, under a
    /// position model (same columns needed).
    pub off_policy_slate: Option<offpolicy::SlateEstimate>,
}

/// The whole evaluation.
#[derive(Debug, Clone, Serialize)]
pub struct EvaluationReport {
    pub rows: usize,
    pub k: usize,
    /// Requests (distinct ranking ids) with a purchase / with an engagement.
    pub requests_with_purchase: usize,
    pub requests_with_engagement: usize,
    /// NDCG@k of the order that was served (`position`), when the data has it.
    pub served_ndcg_purchase: Option<f64>,
    pub served_ndcg_engage: Option<f64>,
    pub models: Vec<ModelReport>,
}

/// The report as the comparison `--record` writes beside the versions: every version's metrics on
/// the same rows, which came from `data` at the event times `times_ms`.
pub fn comparison(report: &EvaluationReport, data: &str, times_ms: &[i64]) -> fitrank::model::comparison::Comparison {
    use fitrank::model::comparison::{ComparedVersion, Comparison};
    let timed = || times_ms.iter().copied().filter(|t| *t > 0);
    let versions = report
        .models
        .iter()
        .map(|m| {
            let mut metrics = std::collections::BTreeMap::from([
                ("purchase_auc".to_owned(), m.purchase.auc),
                ("purchase_logloss".to_owned(), m.purchase.logloss),
                ("engage_auc".to_owned(), m.engage.auc),
                ("engage_logloss".to_owned(), m.engage.logloss),
            ]);
            let ndcg = [("ndcg_purchase", m.ndcg_purchase), ("ndcg_engage", m.ndcg_engage)];
            metrics.extend(ndcg.into_iter().filter_map(|(k, v)| Some((k.to_owned(), v?))));
            metrics.retain(|_, v| v.is_finite());
            ComparedVersion { model: m.model.clone(), metrics }
        })
        .collect();
    Comparison {
        created_at: fitrank::domain::rfc3339(fitrank::domain::now_ms()),
        data: data.to_owned(),
        rows: report.rows as u64,
        from_ms: timed().min().unwrap_or(0),
        to_ms: timed().max().unwrap_or(0),
        versions,
    }
}

/// Why an evaluation failed.
#[derive(Debug, thiserror::Error)]
pub enum EvaluateError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Table(#[from] crate::export::TableError),
    #[error("writing plots to {path}: {reason}")]
    Plot { path: PathBuf, reason: String },
}

/// The rows every evaluated version can be scored on fairly: those after the end of every
/// version's training data, so that no version is measured on rows it learned from.
#[derive(Debug, Clone, PartialEq)]
pub struct CommonRows {
    /// Row indexes kept.
    pub rows: Vec<usize>,
    /// The latest end of the versions' training data, ms (0 when none is timed).
    pub after_ms: i64,
    /// Rows left out because they are not after `after_ms`.
    pub left_out: usize,
}

/// The rows of `data` later than every model's training data. Untimed data, or models whose
/// training data is untimed, keep every row.
pub fn common_later_rows(data: &Dataset, models: &[ModelArtifact]) -> CommonRows {
    let after_ms = models.iter().map(|m| m.manifest.training.data_to_ms).max().unwrap_or(0);
    let timed = data.time_ms.iter().any(|t| *t > 0);
    let rows: Vec<usize> = if after_ms > 0 && timed {
        (0..data.len()).filter(|i| data.time_ms[*i] > after_ms).collect()
    } else {
        (0..data.len()).collect()
    };
    CommonRows { left_out: data.len() - rows.len(), rows, after_ms }
}

/// Loads `spec` (`name` for the newest version, or `name/version`) from `models_dir`.
pub fn load_model(models_dir: &Path, spec: &str) -> Result<ModelArtifact, ModelError> {
    let (name, version) = match spec.split_once('/') {
        Some((n, v)) => (n.to_owned(), v.to_owned()),
        None => (spec.to_owned(), registry_newest(&models_dir.join(spec))?),
    };
    if !fitrank::model::is_valid_version(&name) || !fitrank::model::is_valid_version(&version) {
        return Err(ModelError::BadName(spec.to_owned()));
    }
    ModelArtifact::load(&models_dir.join(name).join(version))
}

fn head_report(p: &[f64], y: &[bool]) -> HeadReport {
    let calibration = metrics::calibration(p, y, 10);
    HeadReport {
        auc: metrics::auc(p, y),
        logloss: metrics::log_loss(p, y),
        ece: metrics::expected_calibration_error(&calibration),
        base_rate: y.iter().filter(|v| **v).count() as f64 / y.len().max(1) as f64,
        mean_predicted: p.iter().sum::<f64>() / p.len().max(1) as f64,
        calibration,
    }
}

/// Mean NDCG@k over groups that have a positive label.
fn mean_ndcg(groups: &[Vec<usize>], scores: &[f64], labels: &[bool], k: usize) -> (Option<f64>, usize) {
    let mut values = Vec::new();
    for g in groups {
        let s: Vec<f64> = g.iter().map(|&i| scores[i]).collect();
        let gains: Vec<f64> = g.iter().map(|&i| f64::from(u8::from(labels[i]))).collect();
        if let Some(v) = metrics::ndcg_at_k(&s, &gains, k) {
            values.push(v);
        }
    }
    let n = values.len();
    ((n > 0).then(|| values.iter().sum::<f64>() / n as f64), n)
}

/// Evaluates `models` on `data` (rows of `table`, same order).
pub fn evaluate(
    table: &Table,
    data: &Dataset,
    models: &[ModelArtifact],
    policy: &Policy,
    k: usize,
) -> Result<EvaluationReport, EvaluateError> {
    let mut groups: Vec<Vec<usize>> = Vec::new();
    if table.has("ranking_id") {
        let mut index: HashMap<String, usize> = HashMap::new();
        for row in 0..table.rows() {
            let id = table.text("ranking_id", row)?;
            let g = *index.entry(id).or_insert_with(|| {
                groups.push(Vec::new());
                groups.len() - 1
            });
            groups[g].push(row);
        }
    }
    let engaged = data.engaged.as_slice().expect("contiguous");
    let purchased = data.purchased.as_slice().expect("contiguous");
    let (mut served_purchase, mut served_engage) = ((None, 0), (None, 0));
    if table.has("position") && !groups.is_empty() {
        let order: Vec<f64> = (0..table.rows()).map(|r| -table.f64("position", r).unwrap_or(0.0)).collect();
        served_purchase = mean_ndcg(&groups, &order, purchased, k);
        served_engage = mean_ndcg(&groups, &order, engaged, k);
    }
    let mut reports = Vec::new();
    for model in models {
        let pe = fit::predict(&model.heads.engage, data.x.view(), &data.ids);
        let pp = fit::predict(&model.heads.purchase, data.x.view(), &data.ids);
        let scores: Vec<f64> = (0..data.len())
            .map(|i| {
                let fit = data.x[[i, scalar::FIT_OVERALL]] as f32;
                let credit = data.x[[i, scalar::TARGETING_CREDIT]] as f32;
                f64::from(policy.score(pe[i] as f32, pp[i] as f32, fit, credit))
            })
            .collect();
        let (off_policy, off_policy_slate) = if table.has("position") && table.has("propensity") && !groups.is_empty() {
            // The reward model reads the serving model's probabilities when the log has them.
            let served_p = table.has("p_purchase");
            let mut rankings = Vec::with_capacity(groups.len());
            for g in &groups {
                let mut items = Vec::with_capacity(g.len());
                for &i in g {
                    items.push(offpolicy::LoggedItem {
                        position: table.f64("position", i)? as u32,
                        propensity: table.f64("propensity", i)?,
                        reward: f64::from(u8::from(purchased[i])),
                        candidate_score: scores[i],
                        reward_p_purchase: if served_p { table.f64("p_purchase", i)? } else { pp[i] },
                    });
                }
                rankings.push(items);
            }
            // The reward models read only the logged items: one cross-fitted set for both estimates.
            let models = offpolicy::RewardModels::fit(&rankings);
            (offpolicy::top_slot(&rankings, &models), offpolicy::slate(&rankings, k, &models))
        } else {
            (None, None)
        };
        let (ndcg_purchase, n_p) = mean_ndcg(&groups, &scores, purchased, k);
        let (ndcg_engage, n_e) = mean_ndcg(&groups, &scores, engaged, k);
        served_purchase.1 = n_p;
        served_engage.1 = n_e;
        reports.push(ModelReport {
            model: model.id(),
            engage: head_report(&pe, engaged),
            purchase: head_report(&pp, purchased),
            ndcg_purchase,
            ndcg_engage,
            off_policy,
            off_policy_slate,
        });
    }
    Ok(EvaluationReport {
        rows: data.len(),
        k,
        requests_with_purchase: served_purchase.1,
        requests_with_engagement: served_engage.1,
        served_ndcg_purchase: served_purchase.0,
        served_ndcg_engage: served_engage.0,
        models: reports,
    })
}

/// Writes `roc_<head>.svg` and `calibration_<head>.svg` into `dir`; returns the files.
pub fn write_plots(dir: &Path, data: &Dataset, models: &[ModelArtifact]) -> Result<Vec<PathBuf>, EvaluateError> {
    std::fs::create_dir_all(dir).map_err(|e| EvaluateError::Plot { path: dir.to_owned(), reason: e.to_string() })?;
    let mut files = Vec::new();
    for head in ["engage", "purchase"] {
        let labels = if head == "engage" { &data.engaged } else { &data.purchased };
        let labels = labels.as_slice().expect("contiguous");
        let mut roc = Vec::new();
        let mut reliability = Vec::new();
        for model in models {
            let h = if head == "engage" { &model.heads.engage } else { &model.heads.purchase };
            let p = fit::predict(h, data.x.view(), &data.ids);
            roc.push((model.id(), metrics::roc_points(&p, labels)));
            let bins = metrics::calibration(&p, labels, 10);
            reliability.push((
                model.id(),
                bins.iter().filter(|b| b.count > 0).map(|b| (b.mean_predicted, b.observed_rate)).collect::<Vec<_>>(),
            ));
        }
        let roc_path = dir.join(format!("roc_{head}.svg"));
        plots::curves(&roc_path, &format!("ROC, {head} head"), "false positive rate", "true positive rate", &roc)?;
        let cal_path = dir.join(format!("calibration_{head}.svg"));
        plots::curves(
            &cal_path,
            &format!("Reliability, {head} head"),
            "mean predicted",
            "observed rate",
            &reliability,
        )?;
        files.extend([roc_path, cal_path]);
    }
    Ok(files)
}

fn opt(v: Option<f64>) -> String {
    v.map_or("n/a".to_owned(), |v| format!("{v:.4}"))
}

/// A side-by-side table of `report`.
pub fn render_table(report: &EvaluationReport) -> String {
    let mut out = format!("{} rows; NDCG@{} over requests with a positive\n\n", report.rows, report.k);
    out.push_str(&format!("{:<28}", "metric"));
    for m in &report.models {
        out.push_str(&format!(" {:>28}", m.model));
    }
    out.push('\n');
    type Cell = fn(&ModelReport) -> String;
    let rows: [(&str, Cell); 9] = [
        ("purchase AUC", |m| format!("{:.4}", m.purchase.auc)),
        ("purchase log loss", |m| format!("{:.5}", m.purchase.logloss)),
        ("purchase ECE", |m| format!("{:.5}", m.purchase.ece)),
        ("purchase mean p / rate", |m| format!("{:.4} / {:.4}", m.purchase.mean_predicted, m.purchase.base_rate)),
        ("engage AUC", |m| format!("{:.4}", m.engage.auc)),
        ("engage log loss", |m| format!("{:.5}", m.engage.logloss)),
        ("engage ECE", |m| format!("{:.5}", m.engage.ece)),
        ("NDCG purchase", |m| opt(m.ndcg_purchase)),
        ("NDCG engage", |m| opt(m.ndcg_engage)),
    ];
    for (name, value) in rows {
        out.push_str(&format!("{name:<28}"));
        for m in &report.models {
            out.push_str(&format!(" {:>28}", value(m)));
        }
        out.push('\n');
    }
    for m in &report.models {
        if let Some(e) = &m.off_policy {
            out.push_str(&format!(
                "{}: top-slot purchase rate, IPS {:.4} [{:.4}, {:.4}], SNIPS {:.4} [{:.4}, {:.4}], \
                 doubly robust {:.4} [{:.4}, {:.4}], direct method {:.4} ({} of {} rankings agree with the \
                 logged top, effective sample size {:.0}; logged policy {:.4})\n",
                m.model,
                e.ips,
                e.ips_ci.0,
                e.ips_ci.1,
                e.snips,
                e.snips_ci.0,
                e.snips_ci.1,
                e.doubly_robust,
                e.doubly_robust_ci.0,
                e.doubly_robust_ci.1,
                e.direct_method,
                e.matched,
                e.rankings,
                e.effective_sample_size,
                e.logged
            ));
            if let Some(w) = &e.warning {
                out.push_str(&format!("  warning: {w}\n"));
            }
        }
        if let Some(e) = &m.off_policy_slate {
            out.push_str(&format!(
                "{}: purchases per ranking in the first {} positions, IPS {:.4} [{:.4}, {:.4}], SNIPS {:.4} \
                 [{:.4}, {:.4}], doubly robust {:.4} [{:.4}, {:.4}] (logged policy {:.4}; rankings matching the \
                 candidate's prefix per position: {})\n",
                m.model,
                e.depth,
                e.ips,
                e.ips_ci.0,
                e.ips_ci.1,
                e.snips,
                e.snips_ci.0,
                e.snips_ci.1,
                e.doubly_robust,
                e.doubly_robust_ci.0,
                e.doubly_robust_ci.1,
                e.logged,
                e.positions.iter().map(|p| p.1.to_string()).collect::<Vec<_>>().join(", ")
            ));
            if let Some(w) = &e.warning {
                out.push_str(&format!("  warning: {w}\n"));
            }
        }
    }
    out.push_str(&format!(
        "\nserved order: NDCG purchase {} ({} requests), NDCG engage {} ({} requests)\n",
        opt(report.served_ndcg_purchase),
        report.requests_with_purchase,
        opt(report.served_ndcg_engage),
        report.requests_with_engagement
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped_trained_until(to_ms: i64) -> ModelArtifact {
        let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models");
        let mut model = load_model(&models, "default").unwrap();
        model.manifest.training.data_to_ms = to_ms;
        model
    }

    #[test]
    fn versions_are_scored_on_the_rows_after_all_their_training_data() {
        let mut data = Dataset::with_rows(6);
        data.time_ms = vec![100, 200, 300, 400, 500, 600];
        let (early, late) = (shipped_trained_until(250), shipped_trained_until(450));
        let common = common_later_rows(&data, &[early.clone(), late.clone()]);
        assert_eq!(common, CommonRows { rows: vec![4, 5], after_ms: 450, left_out: 4 });
        assert_eq!(common_later_rows(&data, &[early]).rows, vec![2, 3, 4, 5]);
        // Untimed data, or untimed training data, cannot be split: every row stays.
        assert_eq!(common_later_rows(&Dataset::with_rows(3), &[late]).rows, vec![0, 1, 2]);
        assert_eq!(common_later_rows(&data, &[shipped_trained_until(0)]).left_out, 0);
    }
}
