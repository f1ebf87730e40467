//! The `index_struct!` macro: a private, partial view of a JSON object,
//! read on the scanner's fast path or with serde_json, field by field
//! through [`Indexed`](super::Indexed).

/// Defines a private, partial view of a JSON object read through
/// [`Indexed`](super::Indexed): only the named fields are read (each field
/// type implements `Indexed`), every other value is skipped without being
/// built. Keys are dispatched on their length first, then compared as bytes.
/// A field sent twice is an error (unless the first was `null`), as with
/// derived structs.
macro_rules! index_struct {
    (
        $(#[$meta:meta])*
        struct $name:ident {
            $($wire:literal => $field:ident : $ty:ty,)*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, Default, PartialEq)]
        struct $name {
            $($field: $ty,)*
        }

        const _: () = {
        #[allow(non_camel_case_types)]
        #[derive(Clone, Copy)]
        enum __Field {
            $($field,)*
            __Skip,
        }
        const _: () = assert!((__Field::__Skip as u32) <= 64, "too many fields");

        #[allow(non_upper_case_globals)]
        mod __len {
            $(pub(super) const $field: usize = $wire.len();)*
        }

        impl __Field {
            /// The field a key names, by its length first, then its bytes.
            #[inline]
            fn of(b: &[u8]) -> __Field {
                match b.len() {
                    $(__len::$field if b == $wire.as_bytes() => __Field::$field,)*
                    _ => __Field::__Skip,
                }
            }
        }

        impl $name {
            /// Reads the fields from a map.
            fn read_map<'de, A>(
                map: A,
                cx: &mut $crate::model::json::Ctx,
            ) -> ::std::result::Result<Self, A::Error>
            where
                A: ::serde::de::MapAccess<'de>,
            {
                let mut out = Self::default();
                Self::read_map_into(map, cx, &mut out)?;
                Ok(out)
            }

            /// Reads the fields from a map into `out` (a default value), in
            /// place: the index is not moved around on its way back.
            fn read_map_into<'de, A>(
                mut map: A,
                cx: &mut $crate::model::json::Ctx,
                out: &mut Self,
            ) -> ::std::result::Result<(), A::Error>
            where
                A: ::serde::de::MapAccess<'de>,
            {
                struct __Key(__Field);

                impl<'de> ::serde::Deserialize<'de> for __Key {
                    #[inline]
                    fn deserialize<D>(d: D) -> ::std::result::Result<Self, D::Error>
                    where
                        D: ::serde::Deserializer<'de>,
                    {
                        struct __KeyVisitor;

                        impl ::serde::de::Visitor<'_> for __KeyVisitor {
                            type Value = __Key;

                            fn expecting(
                                &self,
                                f: &mut ::std::fmt::Formatter<'_>,
                            ) -> ::std::fmt::Result {
                                f.write_str("a field name")
                            }

                            #[inline]
                            fn visit_str<E>(self, s: &str) -> ::std::result::Result<__Key, E>
                            where
                                E: ::serde::de::Error,
                            {
                                self.visit_bytes(s.as_bytes())
                            }

                            #[inline]
                            fn visit_bytes<E>(self, b: &[u8]) -> ::std::result::Result<__Key, E>
                            where
                                E: ::serde::de::Error,
                            {
                                Ok(__Key(__Field::of(b)))
                            }
                        }

                        // As a string: for text input serde_json neither copies
                        // nor revalidates it, and its short-string scan is
                        // faster than the one behind `deserialize_bytes`.
                        d.deserialize_str(__KeyVisitor)
                    }
                }

                let mut seen: u64 = 0;
                while let Some(__Key(key)) = map.next_key()? {
                    match key {
                        $(
                            __Field::$field => {
                                let bit = 1u64 << (__Field::$field as u32);
                                if seen & bit != 0 {
                                    return Err(<A::Error as ::serde::de::Error>::duplicate_field($wire));
                                }
                                if let Some(v) = map.next_value_seed(
                                    $crate::model::json::Seed::<$ty>::new(cx),
                                )? {
                                    out.$field = v;
                                    seen |= bit;
                                }
                            }
                        )*
                        __Field::__Skip => {
                            map.next_value::<::serde::de::IgnoredAny>()?;
                        }
                    }
                }
                Ok(())
            }

            /// Reads the object that comes next on the scanner into `out`
            /// (a default value), as [`Self::read_map_into`] would.
            fn scan_into<'de>(
                sc: &mut $crate::model::json::Scan<'de>,
                cx: &mut $crate::model::json::Ctx,
                out: &mut Self,
            ) -> $crate::model::json::Scanned<()> {
                let mut seen: u64 = 0;
                sc.object(|sc, key| {
                    match __Field::of(key) {
                        $(
                            __Field::$field => {
                                let bit = 1u64 << (__Field::$field as u32);
                                if seen & bit != 0 {
                                    return Err($crate::model::json::Miss);
                                }
                                if let Some(v) =
                                    <$ty as $crate::model::json::Indexed<'de>>::scan(sc, cx)?
                                {
                                    out.$field = v;
                                    seen |= bit;
                                }
                                Ok(())
                            }
                        )*
                        __Field::__Skip => sc.skip_value(),
                    }
                })
            }

            /// Reads the JSON text `text` (an object, with nothing after
            /// it but whitespace) into `out` (a default value): on the
            /// scanner's fast path if it can answer, else with serde_json.
            #[allow(dead_code)]
            fn read_text(
                text: &str,
                cx: &mut $crate::model::json::Ctx,
                out: &mut Self,
            ) -> ::std::result::Result<(), ::serde_json::Error> {
                if Self::read_scanned(text, cx, out).is_ok() {
                    return Ok(());
                }
                cx.clear();
                *out = Self::default();
                Self::read_parsed(text, cx, out)
            }

            /// Reads `text` on the scanner's path only.
            fn read_scanned(
                text: &str,
                cx: &mut $crate::model::json::Ctx,
                out: &mut Self,
            ) -> $crate::model::json::Scanned<()> {
                let mut sc = $crate::model::json::Scan::new(text);
                Self::scan_into(&mut sc, cx, out)?;
                sc.end()
            }

            /// Reads `text` with serde_json only.
            fn read_parsed(
                text: &str,
                cx: &mut $crate::model::json::Ctx,
                out: &mut Self,
            ) -> ::std::result::Result<(), ::serde_json::Error> {
                let mut de = ::serde_json::Deserializer::from_str(text);
                Self::read_top(&mut de, cx, out)?;
                de.end()
            }

            /// Both readings of `text`, for tests: the scanner's (`None` for a
            /// miss) and serde_json's, each with its side buffer.
            #[cfg(test)]
            #[allow(dead_code, clippy::type_complexity)]
            fn both_readings(
                text: &str,
            ) -> (
                Option<(Self, Box<str>)>,
                ::std::result::Result<(Self, Box<str>), String>,
            ) {
                let mut cx = $crate::model::json::Ctx::new(text).expect("indexable");
                let mut out = Self::default();
                let fast = Self::read_scanned(text, &mut cx, &mut out)
                    .ok()
                    .map(|()| (out, cx.into_extra()));
                let mut cx = $crate::model::json::Ctx::new(text).expect("indexable");
                let mut out = Self::default();
                let slow = Self::read_parsed(text, &mut cx, &mut out)
                    .map(|()| (out, cx.into_extra()))
                    .map_err(|e| e.to_string());
                (fast, slow)
            }

            /// Test support: `Err` if the scanner accepts `text` where
            /// serde_json does not, or reads it differently; with `fast`,
            /// also if the scanner misses a text serde_json accepts.
            #[cfg(test)]
            #[allow(dead_code)]
            fn scan_agrees(text: &str, fast: bool) -> ::std::result::Result<(), String> {
                match Self::both_readings(text) {
                    (Some(scanned), Ok(parsed)) if scanned == parsed => Ok(()),
                    (None, Err(_)) => Ok(()),
                    (None, Ok(_)) if !fast => Ok(()),
                    (scanned, parsed) => Err(format!(
                        "scanner: {scanned:?}\nserde_json: {parsed:?}\ntext: {text}"
                    )),
                }
            }

            /// Reads the object at the top of `d` (not `null`) into `out`
            /// (a default value), in place.
            #[allow(dead_code)]
            fn read_top<'de, D>(
                d: D,
                cx: &mut $crate::model::json::Ctx,
                out: &mut Self,
            ) -> ::std::result::Result<(), D::Error>
            where
                D: ::serde::Deserializer<'de>,
            {
                struct __TopVisitor<'c> {
                    cx: &'c mut $crate::model::json::Ctx,
                    out: &'c mut $name,
                }

                impl<'de> ::serde::de::Visitor<'de> for __TopVisitor<'_> {
                    type Value = ();

                    fn expecting(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                        f.write_str("a JSON object")
                    }

                    fn visit_map<A>(self, map: A) -> ::std::result::Result<(), A::Error>
                    where
                        A: ::serde::de::MapAccess<'de>,
                    {
                        $name::read_map_into(map, self.cx, self.out)
                    }
                }

                d.deserialize_map(__TopVisitor { cx, out })
            }
        }

        /// Reads a `$name` from an object; `null` is none.
        struct __ObjectVisitor<'c> {
            cx: &'c mut $crate::model::json::Ctx,
        }

        impl<'de> ::serde::de::Visitor<'de> for __ObjectVisitor<'_> {
            type Value = ::std::option::Option<$name>;

            fn expecting(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A>(self, map: A) -> ::std::result::Result<Self::Value, A::Error>
            where
                A: ::serde::de::MapAccess<'de>,
            {
                $name::read_map(map, self.cx).map(Some)
            }

            fn visit_unit<E>(self) -> ::std::result::Result<Self::Value, E>
            where
                E: ::serde::de::Error,
            {
                Ok(None)
            }
        }

        impl<'de> $crate::model::json::Indexed<'de> for $name {
            fn read<D>(
                d: D,
                cx: &mut $crate::model::json::Ctx,
            ) -> ::std::result::Result<Option<Self>, D::Error>
            where
                D: ::serde::Deserializer<'de>,
            {
                d.deserialize_any(__ObjectVisitor { cx })
            }

            #[inline]
            fn scan(
                sc: &mut $crate::model::json::Scan<'de>,
                cx: &mut $crate::model::json::Ctx,
            ) -> $crate::model::json::Scanned<Option<Self>> {
                if sc.null() {
                    return Ok(None);
                }
                let mut out = Self::default();
                Self::scan_into(sc, cx, &mut out)?;
                Ok(Some(out))
            }
        }
        };
    };
}

pub(crate) use index_struct;
