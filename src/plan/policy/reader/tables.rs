//! The option tables the argv reader reads by: for `aws`, every catalog
//! operation's argument table as awscli builds it (generated from the pinned
//! awscli/botocore by `scripts/gen-aws-args` into `tables/aws.json`); for
//! `gcloud` and `gsutil`, the flags of each catalog command from the Cloud
//! SDK's own command tree (`scripts/gen-gcloud-flags` into
//! `tables/gcloud.json`). Both are committed with the versions they came
//! from, and tests regenerate and diff them.

use serde::Deserialize;
use std::collections::HashMap;
use std::sync::LazyLock;

/// How an option takes its value, as the CLI's parser reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Arity {
    /// A switch: no value (`--multi-az`, `--disabled`).
    Switch,
    /// Exactly one word (`--bucket NAME`, `--bucket=NAME`).
    One,
    /// One word if the next is not an option, else none (argparse `?`:
    /// `--map-public-ip-on-launch [Value=BOOL]`).
    Optional,
    /// One or more words, up to the next option (`--instance-ids i-1 i-2`).
    Many,
}

/// What the value is, for the types whose reading matters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Shape {
    /// A plain word.
    Scalar,
    /// A number (awscli reads it with Python's `int()`/`float()`, which
    /// also take `7_0` and ` 90`).
    Number,
    /// An object: JSON when it starts with `{`, shorthand otherwise.
    Object,
    /// A list of plain words (or one JSON list).
    List,
    /// A list of objects: JSON, or one shorthand object per word.
    ObjectList,
}

/// One option of an operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct OptionInfo {
    pub(crate) arity: Arity,
    pub(crate) shape: Shape,
    /// The option this one is the `--no-` form of.
    pub(crate) negates: Option<String>,
}

impl OptionInfo {
    pub(crate) const SWITCH: OptionInfo = OptionInfo {
        arity: Arity::Switch,
        shape: Shape::Scalar,
        negates: None,
    };
    pub(crate) const ONE: OptionInfo = OptionInfo {
        arity: Arity::One,
        shape: Shape::Scalar,
        negates: None,
    };
}

/// An operation's options by name. The tables are fixed when they are read
/// and looked up with every option of every command checked, so they hash
/// with foldhash rather than SipHash.
pub(crate) type Options = foldhash::HashMap<String, OptionInfo>;

#[derive(Deserialize)]
struct AwsArg {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    nargs: Option<String>,
    #[serde(default)]
    items: Option<String>,
    #[serde(default)]
    negates: Option<String>,
    #[serde(default)]
    flag: bool,
    #[serde(default)]
    positional: bool,
}

#[derive(Deserialize)]
struct AwsFile {
    global: HashMap<String, AwsArg>,
    operations: HashMap<String, HashMap<String, AwsArg>>,
}

fn aws_option(arg: &AwsArg) -> OptionInfo {
    let complex = |t: &str| matches!(t, "structure" | "map");
    let shape = match arg.kind.as_str() {
        t if complex(t) => Shape::Object,
        "list"
            if arg
                .items
                .as_deref()
                .is_some_and(|i| complex(i) || i == "list") =>
        {
            Shape::ObjectList
        }
        "list" => Shape::List,
        "integer" | "long" | "float" | "double" => Shape::Number,
        _ => Shape::Scalar,
    };
    let arity = if arg.flag {
        Arity::Switch
    } else if matches!(arg.nargs.as_deref(), Some("+" | "*")) {
        Arity::Many
    } else if arg.nargs.as_deref() == Some("?") {
        Arity::Optional
    } else {
        Arity::One
    };
    OptionInfo {
        arity,
        shape,
        negates: arg.negates.clone(),
    }
}

/// aws: the global options, and each operation's options; positional
/// arguments (awscli customizations) are keyed by their name without dashes.
pub(crate) struct AwsTables {
    pub(crate) global: Options,
    pub(crate) operations: foldhash::HashMap<String, (Options, Vec<String>)>,
}

pub(crate) static AWS: LazyLock<AwsTables> = LazyLock::new(|| {
    // Part of the crate and checked by tests; unreadable would mean no
    // table, and a command without a table is refused, never let through.
    let file: AwsFile =
        serde_json::from_str(include_str!("../tables/aws.json")).unwrap_or(AwsFile {
            global: HashMap::new(),
            operations: HashMap::new(),
        });
    let global = file
        .global
        .iter()
        .map(|(k, v)| (k.clone(), aws_option(v)))
        .collect();
    let operations = file
        .operations
        .into_iter()
        .map(|(path, args)| {
            let mut positionals: Vec<String> = Vec::new();
            let mut options = Options::default();
            let mut sorted: Vec<_> = args.into_iter().collect();
            sorted.sort_by(|a, b| a.0.cmp(&b.0));
            for (name, arg) in sorted {
                if arg.positional {
                    positionals.push(name);
                } else {
                    options.insert(name, aws_option(&arg));
                }
            }
            (path, (options, positionals))
        })
        .collect();
    AwsTables { global, operations }
});

#[derive(Deserialize, Default)]
struct GcloudFlag {
    #[serde(default)]
    value: bool,
    #[serde(default)]
    optional: bool,
    #[serde(default)]
    negatable: bool,
}

#[derive(Deserialize, Default)]
struct GcloudFile {
    #[serde(default)]
    global: HashMap<String, GcloudFlag>,
    #[serde(default)]
    operations: HashMap<String, HashMap<String, HashMap<String, GcloudFlag>>>,
}

fn gcloud_options(flags: &HashMap<String, GcloudFlag>) -> Options {
    let mut options = Options::default();
    for (name, flag) in flags {
        let info = if flag.value && flag.optional {
            OptionInfo {
                arity: Arity::Optional,
                ..OptionInfo::ONE
            }
        } else if flag.value {
            OptionInfo::ONE
        } else {
            OptionInfo::SWITCH
        };
        if flag.negatable {
            if let Some(bare) = name.strip_prefix("--") {
                options.insert(
                    format!("--no-{bare}"),
                    OptionInfo {
                        negates: Some(name.clone()),
                        ..OptionInfo::SWITCH
                    },
                );
            }
        }
        options.insert(name.clone(), info);
    }
    options
}

/// gcloud: global flags, and each command's flags per release track
/// (`ga`, `beta`, `alpha`). (gsutil's flags in the same file document its
/// commands; its operations are read by their specs.)
pub(crate) struct GcloudTables {
    pub(crate) global: Options,
    pub(crate) operations: foldhash::HashMap<String, foldhash::HashMap<String, Options>>,
}

pub(crate) static GCLOUD: LazyLock<GcloudTables> = LazyLock::new(|| {
    let file: GcloudFile =
        serde_json::from_str(include_str!("../tables/gcloud.json")).unwrap_or_default();
    GcloudTables {
        global: gcloud_options(&file.global),
        operations: file
            .operations
            .iter()
            .map(|(path, tracks)| {
                let tracks = tracks
                    .iter()
                    .map(|(track, flags)| (track.clone(), gcloud_options(flags)))
                    .collect();
                (path.clone(), tracks)
            })
            .collect(),
    }
});
