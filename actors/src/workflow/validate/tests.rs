use super::*;
use crate::workflow::plan::StepSpec;
use proptest::prelude::*;
use serde_json::json;

fn fleet() -> Fleet {
    Fleet { agents: vec!["genesis.a".into(), "genesis.b".into(), "genesis.spec".into()], depth: Default::default() }
}

fn step(id: &str, needs: &[&str]) -> StepSpec {
    StepSpec {
        id: id.into(),
        agent: Some("genesis.a".into()),
        capability: None,
        input: json!({}),
        needs: needs.iter().map(|s| s.to_string()).collect(),
        budget_cents: None,
        optional: false,
        compensate: None,
    }
}

fn plan(steps: Vec<StepSpec>) -> Plan {
    Plan { workflow_id: None, business_id: None, tenant_id: None, budget_cents: None, deadline: None, steps }
}

fn check(p: &Plan) -> Result<(), PlanError> {
    validate(p, &Limits::default(), &[], &fleet(), None)
}

#[test]
fn each_rule_names_its_step() {
    assert_eq!(check(&plan(vec![])).expect_err("empty").rule, rule::EMPTY);
    let e = check(&plan(vec![step("a", &[]), step("a", &[])])).expect_err("dup");
    assert_eq!((e.rule, e.step.as_deref()), (rule::DUPLICATE_ID, Some("a")));
    let e = check(&plan(vec![step("a", &["zz"])])).expect_err("need");
    assert_eq!((e.rule, e.step.as_deref()), (rule::UNKNOWN_NEED, Some("a")));
    assert!(e.to_string().starts_with("step `a`: unknown_need"), "{e}");
    let e = check(&plan(vec![step("a", &["b"]), step("b", &["a"]), step("c", &[])])).expect_err("cycle");
    assert_eq!(e.rule, rule::CYCLE);
    let mut s = step("x", &[]);
    s.agent = Some("genesis.nope".into());
    assert_eq!(check(&plan(vec![s.clone()])).expect_err("agent").rule, rule::UNKNOWN_AGENT);
    s.agent = None;
    s.capability = Some("spec".into());
    check(&plan(vec![s.clone()])).expect("routes by name");
    s.capability = Some("juggling".into());
    assert_eq!(check(&plan(vec![s.clone()])).expect_err("cap").rule, rule::UNROUTABLE);
    s.agent = Some("genesis.a".into());
    assert_eq!(check(&plan(vec![s])).expect_err("both").rule, rule::TARGET);
    let mut c = step("c", &[]);
    c.compensate = Some(crate::workflow::plan::Compensation { agent: "genesis.gone".into(), input: json!({}) });
    assert_eq!(check(&plan(vec![c])).expect_err("comp").rule, rule::UNKNOWN_AGENT);
    assert_eq!(check(&plan(vec![step("a b", &[])])).expect_err("id").rule, rule::INVALID_ID);
}

#[test]
fn limits_and_budgets() {
    let chain: Vec<StepSpec> = (0..5)
        .map(|i| {
            step(
                &format!("s{i}"),
                &if i == 0 { vec![] } else { vec![format!("s{}", i - 1)] }
                    .iter()
                    .map(String::as_str)
                    .collect::<Vec<_>>(),
            )
        })
        .collect();
    let tight = Limits { max_steps: 100, max_depth: 4 };
    let e = validate(&plan(chain.clone()), &tight, &[], &fleet(), None).expect_err("deep");
    assert_eq!((e.rule, e.step.as_deref()), (rule::TOO_DEEP, Some("s4")));
    let few = Limits { max_steps: 4, max_depth: 10 };
    assert_eq!(validate(&plan(chain), &few, &[], &fleet(), None).expect_err("many").rule, rule::TOO_MANY_STEPS);

    let mut a = step("a", &[]);
    a.budget_cents = Some(600);
    let mut b = step("b", &[]);
    b.budget_cents = Some(500);
    let mut p = plan(vec![a, b]);
    p.budget_cents = Some(1000);
    let e = check(&p).expect_err("steps over the workflow");
    assert_eq!((e.rule, e.step), (rule::OVER_BUDGET, None));
    p.budget_cents = Some(1100);
    check(&p).expect("fits");
    let e = validate(&p, &Limits::default(), &[], &fleet(), Some(1099)).expect_err("business has less");
    assert!(e.message.contains("1099"), "{e}");
    validate(&p, &Limits::default(), &[], &fleet(), Some(1100)).expect("exactly fits");
    p.budget_cents = Some(550);
    assert_eq!(check(&p).expect_err("one step over").step.as_deref(), Some("a"));
}

/// A random DAG: step i needs some of the steps before it (so it is acyclic by construction).
fn dag() -> impl Strategy<Value = Vec<Vec<usize>>> {
    (1..25usize)
        .prop_flat_map(|n| (0..n).map(|i| proptest::collection::vec(0..i.max(1), 0..3.min(i + 1))).collect::<Vec<_>>())
}

fn to_plan(needs: &[Vec<usize>]) -> Plan {
    plan(
        needs
            .iter()
            .enumerate()
            .map(|(i, ns)| {
                let ns: Vec<String> = ns.iter().filter(|n| **n < i).map(|n| format!("s{n}")).collect();
                step(&format!("s{i}"), &ns.iter().map(String::as_str).collect::<Vec<_>>())
            })
            .collect(),
    )
}

/// Longest chain ending at each step, the slow and obvious way.
fn brute_depth(needs: &[Vec<usize>], i: usize) -> usize {
    1 + needs[i].iter().filter(|n| **n < i).map(|n| brute_depth(needs, *n)).max().unwrap_or(0)
}

proptest! {
    #[test]
    fn acyclic_plans_pass_and_depth_is_the_longest_chain(needs in dag()) {
        let p = to_plan(&needs);
        prop_assert!(check(&p).is_ok(), "{:?}", check(&p));
        let deepest = (0..needs.len()).map(|i| brute_depth(&needs, i)).max().unwrap_or(0);
        let at = Limits { max_steps: 100, max_depth: deepest };
        prop_assert!(validate(&p, &at, &[], &fleet(), None).is_ok());
        let below = Limits { max_steps: 100, max_depth: deepest - 1 };
        prop_assert_eq!(validate(&p, &below, &[], &fleet(), None).map_err(|e| e.rule), Err(rule::TOO_DEEP));
    }

    /// A back edge from an earlier step to a later one that (transitively) needs it closes a cycle.
    #[test]
    fn a_back_edge_is_a_cycle(needs in dag(), pick in any::<prop::sample::Index>()) {
        let mut p = to_plan(&needs);
        let edges: Vec<(usize, usize)> = needs.iter().enumerate()
            .flat_map(|(i, ns)| ns.iter().filter(move |n| **n < i).map(move |n| (i, *n))).collect();
        prop_assume!(!edges.is_empty());
        let (later, earlier) = edges[pick.index(edges.len())];
        p.steps[earlier].needs.push(format!("s{later}"));
        prop_assert_eq!(check(&p).map_err(|e| e.rule), Err(rule::CYCLE));
    }

    /// Renaming a need to a missing step is always caught, and names the step that has it.
    #[test]
    fn a_missing_need_is_caught(needs in dag(), pick in any::<prop::sample::Index>()) {
        let mut p = to_plan(&needs);
        let i = pick.index(p.steps.len());
        p.steps[i].needs.push("missing".into());
        let e = check(&p).expect_err("missing need");
        prop_assert_eq!((e.rule, e.step), (rule::UNKNOWN_NEED, Some(format!("s{i}"))));
    }
}
