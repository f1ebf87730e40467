//! The batcher of the Prisma Cloud planner: coalesces the alert ids of
//! concurrent `plan` calls into remediation requests (v1: many ids per
//! request, grouped by policy; v2: one per alert), asks a refused batch
//! again alert by alert, and reads the API's answers leniently.

use super::client::Reply;
use super::error::PrismaError;
use super::{Answer, BACKEND, ENV_API_ENDPOINT, Lookup, RemediationApi, Remedy, Shared};
use reqwest::Method;
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;

type Result<T, E = PrismaError> = std::result::Result<T, E>;

/// Collects lookups for up to `batch_window` after the first one (or until a
/// group is full) and sends each group as one request; requests run
/// concurrently up to `max_concurrent_requests`. Ends when the planner is
/// dropped, after the requests in flight have answered.
pub(super) async fn run_batcher(shared: Arc<Shared>, mut lookups: mpsc::Receiver<Lookup>) {
    let permits = Arc::new(Semaphore::new(shared.max_concurrent_requests));
    let mut in_flight = JoinSet::new();
    'outer: loop {
        let first = tokio::select! {
            next = lookups.recv() => match next {
                Some(l) => l,
                None => break 'outer,
            },
            Some(_) = in_flight.join_next(), if !in_flight.is_empty() => continue,
        };
        let deadline = tokio::time::Instant::now() + shared.batch_window;
        let mut groups: HashMap<String, Vec<Lookup>> = HashMap::new();
        let mut closed = false;
        let add = |lookup: Lookup, groups: &mut HashMap<String, Vec<Lookup>>| {
            let key = match shared.api {
                RemediationApi::V1Batch => lookup.group.clone(),
                // One request per id: group by id, so duplicates share it.
                RemediationApi::V2PerAlert => lookup.id.clone(),
            };
            let group = groups.entry(key.clone()).or_default();
            group.push(lookup);
            let full = shared.api == RemediationApi::V1Batch
                && distinct_ids(group).len() >= shared.max_batch;
            full.then_some(key)
        };
        let dispatch = |group: Vec<Lookup>, in_flight: &mut JoinSet<()>| {
            let shared = Arc::clone(&shared);
            let permits = Arc::clone(&permits);
            in_flight.spawn(async move {
                let Ok(_permit) = permits.acquire_owned().await else {
                    return;
                };
                shared.resolve(group).await;
            });
        };
        if let Some(full) = add(first, &mut groups) {
            if let Some(group) = groups.remove(&full) {
                dispatch(group, &mut in_flight);
            }
        }
        loop {
            tokio::select! {
                biased;
                next = lookups.recv() => match next {
                    Some(l) => {
                        if let Some(full) = add(l, &mut groups) {
                            if let Some(group) = groups.remove(&full) {
                                dispatch(group, &mut in_flight);
                            }
                        }
                    }
                    None => {
                        closed = true;
                        break;
                    }
                },
                () = tokio::time::sleep_until(deadline) => break,
            }
        }
        for (_, group) in groups.drain() {
            dispatch(group, &mut in_flight);
        }
        if closed {
            break;
        }
    }
    while in_flight.join_next().await.is_some() {}
}

/// The distinct ids of a group, in arrival order.
fn distinct_ids(group: &[Lookup]) -> Vec<String> {
    let mut ids: Vec<String> = Vec::with_capacity(group.len());
    for l in group {
        if !ids.contains(&l.id) {
            ids.push(l.id.clone());
        }
    }
    ids
}

/// The v1 answer: `{"alertIdVsCliScript": {id: script}, "cliDescription": ...}`.
#[derive(Deserialize)]
struct V1Body {
    #[serde(default, rename = "alertIdVsCliScript")]
    scripts: Option<HashMap<String, serde_json::Value>>,
    #[serde(default, rename = "cliDescription")]
    description: Option<serde_json::Value>,
}

/// The v2 answer: `{"cliCommand": ..., "cliDescription": ...}`.
#[derive(Deserialize)]
struct V2Body {
    #[serde(default, rename = "cliCommand")]
    command: Option<serde_json::Value>,
    #[serde(default, rename = "cliDescription")]
    description: Option<serde_json::Value>,
}

/// A script as the API may spell it: a string, or an object carrying one.
fn script_text(value: &serde_json::Value) -> Option<String> {
    let text = match value {
        serde_json::Value::String(s) => s.as_str(),
        serde_json::Value::Object(o) => o
            .get("cliScript")
            .or_else(|| o.get("cliCommand"))
            .and_then(serde_json::Value::as_str)?,
        _ => return None,
    };
    (!text.trim().is_empty()).then(|| text.to_owned())
}

/// The description for `id`: one string for the whole answer, or one per id.
fn description_for(value: Option<&serde_json::Value>, id: &str) -> Option<String> {
    match value? {
        serde_json::Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        serde_json::Value::Object(o) => o.get(id).and_then(|v| v.as_str()).map(str::to_owned),
        _ => None,
    }
}

/// The outcome of one v1 request.
enum V1Outcome {
    Scripts(HashMap<String, Remedy>),
    BadRequest(String),
}

impl Shared {
    /// Answers every lookup of one group.
    async fn resolve(&self, group: Vec<Lookup>) {
        let ids = distinct_ids(&group);
        let mut answers: HashMap<String, Answer> = match self.api {
            RemediationApi::V1Batch => self.fetch_v1(&ids).await,
            RemediationApi::V2PerAlert => {
                let mut answers = HashMap::new();
                for id in ids {
                    let answer = self.fetch_v2(&id).await;
                    answers.insert(id, answer);
                }
                answers
            }
        };
        for lookup in group {
            let answer = answers.get(&lookup.id).cloned().unwrap_or_else(|| {
                Err(PrismaError::Unavailable(
                    "the alert was not asked for".into(),
                ))
            });
            // The caller may have gone away (cancelled); nothing to do then.
            let _ = lookup.reply.send(answer);
        }
        answers.clear();
    }

    /// Asks for `ids` in one request; a 400 for several ids asks again one by one.
    async fn fetch_v1(&self, ids: &[String]) -> HashMap<String, Answer> {
        match self.remediation_v1(ids).await {
            Ok(V1Outcome::Scripts(mut scripts)) => ids
                .iter()
                .map(|id| (id.clone(), Ok(scripts.remove(id))))
                .collect(),
            Ok(V1Outcome::BadRequest(why)) if ids.len() > 1 => {
                tracing::warn!(
                    backend = BACKEND,
                    ids = ids.len(),
                    "the API refused a batch (HTTP 400{why}); asking alert by alert"
                );
                self.client.stats.split();
                let mut answers = HashMap::new();
                for id in ids {
                    let single = std::slice::from_ref(id);
                    let answer = match self.remediation_v1(single).await {
                        Ok(V1Outcome::Scripts(mut scripts)) => Ok(scripts.remove(id)),
                        Ok(V1Outcome::BadRequest(why)) => Err(refused(id, &why)),
                        Err(e) => Err(e),
                    };
                    answers.insert(id.clone(), answer);
                }
                answers
            }
            Ok(V1Outcome::BadRequest(why)) => ids
                .iter()
                .map(|id| (id.clone(), Err(refused(id, &why))))
                .collect(),
            Err(e) => ids.iter().map(|id| (id.clone(), Err(e.clone()))).collect(),
        }
    }

    async fn remediation_v1(&self, ids: &[String]) -> Result<V1Outcome> {
        let url = self.client.url("api/v1/permission/alert/remediation")?;
        let body = serde_json::json!({ "alerts": ids });
        match self
            .client
            .call(Method::POST, &url, Some(&body), ids.len())
            .await?
        {
            Reply::Ok(bytes) => {
                let parsed: V1Body = serde_json::from_slice(&bytes).map_err(|e| {
                    self.client.stats.failed();
                    PrismaError::Unavailable(format!("unreadable remediation answer: {e}"))
                })?;
                let scripts = parsed.scripts.unwrap_or_default();
                let mut out = HashMap::new();
                for id in ids {
                    if let Some(script) = scripts.get(id).and_then(script_text) {
                        let description = description_for(parsed.description.as_ref(), id);
                        out.insert(
                            id.clone(),
                            Remedy {
                                script,
                                description,
                            },
                        );
                    }
                }
                Ok(V1Outcome::Scripts(out))
            }
            Reply::BadRequest(why) => Ok(V1Outcome::BadRequest(why)),
            Reply::NotFound(why) => Err(self.client.setup_failure(PrismaError::Config(format!(
                "no remediation endpoint at {url} (HTTP 404{why}): check {ENV_API_ENDPOINT}"
            )))),
        }
    }

    async fn fetch_v2(&self, id: &str) -> Answer {
        let mut url = self.client.url("iam/api/v2/alert/")?;
        match url.path_segments_mut() {
            Ok(mut segments) => {
                segments.pop_if_empty().push(id).push("remediation_command");
            }
            Err(()) => return Err(PrismaError::NoPath),
        }
        match self.client.call(Method::GET, &url, None, 1).await {
            Ok(Reply::Ok(bytes)) => {
                let parsed: V2Body = serde_json::from_slice(&bytes).map_err(|e| {
                    self.client.stats.failed();
                    PrismaError::Unavailable(format!("unreadable remediation answer: {e}"))
                })?;
                Ok(parsed
                    .command
                    .as_ref()
                    .and_then(script_text)
                    .map(|script| Remedy {
                        script,
                        description: description_for(parsed.description.as_ref(), id),
                    }))
            }
            Ok(Reply::NotFound(_)) => Ok(None),
            Ok(Reply::BadRequest(why)) => Err(refused(id, &why)),
            Err(e) => Err(e),
        }
    }
}

/// The API refused one alert: a permanent failure for that alert alone.
fn refused(id: &str, why: &str) -> PrismaError {
    PrismaError::Status {
        status: 400,
        message: format!("the Prisma Cloud API refused alert {id} (HTTP 400{why})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_and_descriptions_are_read_leniently() {
        assert_eq!(
            script_text(&serde_json::json!("aws s3 ls")).as_deref(),
            Some("aws s3 ls")
        );
        assert_eq!(
            script_text(&serde_json::json!({"cliScript": "aws s3 ls"})).as_deref(),
            Some("aws s3 ls")
        );
        assert_eq!(script_text(&serde_json::json!("  ")), None);
        assert_eq!(script_text(&serde_json::Value::Null), None);
        let per_id = serde_json::json!({"a": "for a"});
        assert_eq!(
            description_for(Some(&per_id), "a").as_deref(),
            Some("for a")
        );
        assert_eq!(description_for(Some(&per_id), "b"), None);
        let all = serde_json::json!("for all");
        assert_eq!(description_for(Some(&all), "b").as_deref(), Some("for all"));
    }
}
