//! The typed key of a counted cloud API call: [`ApiCall`], written in
//! summaries as `backend.Operation` (`sqs.ReceiveMessage`).

/// One kind of cloud API call a component makes, counted by [`Stats`](super::Stats).
///
/// Every HTTP or RPC request sent counts, retries by the component included.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum ApiCall {
    /// SQS `ReceiveMessage`.
    SqsReceiveMessage,
    /// SQS `DeleteMessageBatch` (acks).
    SqsDeleteMessageBatch,
    /// SQS `ChangeMessageVisibility` (nack, extend, redrive release).
    SqsChangeMessageVisibility,
    /// SQS `ChangeMessageVisibilityBatch` (releasing held-back FIFO messages).
    SqsChangeMessageVisibilityBatch,
    /// SQS `SendMessage` (to a dead-letter queue).
    SqsSendMessage,
    /// SQS `GetQueueUrl` (a queue given by name).
    SqsGetQueueUrl,
    /// SQS `GetQueueAttributes` (the redrive policy, once).
    SqsGetQueueAttributes,
    /// Service Bus peek-lock receive (`POST .../messages/head`).
    ServiceBusPeekLock,
    /// Service Bus complete (`DELETE` the lock URI).
    ServiceBusComplete,
    /// Service Bus unlock (`PUT` the lock URI).
    ServiceBusUnlock,
    /// Service Bus lock renewal (`POST` the lock URI).
    ServiceBusRenewLock,
    /// Service Bus send (to a dead-letter queue).
    ServiceBusSend,
    /// Pub/Sub streaming pull stream opened.
    PubSubStreamingPull,
    /// Pub/Sub acknowledgement of one message.
    PubSubAcknowledge,
    /// Pub/Sub negative acknowledgement of one message (a nack, or a hold ending).
    PubSubModifyAckDeadline,
    /// Pub/Sub publish (to a dead-letter topic).
    PubSubPublish,
    /// Pub/Sub subscription lookup (its dead-letter policy, once).
    PubSubGetSubscription,
    /// DynamoDB `PutItem` (a claim).
    DynamoDbPutItem,
    /// DynamoDB `GetItem`.
    DynamoDbGetItem,
    /// DynamoDB `UpdateItem` (a lease renewed, a claim marked done).
    DynamoDbUpdateItem,
    /// DynamoDB `DeleteItem` (a claim released, a circuit closed).
    DynamoDbDeleteItem,
    /// DynamoDB `Scan` (one page: the open circuits listed).
    DynamoDbScan,
    /// Prisma Cloud `POST /login`.
    PrismaLogin,
    /// Prisma Cloud `GET /auth_token/extend`.
    PrismaAuthTokenExtend,
    /// Prisma Cloud `POST /api/v1/permission/alert/remediation`.
    PrismaRemediation,
}

impl ApiCall {
    /// Every kind, in declaration order.
    pub const ALL: [ApiCall; 25] = [
        ApiCall::SqsReceiveMessage,
        ApiCall::SqsDeleteMessageBatch,
        ApiCall::SqsChangeMessageVisibility,
        ApiCall::SqsChangeMessageVisibilityBatch,
        ApiCall::SqsSendMessage,
        ApiCall::SqsGetQueueUrl,
        ApiCall::SqsGetQueueAttributes,
        ApiCall::ServiceBusPeekLock,
        ApiCall::ServiceBusComplete,
        ApiCall::ServiceBusUnlock,
        ApiCall::ServiceBusRenewLock,
        ApiCall::ServiceBusSend,
        ApiCall::PubSubStreamingPull,
        ApiCall::PubSubAcknowledge,
        ApiCall::PubSubModifyAckDeadline,
        ApiCall::PubSubPublish,
        ApiCall::PubSubGetSubscription,
        ApiCall::DynamoDbPutItem,
        ApiCall::DynamoDbGetItem,
        ApiCall::DynamoDbUpdateItem,
        ApiCall::DynamoDbDeleteItem,
        ApiCall::DynamoDbScan,
        ApiCall::PrismaLogin,
        ApiCall::PrismaAuthTokenExtend,
        ApiCall::PrismaRemediation,
    ];

    /// The key written in summaries: `backend.Operation`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ApiCall::SqsReceiveMessage => "sqs.ReceiveMessage",
            ApiCall::SqsDeleteMessageBatch => "sqs.DeleteMessageBatch",
            ApiCall::SqsChangeMessageVisibility => "sqs.ChangeMessageVisibility",
            ApiCall::SqsChangeMessageVisibilityBatch => "sqs.ChangeMessageVisibilityBatch",
            ApiCall::SqsSendMessage => "sqs.SendMessage",
            ApiCall::SqsGetQueueUrl => "sqs.GetQueueUrl",
            ApiCall::SqsGetQueueAttributes => "sqs.GetQueueAttributes",
            ApiCall::ServiceBusPeekLock => "servicebus.PeekLock",
            ApiCall::ServiceBusComplete => "servicebus.Complete",
            ApiCall::ServiceBusUnlock => "servicebus.Unlock",
            ApiCall::ServiceBusRenewLock => "servicebus.RenewLock",
            ApiCall::ServiceBusSend => "servicebus.Send",
            ApiCall::PubSubStreamingPull => "pubsub.StreamingPull",
            ApiCall::PubSubAcknowledge => "pubsub.Acknowledge",
            ApiCall::PubSubModifyAckDeadline => "pubsub.ModifyAckDeadline",
            ApiCall::PubSubPublish => "pubsub.Publish",
            ApiCall::PubSubGetSubscription => "pubsub.GetSubscription",
            ApiCall::DynamoDbPutItem => "dynamodb.PutItem",
            ApiCall::DynamoDbGetItem => "dynamodb.GetItem",
            ApiCall::DynamoDbUpdateItem => "dynamodb.UpdateItem",
            ApiCall::DynamoDbDeleteItem => "dynamodb.DeleteItem",
            ApiCall::DynamoDbScan => "dynamodb.Scan",
            ApiCall::PrismaLogin => "prisma.login",
            ApiCall::PrismaAuthTokenExtend => "prisma.auth_token_extend",
            ApiCall::PrismaRemediation => "prisma.remediation",
        }
    }
}

impl std::fmt::Display for ApiCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_lists_every_kind_once_in_order() {
        for (i, call) in ApiCall::ALL.iter().enumerate() {
            assert_eq!(*call as usize, i, "{call}");
        }
        let mut keys: Vec<_> = ApiCall::ALL.iter().map(|c| c.as_str()).collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), ApiCall::ALL.len());
    }
}
