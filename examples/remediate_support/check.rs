//! `remediate check`: the preflight of the worker's flags — the source, the
//! CLIs, every mapped AWS account, the dedup table, the guardrails file and
//! its store's table — as a table or JSON;
//! exit 1 when a check failed (README: "Preflight").

use remediation::executor::ProcessExecutor;
use remediation::preflight::{self, Check, Report};

/// What `remediate check` checks, from the worker's flags.
pub struct Setup<'a> {
    /// `--source`, if given (the bundled sample needs no check).
    pub source: Option<&'a str>,
    /// `--dedup-table`, if given.
    pub dedup_table: Option<&'a str>,
    /// `--guardrails FILE`, if given.
    pub guardrails: Option<&'a std::path::Path>,
    /// The executor the worker would run with, and the CLIs its contexts need.
    pub executor: &'a ProcessExecutor,
    pub clis: Vec<&'static str>,
    /// Every AWS account mapped to a profile.
    pub accounts: Vec<String>,
}

/// Runs every check of `setup`.
pub async fn run(setup: Setup<'_>) -> Report {
    let mut report = Report::new();
    if let Some(spec) = setup.source {
        report.push(match remediation::source::from_spec(spec).await {
            Ok(source) => {
                let caps = source.capabilities();
                source.close().await;
                Check::ok(
                    format!("source {spec}"),
                    format!("reachable; dead letters: {:?}", caps.dead_letter),
                )
            }
            Err(e) => Check::failed(format!("source {spec}"), e.to_string()),
        });
    }
    for program in &setup.clis {
        report.push(preflight::cli(setup.executor, program).await);
    }
    for account in &setup.accounts {
        report.push(preflight::aws_account(setup.executor, account).await);
    }
    if let Some(table) = setup.dedup_table {
        report.push(dedup_table(table).await);
    }
    if let Some(path) = setup.guardrails {
        guardrails(path, &mut report).await;
    }
    report
}

/// The guardrails file (it parses, its limits and selectors are valid) and
/// its shared store's table.
async fn guardrails(path: &std::path::Path, report: &mut Report) {
    use remediation::guardrails::{Guardrails, GuardrailsFile, MemoryGuardrails};
    let name = format!("guardrails {}", path.display());
    let file = match GuardrailsFile::from_path(path) {
        Ok(file) => file,
        Err(e) => return report.push(Check::failed(name, e.to_string())),
    };
    let valid = Guardrails::from_file(&file, std::sync::Arc::new(MemoryGuardrails::new()));
    report.push(match valid {
        Ok(_) => Check::ok(name, "valid"),
        Err(e) => Check::failed(name, e.to_string()),
    });
    if let Some(dynamo) = &file.store.dynamodb {
        report.push(guardrail_table(&dynamo.table).await);
    }
}

/// A store's table: there, active, keyed by `pk` alone.
#[cfg(feature = "dynamodb")]
async fn dedup_table(table: &str) -> Check {
    use remediation::engine::dedup_dynamodb::DynamoDedupBuilder;
    let builder = DynamoDedupBuilder::from_env().with_table(table);
    let verified = async { builder.build().await?.verify_table().await };
    table_check(format!("dedup table {table}"), verified.await)
}

/// The guardrail store's table, as [`dedup_table`].
#[cfg(feature = "dynamodb")]
async fn guardrail_table(table: &str) -> Check {
    use remediation::guardrails::DynamoDbGuardrails;
    let builder = DynamoDbGuardrails::builder().with_table(table);
    let verified = async { builder.build().await?.verify_table().await };
    table_check(format!("guardrail table {table}"), verified.await)
}

#[cfg(feature = "dynamodb")]
fn table_check(name: String, verified: remediation::Result<()>) -> Check {
    Check::from_result(name, verified.map(|()| "there, keyed by `pk`".to_owned()))
}

#[cfg(not(feature = "dynamodb"))]
async fn dedup_table(table: &str) -> Check {
    Check::failed(
        format!("dedup table {table}"),
        "needs the `dynamodb` cargo feature",
    )
}

#[cfg(not(feature = "dynamodb"))]
async fn guardrail_table(table: &str) -> Check {
    Check::failed(
        format!("guardrail table {table}"),
        "needs the `dynamodb` cargo feature",
    )
}
