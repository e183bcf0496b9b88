//! Unit tests of the search hits' word timing.

use super::*;

fn w(start_ms: u64, text: &str) -> derive::Word {
    derive::Word {
        start_ms,
        end_ms: start_ms + 300,
        text: text.into(),
    }
}

#[test]
fn a_hit_points_at_the_word_said() {
    let words = vec![
        w(10_000, " Today"),
        w(10_400, " we"),
        w(10_800, " study"),
        w(11_200, " the"),
        w(11_600, " Calvin"),
        w(12_000, " cycle."),
        w(20_000, " Calvin"),
    ];
    let hit = classroom_search::Hit {
        replay_id: Uuid::nil(),
        session_id: Uuid::nil(),
        start_ms: 10_000,
        end_ms: 12_300,
        kind: "transcript".into(),
        text: String::new(),
        score: 1.0,
    };
    assert_eq!(word_time(&words, &hit, "\"the Calvin cycle\""), 11_200);
    assert_eq!(word_time(&words, &hit, "cycles"), 12_000);
    assert_eq!(word_time(&words, &hit, "nothing here"), 10_000);
}
