//! `ionctl simulate` as an operator runs it: the shipped trace replays to the same bytes
//! twice, with charts; docs/simulate.md shows the table that trace gives today; bad input is
//! refused with its line number and exit 2.

use std::path::Path;
use std::process::{Command, Output};

const EXAMPLE: &str = "docs/traces/example.jsonl";

fn simulate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ionctl"))
        .arg("simulate")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("running ionctl simulate")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn the_shipped_trace_replays_to_the_same_report_and_charts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let html = dir.path().join("day.html");
    let svg = dir.path().join("day.svg");
    let html_arg = html.to_string_lossy().into_owned();
    let svg_arg = svg.to_string_lossy().into_owned();
    let first = simulate(&[
        "--trace", EXAMPLE, "-o", "json", "--html", &html_arg, "--svg", &svg_arg,
    ]);
    assert!(first.status.success(), "{}", text(&first.stderr));
    let second = simulate(&["--trace", EXAMPLE, "-o", "json"]);
    assert!(second.status.success(), "{}", text(&second.stderr));
    assert_eq!(
        first.stdout, second.stdout,
        "two replays of one trace differ"
    );

    let report: serde_json::Value = serde_json::from_slice(&first.stdout).expect("JSON report");
    assert_eq!(report["schema"], "ionctl.simulate/v1");
    let bound = report["trace"]["fluid_bound_node_hours"]
        .as_f64()
        .expect("the fluid bound");
    assert!(bound > 0.0);
    let policies = report["policies"].as_array().expect("policies");
    let names: Vec<&str> = policies
        .iter()
        .map(|p| p["policy"].as_str().expect("a name"))
        .collect();
    assert_eq!(
        names,
        [
            "ours",
            "seed",
            "livekit-lowest",
            "livekit-twochoice",
            "livekit-hpa",
            "jitsi",
            "gce-mig"
        ]
    );
    let ours = &policies[0];
    // Ours places every session of the trace and never overloads a node.
    assert_eq!(ours["placed"], report["trace"]["sessions"]);
    assert_eq!(ours["overloaded"], 0);
    assert!(ours["ratio_to_bound"].as_f64().expect("ratio") >= 1.0);

    let page = std::fs::read_to_string(&html).expect("the HTML page");
    assert!(page.contains("<svg"), "no chart in the page");
    for name in names {
        assert!(page.contains(name), "{name} missing from the page");
    }
    let chart = std::fs::read_to_string(&svg).expect("the SVG");
    assert!(chart.starts_with("<svg") || chart.starts_with("<?xml"));
}

#[test]
fn docs_show_the_table_the_shipped_trace_gives() {
    let out = simulate(&["--trace", EXAMPLE]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    let docs =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/simulate.md"))
            .expect("docs/simulate.md");
    for line in table.lines().filter(|l| !l.trim().is_empty()) {
        assert!(
            docs.contains(line.trim_end()),
            "docs/simulate.md does not show this line of `ionctl simulate --trace {EXAMPLE}`; \
             paste the new output there:\n{line}"
        );
    }
}

#[test]
fn a_bad_trace_line_is_refused_with_its_number() {
    let dir = tempfile::tempdir().expect("temp dir");
    let trace = dir.path().join("bad.jsonl");
    std::fs::write(
        &trace,
        "# two good sessions, then one of a class nobody knows\n\
         {\"t\": 0, \"sid\": \"a\", \"class\": \"meeting\", \"size\": 8, \"duration\": 600}\n\
         {\"t\": 5, \"sid\": \"b\", \"class\": \"webinar\", \"size\": 8, \"duration\": 600}\n",
    )
    .expect("write the trace");
    let out = simulate(&["--trace", &trace.to_string_lossy()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("line 3: unknown class \"webinar\""),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "a refused trace printed a report");
}

#[test]
fn an_unknown_policy_or_machine_type_is_a_usage_error() {
    let out = simulate(&["--sessions", "10", "--policies", "ours,kubernetes"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("unknown policy \"kubernetes\"; known: ours, seed"),
        "{}",
        text(&out.stderr)
    );
    let out = simulate(&["--sessions", "10", "--machine-type", "n9-huge"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("unknown machine type \"n9-huge\""),
        "{}",
        text(&out.stderr)
    );
}
