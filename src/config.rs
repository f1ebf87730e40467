//! The one reader of configuration values, for every builder: values come
//! from the process environment (`from_env`), from any list of pairs
//! (`from_vars`, so tests need no process environment) or one at a time
//! (`with_config(Key, &str)`), always with one policy — every problem is
//! collected and [`Problems::check`] reports them all from `build()`, and a
//! secret's value is never printed.
//!
//! A builder's keys are an enum made by `config_keys!`:
//! each key has a canonical name (the environment variable, printed by
//! `Display`) and aliases, parsed case-insensitively by `FromStr`.

// Only the cloud backends' builders read configuration.
#![cfg_attr(not(cloud_backend), allow(dead_code))]

use crate::error::{Error, Result};
use std::fmt;
use std::time::Duration;

/// A configuration key of one builder.
pub(crate) trait ConfigKey: Copy + Eq + fmt::Display + 'static {
    /// Every key, in the order `from_vars` applies them (a later key wins
    /// over an earlier one that sets the same thing).
    const ALL: &'static [Self];
    /// The canonical name: the environment variable.
    fn name(self) -> &'static str;
    /// Other accepted names.
    fn aliases(self) -> &'static [&'static str];
    /// Whether the value is a secret (never printed, not even in an error).
    fn is_secret(self) -> bool;

    /// The key named `name` (canonical or alias, any case).
    fn parse(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|k| {
            k.name().eq_ignore_ascii_case(name)
                || k.aliases().iter().any(|a| a.eq_ignore_ascii_case(name))
        })
    }
}

/// Declares a public configuration-key enum: its variants with docs, each
/// key's canonical name and aliases, and whether it is secret; implements
/// [`ConfigKey`], `Display` (the canonical name), `AsRef<str>` and
/// `FromStr` (any name, any case; an unknown name is a
/// [`Config`](crate::ErrorKind::Config) error).
///
/// ```text
/// config_keys! {
///     /// Keys of the thing builder.
///     pub enum ThingConfigKey {
///         /// Doc of the key.
///         Url = "THING_URL" ["THING_ENDPOINT"],
///         Token = "THING_TOKEN" => secret,
///     }
/// }
/// ```
#[allow(unused_macros)] // used by the backends behind features
macro_rules! config_keys {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $(
                $(#[$vmeta:meta])*
                $variant:ident = $canonical:literal $([$($alias:literal),* $(,)?])? $(=> $secret:ident)?,
            )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum $name {
            $($(#[$vmeta])* $variant,)*
        }

        impl crate::config::ConfigKey for $name {
            const ALL: &'static [Self] = &[$($name::$variant),*];
            fn name(self) -> &'static str {
                match self { $($name::$variant => $canonical,)* }
            }
            fn aliases(self) -> &'static [&'static str] {
                match self { $($name::$variant => &[$($($alias),*)?],)* }
            }
            fn is_secret(self) -> bool {
                match self { $($name::$variant => crate::config::config_keys!(@secret $($secret)?),)* }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(crate::config::ConfigKey::name(*self))
            }
        }

        impl ::std::convert::AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                crate::config::ConfigKey::name(*self)
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = crate::Error;
            fn from_str(s: &str) -> crate::Result<Self> {
                <Self as crate::config::ConfigKey>::parse(s).ok_or_else(|| {
                    crate::Error::Config(format!(
                        concat!("unknown ", stringify!($name), " `{}`"),
                        s.escape_debug()
                    ))
                })
            }
        }
    };
    (@secret) => { false };
    (@secret $t:tt) => { true };
}
#[allow(unused_imports)]
pub(crate) use config_keys;

/// The `from_vars` of a builder with `new()` and `with_config($key, &str)`:
/// the pairs naming a key of `$key` applied in the key order, every other
/// name ignored. Written once for every builder.
#[allow(unused_macros)] // used by the backends behind features
macro_rules! from_vars {
    ($key:ty) => {
        /// A builder configured from `vars`, name–value pairs named as the
        /// environment variables of [`from_env`](Self::from_env) (any case;
        /// other names and empty values are ignored; the key enum lists the
        /// names). A bad value is reported by [`build`](Self::build).
        pub fn from_vars<I, K, V>(vars: I) -> Self
        where
            I: IntoIterator<Item = (K, V)>,
            K: AsRef<str>,
            V: AsRef<str>,
        {
            crate::config::select::<$key, _, _>(vars)
                .into_iter()
                .fold(Self::new(), |b, (key, value)| b.with_config(key, &value))
        }
    };
}
#[allow(unused_imports)]
pub(crate) use from_vars;

/// The pairs of the process environment that are valid UTF-8.
pub(crate) fn env_vars() -> impl Iterator<Item = (String, String)> {
    std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
}

/// The values of `vars` that name a key of `K`, in `K::ALL` order (a
/// canonical name wins over an alias of the same key); empty values are
/// ignored, as an unset variable is.
pub(crate) fn select<K, N, V>(vars: impl IntoIterator<Item = (N, V)>) -> Vec<(K, String)>
where
    K: ConfigKey,
    N: AsRef<str>,
    V: AsRef<str>,
{
    let mut found: Vec<(K, bool, String)> = Vec::new();
    for (name, value) in vars {
        let (name, value) = (name.as_ref(), value.as_ref());
        if value.trim().is_empty() {
            continue;
        }
        let Some(key) = K::parse(name) else {
            continue;
        };
        let canonical = key.name().eq_ignore_ascii_case(name);
        match found.iter_mut().find(|(k, _, _)| *k == key) {
            Some(slot) if canonical || !slot.1 => *slot = (key, canonical, value.to_owned()),
            Some(_) => {}
            None => found.push((key, canonical, value.to_owned())),
        }
    }
    K::ALL
        .iter()
        .filter_map(|k| found.iter().find(|(f, _, _)| f == k))
        .map(|(k, _, v)| (*k, v.clone()))
        .collect()
}

/// The problems found while configuring a builder, reported together.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Problems(Vec<String>);

impl Problems {
    /// Records that `value` is not valid for `key`, because `why`; a
    /// secret's value is not repeated.
    pub(crate) fn bad_value<K: ConfigKey>(&mut self, key: K, value: &str, why: impl fmt::Display) {
        if key.is_secret() {
            self.0
                .push(format!("{key}: {why} (value not shown: a secret)"));
        } else {
            self.0.push(format!(
                "{key}: {:?}: {why}",
                value.escape_debug().to_string()
            ));
        }
    }

    /// Records a problem that is not about one value.
    pub(crate) fn push(&mut self, problem: impl Into<String>) {
        self.0.push(problem.into());
    }

    /// Parses `value` for `key` with `parse`, recording a problem when it fails.
    pub(crate) fn parse<K: ConfigKey, T, E: fmt::Display>(
        &mut self,
        key: K,
        value: &str,
        parse: impl FnOnce(&str) -> std::result::Result<T, E>,
    ) -> Option<T> {
        match parse(value.trim()) {
            Ok(v) => Some(v),
            Err(e) => {
                self.bad_value(key, value, e);
                None
            }
        }
    }

    #[cfg(test)]
    /// Whether nothing was wrong.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok` if nothing was wrong; otherwise one [`Error::Config`] naming
    /// `what` and every problem.
    pub(crate) fn check(&self, what: &str) -> Result<()> {
        match self.0.as_slice() {
            [] => Ok(()),
            [one] => Err(Error::Config(format!("{what}: {one}"))),
            all => Err(Error::Config(format!(
                "{what}: {} problems: {}",
                all.len(),
                all.join("; ")
            ))),
        }
    }
}

/// A number of seconds (`30`) or a duration with its unit (`30s`, `2m`, `500ms`).
/// A value that is not empty.
#[cfg_attr(
    not(any(feature = "sqs", feature = "pubsub", feature = "prisma")),
    allow(dead_code)
)]
pub(crate) fn not_empty(text: &str) -> std::result::Result<String, String> {
    if text.is_empty() {
        Err("empty".to_owned())
    } else {
        Ok(text.to_owned())
    }
}

#[cfg_attr(not(any(feature = "dynamodb")), allow(dead_code))]
pub(crate) fn duration(text: &str) -> std::result::Result<Duration, String> {
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(text)
        .map_err(|e| format!("not a duration (seconds, or a number with a unit such as 30s): {e}"))
}

/// A whole number of seconds.
#[cfg_attr(
    not(any(feature = "sqs", feature = "servicebus", feature = "pubsub")),
    allow(dead_code)
)]
pub(crate) fn seconds(text: &str) -> std::result::Result<Duration, String> {
    text.parse::<u64>()
        .map(Duration::from_secs)
        .map_err(|_| "not a whole number of seconds".to_owned())
}

/// An `http://` or `https://` URL with a host.
#[cfg_attr(
    not(any(feature = "sqs", feature = "pubsub", feature = "dynamodb")),
    allow(dead_code)
)]
pub(crate) fn http_url(text: &str) -> std::result::Result<String, String> {
    let rest = text
        .strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"))
        .ok_or("not an http(s) URL")?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err("a URL without a host".to_owned());
    }
    Ok(text.to_owned())
}

#[cfg(test)]
#[allow(unreachable_pub)]
mod tests {
    use super::*;

    crate::config::config_keys! {
        /// Keys of a test builder.
        pub enum TestKey {
            /// A plain value.
            Plain = "TEST_PLAIN" ["TEST_OLD_PLAIN", "plain"],
            /// A secret.
            Token = "TEST_TOKEN" => secret,
        }
    }

    #[test]
    fn keys_parse_their_aliases_in_any_case_and_print_their_canonical_name() {
        assert_eq!("test_plain".parse::<TestKey>().unwrap(), TestKey::Plain);
        assert_eq!("PLAIN".parse::<TestKey>().unwrap(), TestKey::Plain);
        assert_eq!(TestKey::Plain.to_string(), "TEST_PLAIN");
        assert!(TestKey::Token.is_secret() && !TestKey::Plain.is_secret());
        let e = "nope".parse::<TestKey>().unwrap_err();
        assert!(e.to_string().contains("unknown TestKey `nope`"), "{e}");
    }

    #[test]
    fn select_prefers_the_canonical_name_and_skips_empty_values() {
        let got: Vec<(TestKey, String)> = select([
            ("TEST_PLAIN", "canonical"),
            ("TEST_OLD_PLAIN", "alias"),
            ("TEST_TOKEN", "  "),
            ("OTHER", "x"),
        ]);
        assert_eq!(got, vec![(TestKey::Plain, "canonical".to_owned())]);
    }

    #[test]
    fn problems_are_reported_together_and_secrets_never_shown() {
        let mut p = Problems::default();
        assert!(p.check("builder").is_ok());
        p.bad_value(TestKey::Plain, "abc", "not a number");
        p.bad_value(TestKey::Token, "s3cr3t-value", "too short");
        let e = p.check("the test builder").unwrap_err().to_string();
        assert!(e.contains("2 problems"), "{e}");
        assert!(e.contains("TEST_PLAIN: \"abc\": not a number"), "{e}");
        assert!(e.contains("TEST_TOKEN: too short"), "{e}");
        assert!(!e.contains("s3cr3t"), "{e}");
    }

    #[test]
    fn value_parsers() {
        assert_eq!(duration("30").unwrap(), Duration::from_secs(30));
        assert_eq!(duration("500ms").unwrap(), Duration::from_millis(500));
        assert!(duration("soon").is_err());
        assert!(seconds("1.5").is_err());
        assert!(http_url("ftp://x").is_err() && http_url("https://").is_err());
        assert!(http_url("http://localhost:5000").is_ok());
    }
}
