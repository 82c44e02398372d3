//! `prioritize evaluate`: a model's metrics on any data folder with outcomes,
//! optionally beside another model's.

use std::path::Path;

use anyhow::Result;

use crate::contract::DataSet;
use crate::model::design::StrategyInput;
use crate::model::metrics::Metrics;
use crate::model::train::labelled;
use crate::model::{card, folder, Model};

/// Metrics of `model` (and of `against`) on every outcomes row of `data`, as Markdown.
pub fn run(data: &Path, model: &Path, against: Option<&Path>) -> Result<String> {
    let bar = super::spinner(&format!("loading {}", data.display()));
    let data_set = DataSet::load(data)?;
    let live = folder::load(model)?;
    let other = against.map(folder::load).transpose()?;
    bar.set_message("computing features");
    let labelled = labelled(&data_set)?;
    let strategies: Vec<&str> = labelled.strategies.iter().map(|s| s.as_str()).collect();
    let measure = |m: &Model| -> Result<(Metrics, Option<Metrics>)> {
        let p = m.p_pay(&labelled.features)?;
        let propensity = Metrics::of(&p, &labelled.paid, Some(&strategies));
        let response = match &m.response {
            Some(r) => {
                let p = r.probabilities(
                    &labelled.features,
                    StrategyInput::PerRow(&labelled.strategies),
                )?;
                Some(Metrics::of(&p, &labelled.paid, Some(&strategies)))
            }
            None => None,
        };
        Ok((propensity, response))
    };
    bar.set_message("scoring");
    let (propensity, response) = measure(&live)?;
    let compared = other.as_ref().map(measure).transpose()?;
    bar.finish_and_clear();
    let name = &live.meta.version;
    let mut out = format!(
        "# Model {name} on {} ({} rows)\n\nNote: rows the model was trained on score better than new data; evaluate on a folder it has not seen.\n\n## Payment propensity\n\n{}",
        data.display(),
        labelled.paid.len(),
        card::metrics_tables(&propensity)
    );
    if let Some(response) = &response {
        out.push_str(&format!(
            "\n## Strategy response (P(paid | logged strategy))\n\n{}",
            card::metrics_tables(response)
        ));
    }
    if let (Some(other), Some((other_propensity, other_response))) = (&other, &compared) {
        let other_name = &other.meta.version;
        out.push_str(&format!(
            "\n## Against {other_name}: payment propensity\n\n{}",
            card::side_by_side(name, &propensity, other_name, other_propensity)
        ));
        if let (Some(a), Some(b)) = (&response, other_response) {
            out.push_str(&format!(
                "\n## Against {other_name}: strategy response\n\n{}",
                card::side_by_side(name, a, other_name, b)
            ));
        }
    }
    Ok(out)
}
