//! Words of an argv read without allocating: an option's name, its `=`
//! split, ASCII case-insensitive suffix and substring tests. The policy
//! checks call these for every argument of every command.

/// The option an argument names (`--name` for `--name=value`), if it is an
/// option word at all (it starts with `-`): values, often long documents,
/// are not searched for `=`.
pub(crate) fn option_name(arg: &str) -> Option<&str> {
    if !arg.starts_with('-') {
        return None;
    }
    Some(split_at_equals(arg).map_or(arg, |(name, _)| name))
}

/// `arg` split at its first `=`, as [`str::split_once`] splits it.
///
/// The checks split every option word several times, and an option's `=`,
/// if it has one, ends its short name: a plain scan finds it sooner than a
/// searcher is set up.
pub(crate) fn split_at_equals(arg: &str) -> Option<(&str, &str)> {
    let at = arg.bytes().position(|b| b == b'=')?;
    // `=` is ASCII, so `at` and `at + 1` are character boundaries.
    Some((arg.get(..at)?, arg.get(at + 1..)?))
}

/// Whether `haystack` ends with `suffix` (ASCII, any case), without allocating.
pub(crate) fn ends_with_ignore_case(haystack: &str, suffix: &str) -> bool {
    haystack.len() >= suffix.len()
        && haystack
            .as_bytes()
            .get(haystack.len() - suffix.len()..)
            .is_some_and(|end| end.eq_ignore_ascii_case(suffix.as_bytes()))
}

/// Whether `haystack` contains `needle` (ASCII, any case), without allocating.
pub(crate) fn contains_ignore_case(haystack: &str, needle: &str) -> bool {
    let (h, n) = (haystack.as_bytes(), needle.as_bytes());
    let Some(&first) = n.first() else {
        return true;
    };
    // Candidates by the first byte in either case, then one comparison each.
    memchr::memchr2_iter(first.to_ascii_lowercase(), first.to_ascii_uppercase(), h).any(|i| {
        h.get(i..i + n.len())
            .is_some_and(|w| w.eq_ignore_ascii_case(n))
    })
}
