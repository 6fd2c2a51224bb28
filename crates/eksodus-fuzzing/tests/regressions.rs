//! Every input a fuzzer ever made a target panic on (`regressions/<target>/`) is answered now; and every seed
//! input too.

#[test]
fn every_regression_and_seed_input_is_answered_without_a_panic() {
    let mut checked = 0;
    for t in eksodus_fuzzing::TARGETS {
        for (path, input) in eksodus_fuzzing::regressions(t) {
            assert!(!eksodus_fuzzing::panics(t.run, &input), "{}: {} panics again", t.name, path.display());
            checked += 1;
        }
        for input in eksodus_fuzzing::seeds(t) {
            assert!(!eksodus_fuzzing::panics(t.run, &input), "{}: a seed input panics", t.name);
            checked += 1;
        }
    }
    assert!(checked > 100, "{checked} inputs");
}

#[test]
fn a_short_stable_fuzz_of_every_target_finds_nothing() {
    for t in eksodus_fuzzing::TARGETS {
        let o = eksodus_fuzzing::run(t, std::time::Duration::from_millis(300), 1);
        assert!(o.executions > 0);
        assert!(o.crashes.is_empty(), "{}: crashes saved to {:?}", t.name, o.crashes);
    }
}
