//! A moto server with an SQS client, for setting queues up and inspecting
//! them (feature `sqs`).
#![allow(dead_code)]

use super::moto::{MotoServer, venv};
use aws_sdk_sqs::Client;
use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_sqs::types::{QueueAttributeName, SendMessageBatchRequestEntry};
use remediation::source::sqs::SqsSource;
use std::collections::HashMap;

/// A moto server and an SQS client for setting queues up and inspecting them.
pub struct Moto {
    pub server: MotoServer,
    pub client: Client,
}

impl Moto {
    pub async fn start() -> Moto {
        let server = MotoServer::start(&venv());
        let config = aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(server.endpoint())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
            .load()
            .await;
        Moto {
            client: Client::new(&config),
            server,
        }
    }

    pub fn endpoint(&self) -> String {
        self.server.endpoint()
    }

    /// A handle that can only send (for producer tasks that outlive a borrow).
    pub fn sender(client: Client) -> Sender {
        Sender { client }
    }

    pub async fn send_all(
        &self,
        url: &str,
        bodies: &[String],
        group: Option<&(dyn Fn(usize) -> String + Sync)>,
    ) {
        Moto::sender(self.client.clone())
            .send_all(url, bodies, group)
            .await;
    }

    pub async fn create_queue(&self, name: &str, attrs: &[(QueueAttributeName, String)]) -> String {
        let mut req = self.client.create_queue().queue_name(name);
        for (k, v) in attrs {
            req = req.attributes(k.clone(), v);
        }
        req.send()
            .await
            .expect("create queue")
            .queue_url()
            .expect("queue url")
            .to_owned()
    }

    pub async fn queue_arn(&self, url: &str) -> String {
        self.client
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .expect("queue attributes")
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
            .expect("QueueArn")
    }

    /// A queue whose redrive policy moves messages to a new DLQ after
    /// `max_receives` receives; returns (queue URL, DLQ URL).
    pub async fn create_redrive_pair(&self, name: &str, max_receives: u32) -> (String, String) {
        let dlq = self.create_queue(&format!("{name}-dlq"), &[]).await;
        let arn = self.queue_arn(&dlq).await;
        let policy =
            format!(r#"{{"deadLetterTargetArn":"{arn}","maxReceiveCount":"{max_receives}"}}"#);
        let queue = self
            .create_queue(name, &[(QueueAttributeName::RedrivePolicy, policy)])
            .await;
        (queue, dlq)
    }
}

/// Sends messages in batches of 10.
pub struct Sender {
    client: Client,
}

impl Sender {
    pub async fn send_all(
        &self,
        url: &str,
        bodies: &[String],
        group: Option<&(dyn Fn(usize) -> String + Sync)>,
    ) {
        for (chunk_no, chunk) in bodies.chunks(10).enumerate() {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, b)| {
                    let n = chunk_no * 10 + i;
                    let mut e = SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(b);
                    if let Some(group) = group {
                        e = e
                            .message_group_id(group(n))
                            .message_deduplication_id(format!("m{n}"));
                    }
                    e.build().expect("entry")
                })
                .collect();
            let out = self
                .client
                .send_message_batch()
                .queue_url(url)
                .set_entries(Some(entries))
                .send()
                .await
                .expect("send batch");
            assert!(out.failed().is_empty(), "send failed: {:?}", out.failed());
        }
    }
}

impl Moto {
    /// (visible, in flight, delayed) message counts.
    pub async fn depth(&self, url: &str) -> (u64, u64, u64) {
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::All)
            .send()
            .await
            .expect("queue attributes");
        let attrs = out.attributes().cloned().unwrap_or_default();
        let n = |k: QueueAttributeName| {
            attrs
                .get(&k)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        (
            n(QueueAttributeName::ApproximateNumberOfMessages),
            n(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
            n(QueueAttributeName::ApproximateNumberOfMessagesDelayed),
        )
    }

    /// Bodies and message attributes currently visible in `url`, without
    /// hiding them (visibility 0), so it can be called repeatedly.
    pub async fn peek(&self, url: &str) -> Vec<(String, HashMap<String, String>)> {
        let out = self
            .client
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .visibility_timeout(0)
            .message_attribute_names("All")
            .send()
            .await
            .expect("peek");
        out.messages()
            .iter()
            .map(|m| {
                let attrs = m
                    .message_attributes()
                    .map(|a| {
                        a.iter()
                            .filter_map(|(k, v)| Some((k.clone(), v.string_value()?.to_owned())))
                            .collect()
                    })
                    .unwrap_or_default();
                (m.body().unwrap_or_default().to_owned(), attrs)
            })
            .collect()
    }

    pub fn source(&self) -> remediation::source::sqs::SqsSourceBuilder {
        SqsSource::builder()
            .with_endpoint(self.endpoint())
            .with_region("us-east-1")
            .with_static_credentials("testing", "testing")
    }
}
