//! Building the crate's example binaries from a test, with the test binary's
//! own feature selection (so after `cargo test --all-features` the build is a no-op).

use std::path::{Path, PathBuf};

/// Builds an example with this test binary's feature selection; returns its path.
pub async fn example_binary(name: &str) -> PathBuf {
    let features: Vec<&str> = [
        ("prisma", cfg!(feature = "prisma")),
        ("sqs", cfg!(feature = "sqs")),
        ("servicebus", cfg!(feature = "servicebus")),
        ("pubsub", cfg!(feature = "pubsub")),
        ("lambda", cfg!(feature = "lambda")),
        ("dynamodb", cfg!(feature = "dynamodb")),
    ]
    .into_iter()
    .filter_map(|(f, on)| on.then_some(f))
    .collect();
    let selection = if cfg!(feature = "full") {
        vec!["--all-features".to_owned()]
    } else {
        vec!["--features".to_owned(), features.join(",")]
    };
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = tokio::process::Command::new(cargo);
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy();
        if k.starts_with("CARGO_") && k != "CARGO_HOME" && k != "CARGO_TARGET_DIR" {
            build.env_remove(&*k);
        }
    }
    let built = build
        .args(["build", "--quiet", "--example", name])
        .args(&selection)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .await
        .expect("run cargo build");
    assert!(built.success(), "building example {name} failed");
    let exe = std::env::current_exe().expect("test exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("target dir")
        .join("examples")
        .join(name)
}
