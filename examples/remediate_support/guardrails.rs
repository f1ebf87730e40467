//! The worker's guardrails: `--guardrails FILE` (the stages it adds, the
//! store they share, the identities discovered at start-up), the
//! `remediate circuit list|close` and `remediate report` subcommands.

use remediation::guardrails::{GuardrailStore, Guardrails, GuardrailsFile, MemoryGuardrails};
use remediation::pipeline::Stage;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

/// A failure that stops the worker.
pub type Failure = Box<dyn std::error::Error>;

/// The store a guardrails file names.
pub async fn store(file: &GuardrailsFile) -> Result<Arc<dyn GuardrailStore>, Failure> {
    match &file.store.dynamodb {
        None => Ok(Arc::new(MemoryGuardrails::new())),
        Some(dynamo) => dynamo_store(&dynamo.table).await,
    }
}

#[cfg(feature = "dynamodb")]
async fn dynamo_store(table: &str) -> Result<Arc<dyn GuardrailStore>, Failure> {
    use remediation::guardrails::DynamoDbGuardrails;
    let builder = DynamoDbGuardrails::builder().with_table(table);
    Ok(Arc::new(builder.build().await?))
}

#[cfg(not(feature = "dynamodb"))]
async fn dynamo_store(_table: &str) -> Result<Arc<dyn GuardrailStore>, Failure> {
    Err("guardrails `store: dynamodb` needs the `dynamodb` cargo feature".into())
}

/// The stages `--guardrails FILE` adds, in their order; the identities the
/// file asks to discover (`sts get-caller-identity` per profile) are found
/// now, and a discovery that fails stops the worker before it starts.
pub async fn stages(path: &Path) -> Result<Vec<Arc<dyn Stage>>, Failure> {
    let file = GuardrailsFile::from_path(path)?;
    let store = store(&file).await?;
    let mut guardrails = Guardrails::from_file(&file, store)?;
    let profiles = file
        .identities
        .as_ref()
        .map(|i| i.discover_profiles.clone())
        .unwrap_or_default();
    if !profiles.is_empty() {
        let env = remediation::guardrails::DiscoveryEnv::from_env();
        let arns = remediation::guardrails::discover_identities(&profiles, &env).await?;
        let mut own = guardrails.identities();
        for arn in &arns {
            own = own.identity(arn)?;
        }
        eprintln!(
            "remediate: ignoring events caused by the worker's own identities: {}",
            arns.join(", ")
        );
        guardrails = guardrails.with_identities(own);
    }
    Ok(guardrails.stages())
}

/// `remediate report --audit FILE [--json]`.
pub fn report(audit: &Path, json: bool) -> Result<(), Failure> {
    let report = remediation::guardrails::AuditReport::from_path(audit)?;
    if json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.render_text());
    }
    Ok(())
}

/// `remediate circuit list` / `remediate circuit close KEY`.
pub async fn circuit(path: Option<&Path>, close: Option<&str>) -> Result<(), Failure> {
    let path = path.ok_or("`remediate circuit` needs --guardrails FILE naming the shared store")?;
    let file = GuardrailsFile::from_path(path)?;
    if file.store.dynamodb.is_none() {
        return Err(
            "circuits in a worker's memory are seen only by that worker: \
                    give the guardrails file a `store: { dynamodb: { table: NAME } }`"
                .into(),
        );
    }
    let store = store(&file).await?;
    if let Some(key) = close {
        let was_open = remediation::guardrails::close_circuit(&*store, key).await?;
        println!(
            "{}",
            if was_open {
                format!("closed {key}: the plans it held run at their next delivery")
            } else {
                format!("{key} was not open")
            }
        );
        return Ok(());
    }
    let now = SystemTime::now();
    let circuits = remediation::guardrails::list_circuits(&*store).await?;
    if circuits.is_empty() {
        println!("no open circuit");
    }
    for (key, c) in circuits {
        let since = humantime::format_rfc3339_seconds(c.opened_at);
        let state = match c.until {
            Some(until) if !c.is_open(now) => format!(
                "cooled down at {}",
                humantime::format_rfc3339_seconds(until)
            ),
            Some(until) => format!("open until {}", humantime::format_rfc3339_seconds(until)),
            None => "open until closed".to_owned(),
        };
        println!("{key}\t{state}\tsince {since}\t{}", c.reason);
    }
    Ok(())
}
