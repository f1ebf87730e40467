//! Test support for the readers: hostile variants of real payloads and every
//! object of the fixtures, to check the scanner against serde_json.

/// Test support: texts derived from `text` by small edits (a byte range
/// removed, or a JSON-significant piece inserted), for checking the
/// scanner against serde_json on hostile variants of real payloads.
pub(crate) fn mutants(text: &str) -> impl proptest::strategy::Strategy<Value = String> + use<> {
    use proptest::prelude::*;
    let text = text.to_owned();
    let len = text.len();
    (
        0..=len,
        0..8usize,
        prop::sample::select(super::scan::JSON_PIECES),
        any::<bool>(),
    )
        .prop_map(move |(at, cut, piece, insert)| {
            let mut at = at;
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            let mut end = (at + cut).min(text.len());
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            if insert {
                format!("{}{piece}{}", &text[..at], &text[at..])
            } else {
                format!("{}{}", &text[..at], &text[end..])
            }
        })
}

/// Test support: every JSON object in the fixtures of `tests/fixtures/{dir}`:
/// each file's text as it is, and each object nested in it, compact and
/// pretty-printed.
pub(crate) fn fixture_objects(dir: &str) -> Vec<String> {
    fn walk(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                out.push(v.to_string());
                out.push(serde_json::to_string_pretty(v).expect("serializable"));
                m.values().for_each(|v| walk(v, out));
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(dir);
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&root).expect("fixtures") {
        let text = std::fs::read_to_string(entry.expect("entry").path()).expect("fixture");
        walk(
            &serde_json::from_str(&text).expect("fixture JSON"),
            &mut out,
        );
        out.push(text);
    }
    assert!(out.len() > 10, "fixtures in {}", root.display());
    out
}
