//! Rendering: plans (terraform-like), layouts (tables), and progress from engine events (indicatif).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use eksodus::core::engine::ApplyReport;
use eksodus::core::events::{Event, EventSink};
use eksodus::core::plan::{Action, Plan, Step};
use eksodus::net::layout::Layout;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;

fn short(v: &Option<Value>) -> String {
    match v {
        None => "(none)".into(),
        Some(Value::String(s)) => format!("{s:?}"),
        Some(Value::Object(m)) if m.len() > 3 => format!("{{{} entries}}", m.len()),
        Some(v) => v.to_string(),
    }
}

fn step_lines(out: &mut String, s: &Step) {
    let _ = writeln!(
        out,
        "  {} {:<34} {}{}",
        s.action.symbol(),
        s.id,
        s.kind,
        s.physical_id.as_ref().map(|p| format!(" ({p})")).unwrap_or_default()
    );
    for r in &s.reasons {
        if s.action != Action::Create {
            let _ = writeln!(out, "      # {r}");
        }
    }
    for c in &s.changes {
        // a new resource's tags are shown by the summary, and an unset property (null) is not shown at all
        if s.action == Action::Create && (c.field == "tags" || c.to == Some(Value::Null)) {
            continue;
        }
        let mark = if c.forces_replacement { "  # forces replacement" } else { "" };
        match s.action {
            Action::Create => {
                let _ = writeln!(out, "      {:<16} = {}", c.field, short(&c.to));
            }
            _ => {
                let _ = writeln!(out, "      {:<16} : {} -> {}{mark}", c.field, short(&c.from), short(&c.to));
            }
        }
    }
}

/// The plan as a terraform user expects to read it.
pub fn plan(p: &Plan) -> String {
    let mut out = String::new();
    if p.is_empty() {
        let _ = writeln!(out, "No changes. {} resource(s) are as the spec wants.", p.steps.len());
        return out;
    }
    let order = [Action::Delete, Action::Replace, Action::Update, Action::Create];
    for a in order {
        for s in p.steps.iter().filter(|s| s.action == a) {
            step_lines(&mut out, s);
        }
    }
    let _ = writeln!(out, "\nPlan: {}.", p.summary());
    out
}

/// The plan as JSON for `--json`.
pub fn plan_json(p: &Plan) -> Value {
    serde_json::json!({
        "changes": !p.is_empty(),
        "summary": p.summary(),
        "critical_path_calls": p.critical_path_calls().ok(),
        "steps": p.changes().collect::<Vec<_>>(),
        "unchanged": p.steps.iter().filter(|s| s.action == Action::NoOp).map(|s| &s.id).collect::<Vec<_>>(),
    })
}

/// The subnet layout as a table.
pub fn layout(l: &Layout) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "VPC {}{}", l.vpc, l.secondary.map(|s| format!(" + secondary {s}")).unwrap_or_default());
    let dual = l.subnets.iter().any(|s| s.ipv6_index.is_some());
    let _ = write!(out, "{:<8} {:<14} {:<18} {:>8} {:>10} {:>8}", "TIER", "ZONE", "CIDR", "USABLE", "POD IPS", "NODES");
    let _ = writeln!(out, "{}", if dual { format!(" {:>5}", "IPV6") } else { String::new() });
    for s in &l.subnets {
        let _ = write!(
            out,
            "{:<8} {:<14} {:<18} {:>8} {:>10} {:>8}",
            s.tier.as_str(),
            s.az,
            s.cidr.to_string(),
            s.usable,
            s.pod_ips.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
            s.node_capacity.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
        );
        let _ = writeln!(out, "{}", s.ipv6_index.map(|i| format!(" {:>5}", format!("#{i}"))).unwrap_or_default());
    }
    let _ = writeln!(out, "unallocated in the VPC CIDR: {} addresses", l.unallocated);
    if dual {
        let _ = writeln!(out, "dual-stack: subnet #n gets the n-th /64 of the VPC's IPv6 /56 from Amazon's pool");
    }
    if let (Some(ppn), Some(f)) = (l.pods_per_node, l.node_footprint) {
        let _ = writeln!(
            out,
            "per node: {ppn} pods; takes {} node-subnet address(es), {} pod-subnet address(es), {} /28 prefix(es) with warm pools",
            f.node_subnet_ips, f.pod_subnet_ips, f.prefixes
        );
    }
    out
}

/// Engine events as progress bars on a terminal, or as log lines on stderr elsewhere.
pub struct Progress {
    mp: MultiProgress,
    overall: ProgressBar,
    steps: Mutex<HashMap<String, ProgressBar>>,
    tty: bool,
}

impl Progress {
    /// A progress display; `quiet` hides it (for `--json`).
    pub fn new(quiet: bool) -> Arc<Progress> {
        let tty = std::io::stderr().is_terminal() && !quiet;
        let mp = MultiProgress::with_draw_target(if tty {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        });
        let overall = mp.add(ProgressBar::new(0));
        overall.set_style(
            ProgressStyle::with_template("{prefix:>8} [{bar:30}] {pos}/{len} {msg} ({elapsed})")
                .expect("template")
                .progress_chars("=> "),
        );
        Arc::new(Progress { mp, overall, steps: Mutex::default(), tty: tty || quiet })
    }

    /// An event sink updating this display.
    pub fn sink(self: &Arc<Self>) -> EventSink {
        let me = self.clone();
        EventSink::new(move |e| me.on(e))
    }

    fn line(&self, s: String) {
        if self.tty {
            if !self.overall.is_hidden() {
                self.mp.suspend(|| eprintln!("{s}"));
            }
        } else {
            eprintln!("{s}");
        }
    }

    fn on(&self, e: &Event) {
        match e {
            Event::PhaseStarted { phase, total } => {
                self.overall.reset();
                self.overall.set_length(*total as u64);
                self.overall.set_prefix(phase.clone());
                if !self.tty {
                    eprintln!("{phase}: {total} operation(s)");
                }
            }
            Event::PhaseFinished { phase, elapsed_ms } => {
                self.overall.finish_with_message(format!("{phase} done in {:.1}s", *elapsed_ms as f64 / 1000.0));
            }
            Event::StepStarted { id, action } => {
                let pb = self.mp.add(ProgressBar::new_spinner());
                pb.set_style(ProgressStyle::with_template("  {spinner} {msg} {elapsed}").expect("template"));
                pb.enable_steady_tick(Duration::from_millis(120));
                pb.set_message(format!("{action} {id}"));
                self.steps.lock().expect("steps").insert(id.clone(), pb);
            }
            Event::StepWaiting { id, status, .. } => {
                if let Some(pb) = self.steps.lock().expect("steps").get(id) {
                    pb.set_message(format!("{id}: waiting ({status})"));
                }
            }
            Event::StepRetrying { id, attempt, delay_ms, error } => {
                self.line(format!("  retry {id} (attempt {attempt} failed, again in {delay_ms} ms): {error}"));
            }
            Event::StepFinished { id, action, physical_id, elapsed_ms } => {
                if let Some(pb) = self.steps.lock().expect("steps").remove(id) {
                    pb.finish_and_clear();
                    self.mp.remove(&pb);
                }
                self.overall.inc(1);
                self.line(format!(
                    "  {} {id} {}({} ms)",
                    action.symbol(),
                    physical_id.as_ref().map(|p| format!("{p} ")).unwrap_or_default(),
                    elapsed_ms
                ));
            }
            Event::StepFailed { id, error } => {
                if let Some(pb) = self.steps.lock().expect("steps").remove(id) {
                    pb.finish_and_clear();
                    self.mp.remove(&pb);
                }
                self.overall.inc(1);
                self.line(format!("  ! {id} failed: {error}"));
            }
            Event::StepSkipped { id, because } => {
                self.overall.inc(1);
                self.line(format!("  ! {id} skipped: {because} failed"));
            }
            Event::Leftover { resource, reason } => self.line(format!("  leftover {resource}: {reason}")),
            Event::Note { message } => self.line(format!("  note: {message}")),
            Event::Progress { phase, done, total, item, outcome } => {
                if let Some(t) = total {
                    self.overall.set_length(*t);
                }
                self.overall.set_prefix(phase.clone());
                self.overall.set_position(*done);
                // what needs a look gets a line of its own; the rest only moves the bar
                if let (Some(item), Some(o @ ("failed" | "held" | "missing" | "different" | "unreadable"))) =
                    (item, outcome.as_deref())
                {
                    self.line(format!("  ! {phase} {item}: {o}"));
                }
                if !self.tty && total.is_some_and(|t| t == *done) {
                    eprintln!("{phase}: {done} done");
                }
            }
            _ => {}
        }
    }
}

/// A one-paragraph account of an apply.
pub fn report(r: &ApplyReport) -> String {
    let mut out = String::new();
    let failed: Vec<_> = r.failures().collect();
    let _ =
        writeln!(out, "{} operation(s) in {:.1}s, {} failed", r.ops.len(), r.elapsed_ms as f64 / 1000.0, failed.len());
    for (id, e) in failed {
        let _ = writeln!(out, "  failed {id}: {e}");
    }
    for o in &r.ops {
        if let eksodus::core::engine::Outcome::Skipped { because } = &o.outcome {
            let _ = writeln!(out, "  skipped {} (after {because} failed)", o.id);
        }
    }
    if !r.leftovers.is_empty() {
        let _ = writeln!(out, "  {} leftover note(s), listed above", r.leftovers.len());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dual_stack_layout_shows_each_subnets_64_and_a_new_subnet_hides_what_is_unset() {
        let yaml = "name: a\nregion: us-east-1\nnetwork: {cidr: 10.0.0.0/16, azs: 2, ipv6: true}";
        let spec = eksodus::EnvironmentSpec::from_yaml(yaml).unwrap();
        let table = layout(&eksodus::net::layout::plan(&spec).unwrap());
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[1].ends_with("IPV6"), "{table}");
        assert!(lines[2].starts_with("public") && lines[2].ends_with("#0"), "{table}");
        assert!(lines[4].starts_with("private") && lines[4].ends_with("#64"), "{table}");
        assert!(table.contains("dual-stack"), "{table}");
        let v4 = eksodus::EnvironmentSpec::from_yaml(&yaml.replace(", ipv6: true", "")).unwrap();
        let table = layout(&eksodus::net::layout::plan(&v4).unwrap());
        assert!(!table.contains("IPV6") && !table.contains('#'), "{table}");

        let mut props = serde_json::Map::new();
        props.insert("cidr".into(), "10.0.0.0/24".into());
        props.insert("ipv6_index".into(), Value::Null);
        let d = eksodus::core::plan::Desired {
            key: "subnet/public/us-east-1a".into(),
            kind: "subnet".into(),
            props,
            immutable: vec![],
            depends_on: vec![],
            cost: eksodus::core::plan::Cost::new(1, 1, 1),
        };
        let text = plan(&eksodus::core::plan::diff(&[d], &[]));
        assert!(text.contains("cidr") && !text.contains("ipv6_index"), "{text}");
    }
}
