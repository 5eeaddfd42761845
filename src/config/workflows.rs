//! `[workflows]` of `genesis.toml` → [`WorkflowSettings`]: plan limits, the sweeper's interval, how
//! long ended workflows are kept, the events stream's bound, and the routing rules
//! (`[[workflows.routes]]`), whose agents are checked against the roster ([`check_routes`]).

use super::checks::{duration, int, quote};
use super::issues::Issues;
use genesis_actors::workflow::route::RouteRule;
use genesis_actors::workflow::validate::Limits;
use genesis_actors::workflow::WorkflowSettings;
use serde::Deserialize;
use std::collections::BTreeSet;

/// `[workflows]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WorkflowsFile {
    pub max_steps: Option<i64>,
    pub max_depth: Option<i64>,
    pub sweep_interval: Option<String>,
    pub retention: Option<String>,
    pub events_max_len: Option<i64>,
    /// The agent asked to write a plan when a start request names neither a template nor a plan.
    pub planner: Option<String>,
    /// Where the templates are (relative to `genesis.toml`'s directory; default `workflows`).
    pub templates_dir: Option<String>,
    #[serde(default)]
    pub routes: Vec<RouteFile>,
}

/// One `[[workflows.routes]]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RouteFile {
    pub capability: Option<String>,
    pub agent: Option<String>,
    pub priority: Option<i64>,
}

/// The most steps a plan may have (a workflow is one document).
const MAX_STEPS: i64 = 10_000;

/// The templates directory as written (`workflows.templates_dir`, default `workflows`).
pub(crate) fn templates_dir(file: &WorkflowsFile) -> String {
    file.templates_dir.clone().filter(|s| !s.trim().is_empty()).unwrap_or_else(|| "workflows".into())
}

pub(crate) fn workflows(file: WorkflowsFile, issues: &mut Issues) -> WorkflowSettings {
    let d = WorkflowSettings::default();
    let limits = Limits {
        max_steps: int(issues, "workflows.max_steps", file.max_steps, d.limits.max_steps, 1..=MAX_STEPS),
        max_depth: int(issues, "workflows.max_depth", file.max_depth, d.limits.max_depth, 1..=MAX_STEPS),
    };
    let mut routes = Vec::new();
    for (i, r) in file.routes.into_iter().enumerate() {
        let at = |k: &str| format!("workflows.routes[{i}].{k}");
        let required = |key: &str, v: Option<String>, issues: &mut Issues| match v.filter(|s| !s.trim().is_empty()) {
            Some(v) => Some(v),
            None => {
                issues.push(at(key), None, format!("is required: the {key} this rule routes"));
                None
            }
        };
        let capability = required("capability", r.capability, issues);
        let agent = required("agent", r.agent, issues);
        let priority = int(issues, &at("priority"), r.priority, 0i32, i64::from(i32::MIN)..=i64::from(i32::MAX));
        if let (Some(capability), Some(agent)) = (capability, agent) {
            routes.push(RouteRule { capability, agent, priority });
        }
    }
    WorkflowSettings {
        limits,
        routes,
        sweep_interval: duration(
            issues,
            "workflows.sweep_interval",
            file.sweep_interval.as_deref(),
            d.sweep_interval,
            true,
        ),
        retention: duration(issues, "workflows.retention", file.retention.as_deref(), d.retention, true),
        events_max_len: int(issues, "workflows.events_max_len", file.events_max_len, d.events_max_len, 1..=i64::MAX),
        templates: d.templates,
        planner: file.planner.filter(|s| !s.trim().is_empty()),
    }
}

/// Every route rule names an agent of the roster (a rule naming another would never route).
pub(crate) fn check_routes(w: &WorkflowSettings, agents: &BTreeSet<String>, issues: &mut Issues) {
    if let Some(p) = &w.planner {
        if !agents.contains(p) {
            issues.push("workflows.planner", Some(quote(p)), "no such agent in the roster");
        }
    }
    for (i, r) in w.routes.iter().enumerate() {
        if !agents.contains(&r.agent) {
            issues.push(format!("workflows.routes[{i}].agent"), Some(quote(&r.agent)), "no such agent in the roster");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::time::Duration;

    fn parts(text: &str) -> Result<super::super::validate::GenesisParts, super::super::ConfigError> {
        super::super::genesis_from_str(Path::new("config/genesis.toml"), text, &|_| None)
    }

    #[test]
    fn the_section_is_read_with_its_routes() {
        let p = parts(
            "[workflows]\nmax_steps = 30\nmax_depth = 6\nsweep_interval = \"500ms\"\nretention = \"2d\"\nevents_max_len = 500\n\
             [[workflows.routes]]\ncapability = \"spec\"\nagent = \"genesis.spec\"\npriority = 5\n\
             [[workflows.routes]]\ncapability = \"spec\"\nagent = \"genesis.spec2\"\n",
        )
        .expect("valid");
        let w = p.settings.workflows;
        assert_eq!(w.limits, Limits { max_steps: 30, max_depth: 6 });
        assert_eq!((w.sweep_interval, w.retention), (Duration::from_millis(500), Duration::from_secs(2 * 86_400)));
        assert_eq!(w.events_max_len, 500);
        assert_eq!(w.routes[0], RouteRule { capability: "spec".into(), agent: "genesis.spec".into(), priority: 5 });
        assert_eq!(w.routes[1].priority, 0);
        assert_eq!(parts("").expect("empty").settings.workflows, WorkflowSettings::default());
    }

    #[test]
    fn every_bad_value_is_named() {
        let e = parts(
            "[workflows]\nmax_steps = 0\nsweep_interval = \"0s\"\nretention = \"soon\"\n[[workflows.routes]]\nagent = \"a\"\n",
        )
        .expect_err("invalid")
        .to_string();
        for want in [
            "workflows.max_steps = 0: must be between 1 and 10000",
            "workflows.sweep_interval = \"0s\": must be longer than 0",
            "workflows.retention = \"soon\": not a duration",
            "workflows.routes[0].capability: is required",
        ] {
            assert!(e.contains(want), "{want} in:\n{e}");
        }
        let mut issues = Issues::new(Path::new("config/genesis.toml"));
        let w = WorkflowSettings {
            routes: vec![RouteRule { capability: "c".into(), agent: "genesis.nope".into(), priority: 0 }],
            ..Default::default()
        };
        check_routes(&w, &["genesis.spec".to_string()].into(), &mut issues);
        let e = issues.finish(()).expect_err("unknown agent").to_string();
        assert!(e.contains("workflows.routes[0].agent = \"genesis.nope\": no such agent in the roster"), "{e}");
    }
}
