//! The EventBridge event-pattern compiler and matcher, over any text.
//!
//! Input: the first line is the pattern's JSON, the rest the event's JSON
//! (either may be invalid). A pattern that compiles is matched against the
//! event, and against the event's `detail` as the engine's EventBridge view
//! of a CloudTrail record; nothing may panic. Matching is deterministic, a
//! pattern round-trips through its own JSON, and recompiling gives the same
//! verdicts.
#![no_main]

use libfuzzer_sys::fuzz_target;
use remediation::plan::EventPattern;
use remediation::rules::eventbridge_view_of;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (pattern_text, event_text) = text.split_once('\n').unwrap_or((&text, ""));

    let Ok(pattern) = EventPattern::from_json(pattern_text) else {
        // Maybe the whole input is one pattern (the seeds of other targets).
        let _ = EventPattern::from_json(&text);
        return;
    };
    let _ = pattern.to_string();
    let again = EventPattern::compile(pattern.as_json())
        .expect("a compiled pattern's own JSON compiles again");
    assert_eq!(again, pattern);
    let serialized = serde_json::to_string(&pattern).expect("a pattern serializes");
    let reread: EventPattern =
        serde_json::from_str(&serialized).expect("a serialized pattern reads back");

    let Ok(event) = serde_json::from_str::<Value>(event_text) else {
        // Still exercise the matcher, on the pattern's own JSON as an event.
        let _ = pattern.matches(pattern.as_json());
        return;
    };
    let verdict = pattern.matches(&event);
    assert_eq!(
        verdict,
        pattern.matches(&event),
        "matching is not deterministic"
    );
    assert_eq!(
        verdict,
        again.matches(&event),
        "recompiled pattern disagrees"
    );
    assert_eq!(verdict, reread.matches(&event), "re-read pattern disagrees");
    if let Some(detail) = event.get("detail") {
        let _ = pattern.matches(&eventbridge_view_of(detail.clone()));
    }
    let _ = pattern.matches(&eventbridge_view_of(event));
});
