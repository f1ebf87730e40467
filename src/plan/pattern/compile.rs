//! Compiling an EventBridge pattern's JSON into the matcher: every operator
//! checked for its documented shape, every mistake named with its path.

use super::*;

pub(super) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

pub(super) fn compile_node(
    map: &Map<String, Value>,
    path: &mut Path,
) -> std::result::Result<Node, PatternError> {
    if map.is_empty() {
        return Err(path.error("a pattern object must not be empty"));
    }
    let mut node = Node {
        fields: Vec::with_capacity(map.len()),
        any_of: Vec::new(),
    };
    for (key, value) in map {
        if key == "$or" {
            let alternatives = path.with(format_args!("$or"), |path| compile_or(value, path))?;
            node.any_of.push(alternatives);
            continue;
        }
        let field = path.with(format_args!("{key}"), |path| match value {
            Value::Object(inner) => compile_node(inner, path).map(Field::Nested),
            Value::Array(items) => compile_conditions(items, path).map(Field::Leaf),
            other => Err(path.error(format!(
                "a field must hold an array of match values or a nested object, not {}",
                kind(other)
            ))),
        })?;
        node.fields.push((key.as_str().into(), field));
    }
    Ok(node)
}

fn compile_or(value: &Value, path: &mut Path) -> std::result::Result<Vec<Node>, PatternError> {
    let Value::Array(items) = value else {
        return Err(path.error(format!(
            "`$or` must be an array of pattern objects, not {}",
            kind(value)
        )));
    };
    if items.len() < 2 {
        return Err(path.error("`$or` needs at least two alternatives"));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            path.with(format_args!("[{i}]"), |path| match item {
                Value::Object(map) => compile_node(map, path),
                other => Err(path.error(format!(
                    "a `$or` alternative must be a pattern object, not {}",
                    kind(other)
                ))),
            })
        })
        .collect()
}

fn compile_conditions(
    items: &[Value],
    path: &mut Path,
) -> std::result::Result<Vec<Condition>, PatternError> {
    if items.is_empty() {
        return Err(path.error("a list of match values must not be empty"));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| path.with(format_args!("[{i}]"), |path| compile_condition(item, path)))
        .collect()
}

fn literal(v: &Value, path: &Path) -> std::result::Result<Literal, PatternError> {
    Ok(match v {
        Value::String(s) => Literal::String(s.as_str().into()),
        Value::Number(n) => Literal::Number(
            n.as_f64()
                .ok_or_else(|| path.error(format!("number {n} is out of range")))?,
        ),
        Value::Bool(b) => Literal::Bool(*b),
        Value::Null => Literal::Null,
        other => {
            return Err(path.error(format!(
                "a match value must be a string, number, boolean, null or an operator object, not {}",
                kind(other)
            )));
        }
    })
}

fn want_str<'v>(v: &'v Value, op: &str, path: &Path) -> std::result::Result<&'v str, PatternError> {
    v.as_str()
        .ok_or_else(|| path.error(format!("`{op}` takes a string, not {}", kind(v))))
}

/// A string, or `{"equals-ignore-case": string}`.
fn maybe_ignore_case<'v>(
    v: &'v Value,
    op: &str,
    path: &mut Path,
) -> std::result::Result<(&'v str, bool), PatternError> {
    match v {
        Value::String(s) => Ok((s, false)),
        Value::Object(map) => {
            let (key, inner) = single_key(map, path)?;
            if key != "equals-ignore-case" {
                return Err(path.error(format!(
                    "`{op}` takes a string or {{\"equals-ignore-case\": string}}, not an object with `{key}`"
                )));
            }
            path.with(format_args!("{key}"), |path| want_str(inner, key, path))
                .map(|s| (s, true))
        }
        other => Err(path.error(format!(
            "`{op}` takes a string or {{\"equals-ignore-case\": string}}, not {}",
            kind(other)
        ))),
    }
}

fn single_key<'m>(
    map: &'m Map<String, Value>,
    path: &Path,
) -> std::result::Result<(&'m str, &'m Value), PatternError> {
    let mut it = map.iter();
    match (it.next(), it.next()) {
        (Some((k, v)), None) => Ok((k, v)),
        (None, _) => Err(path.error("an operator object must not be empty")),
        (Some(_), Some(_)) => Err(path.error(format!(
            "an operator object must hold exactly one operator, found {}: {}",
            map.len(),
            map.keys()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

fn compile_condition(
    item: &Value,
    path: &mut Path,
) -> std::result::Result<Condition, PatternError> {
    let Value::Object(map) = item else {
        return literal(item, path).map(Condition::Exact);
    };
    let (op, arg) = single_key(map, path)?;
    path.with(format_args!("{op}"), |path| match op {
        "prefix" => Ok(match maybe_ignore_case(arg, op, path)? {
            (s, false) => Condition::Prefix(s.into()),
            (s, true) => Condition::PrefixIgnoreCase(Folded::new(s)),
        }),
        "suffix" => Ok(match maybe_ignore_case(arg, op, path)? {
            (s, false) => Condition::Suffix(s.into()),
            (s, true) => Condition::SuffixIgnoreCase(Folded::new_reversed(s)),
        }),
        "equals-ignore-case" => {
            want_str(arg, op, path).map(|s| Condition::EqualsIgnoreCase(Folded::new(s)))
        }
        "wildcard" => Wildcard::compile(want_str(arg, op, path)?, path).map(Condition::Wildcard),
        "anything-but" => compile_anything_but(arg, path).map(Condition::AnythingBut),
        "numeric" => compile_numeric(arg, path).map(Condition::Numeric),
        "cidr" => compile_cidr(want_str(arg, op, path)?, path).map(Condition::Cidr),
        "exists" => match arg {
            Value::Bool(b) => Ok(Condition::Exists(*b)),
            other => Err(path.error(format!("`exists` takes true or false, not {}", kind(other)))),
        },
        other => Err(path.error(format!(
            "unknown operator `{other}` (expected prefix, suffix, equals-ignore-case, wildcard, \
             anything-but, numeric, cidr or exists)"
        ))),
    })
}

/// One string or a non-empty list of strings.
fn string_or_list<'v>(
    v: &'v Value,
    op: &str,
    path: &mut Path,
) -> std::result::Result<Vec<&'v str>, PatternError> {
    match v {
        Value::String(s) => Ok(vec![s]),
        Value::Array(items) if !items.is_empty() => items
            .iter()
            .enumerate()
            .map(|(i, item)| path.with(format_args!("[{i}]"), |path| want_str(item, op, path)))
            .collect(),
        Value::Array(_) => Err(path.error(format!("`{op}` must not be an empty list"))),
        other => Err(path.error(format!(
            "`{op}` takes a string or a list of strings, not {}",
            kind(other)
        ))),
    }
}

fn compile_anything_but(
    arg: &Value,
    path: &mut Path,
) -> std::result::Result<AnythingBut, PatternError> {
    match arg {
        Value::String(_) | Value::Number(_) => Ok(AnythingBut::Values(vec![literal(arg, path)?])),
        Value::Array(items) => {
            if items.is_empty() {
                return Err(path.error("`anything-but` must not be an empty list"));
            }
            let strings = items.iter().all(Value::is_string);
            let numbers = items.iter().all(Value::is_number);
            if !strings && !numbers {
                return Err(
                    path.error("an `anything-but` list must hold only strings or only numbers")
                );
            }
            items
                .iter()
                .enumerate()
                .map(|(i, item)| path.with(format_args!("[{i}]"), |path| literal(item, path)))
                .collect::<std::result::Result<_, _>>()
                .map(AnythingBut::Values)
        }
        Value::Object(map) => {
            let (op, inner) = single_key(map, path)?;
            path.with(format_args!("{op}"), |path| match op {
                "prefix" => want_str(inner, op, path).map(|s| AnythingBut::Prefix(s.into())),
                "suffix" => want_str(inner, op, path).map(|s| AnythingBut::Suffix(s.into())),
                "equals-ignore-case" => string_or_list(inner, op, path)
                    .map(|l| AnythingBut::IgnoreCase(l.into_iter().map(Folded::new).collect())),
                "wildcard" => {
                    let list = string_or_list(inner, op, path)?;
                    list.into_iter()
                        .map(|w| Wildcard::compile(w, path))
                        .collect::<std::result::Result<_, _>>()
                        .map(AnythingBut::Wildcard)
                }
                other => Err(path.error(format!(
                    "unknown `anything-but` operator `{other}` (expected prefix, suffix, \
                     equals-ignore-case or wildcard)"
                ))),
            })
        }
        other => Err(path.error(format!(
            "`anything-but` takes a string, a number, a list or an operator object, not {}",
            kind(other)
        ))),
    }
}

fn compile_numeric(arg: &Value, path: &mut Path) -> std::result::Result<Range, PatternError> {
    let Value::Array(items) = arg else {
        return Err(path.error(format!(
            "`numeric` takes a list such as [\">\", 0, \"<=\", 5], not {}",
            kind(arg)
        )));
    };
    let bound = |i: usize, path: &mut Path| -> std::result::Result<f64, PatternError> {
        path.with(format_args!("[{i}]"), |path| {
            let n = items
                .get(i)
                .and_then(Value::as_f64)
                .ok_or_else(|| path.error("expected a number after the comparison operator"))?;
            if !(-NUMERIC_LIMIT..=NUMERIC_LIMIT).contains(&n) {
                return Err(path.error(format!("{n} is outside the numeric range ±5.0e9")));
            }
            Ok(n)
        })
    };
    let op = |i: usize, path: &mut Path| -> std::result::Result<&str, PatternError> {
        path.with(format_args!("[{i}]"), |path| {
            items
                .get(i)
                .and_then(Value::as_str)
                .ok_or_else(|| path.error("expected a comparison operator (<, <=, =, >=, >)"))
        })
    };
    if items.len() != 2 && items.len() != 4 {
        return Err(path.error(format!(
            "`numeric` takes one comparison or a lower and an upper bound (2 or 4 items), got {}",
            items.len()
        )));
    }
    let mut range = Range {
        lower: None,
        upper: None,
    };
    let first = op(0, path)?;
    let n = bound(1, path)?;
    match first {
        "=" => {
            if items.len() == 4 {
                return Err(path.error("`=` cannot be combined with another bound"));
            }
            range.lower = Some((n, true));
            range.upper = Some((n, true));
        }
        ">" | ">=" => range.lower = Some((n, first == ">=")),
        "<" | "<=" => {
            if items.len() == 4 {
                return Err(path.error("the lower bound (`>` or `>=`) must come first"));
            }
            range.upper = Some((n, first == "<="));
        }
        other => {
            return Err(path.with(format_args!("[0]"), |path| {
                path.error(format!("unknown comparison operator {other:?}"))
            }));
        }
    }
    if items.len() == 4 {
        let second = op(2, path)?;
        let m = bound(3, path)?;
        match second {
            "<" | "<=" => range.upper = Some((m, second == "<=")),
            other => {
                return Err(path.with(format_args!("[2]"), |path| {
                    path.error(format!(
                        "expected an upper bound (`<` or `<=`), got {other:?}"
                    ))
                }));
            }
        }
        if m <= n {
            return Err(path.error(format!(
                "the lower bound {n} must be below the upper bound {m}"
            )));
        }
    }
    Ok(range)
}

fn compile_cidr(text: &str, path: &Path) -> std::result::Result<Cidr, PatternError> {
    let bad = |why: &str| path.error(format!("invalid CIDR block {text:?}: {why}"));
    let (ip, len) = text
        .split_once('/')
        .ok_or_else(|| bad("expected ADDRESS/PREFIX-LENGTH"))?;
    let ip: IpAddr = ip.parse().map_err(|_| bad("not an IP address"))?;
    let len: u32 = if !len.is_empty() && len.bytes().all(|b| b.is_ascii_digit()) {
        len.parse().map_err(|_| bad("bad prefix length"))?
    } else {
        return Err(bad("bad prefix length"));
    };
    match ip {
        IpAddr::V4(ip) => {
            if len > 32 {
                return Err(bad("an IPv4 prefix length is at most 32"));
            }
            let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
            Ok(Cidr::V4 {
                net: u32::from(ip) & mask,
                mask,
            })
        }
        IpAddr::V6(ip) => {
            if len > 128 {
                return Err(bad("an IPv6 prefix length is at most 128"));
            }
            let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
            Ok(Cidr::V6 {
                net: u128::from(ip) & mask,
                mask,
            })
        }
    }
}
