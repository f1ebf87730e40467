//! One cfg alias: `cloud_backend` is set when any feature that talks to a
//! cloud API (and so counts API calls and reads configuration) is on, so the
//! crate-private helpers only those backends use are not dead code elsewhere.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(cloud_backend)");
    let cloud = ["SQS", "SERVICEBUS", "PUBSUB", "DYNAMODB", "PRISMA"]
        .iter()
        .any(|f| std::env::var_os(format!("CARGO_FEATURE_{f}")).is_some());
    if cloud {
        println!("cargo::rustc-cfg=cloud_backend");
    }
}
