//! Prisma Cloud alerts: the notification in both published shapes (nested,
//! as the SQS/webhook integration documents it, and flat, as alert rules
//! send it) and the alert object of the Prisma Cloud API.
//!
//! [`model::PrismaAlert`](crate::model::PrismaAlert) keeps the alert's JSON
//! text next to a small index of the fields the engine reads (id, status,
//! account, region, script...), so parsing one costs little more than
//! validating it; [`PrismaAlert::details`](crate::model::PrismaAlert::details)
//! gives the full typed view ([`AlertDetails`]) on demand. The accessors look
//! in each place a value can be, so callers need not know which shape arrived.

pub(super) mod alert;
mod details;

pub use details::{
    Account, AlertDetails, AlertMetadata, CliScript, Policy, RemediationCli, Resource,
    ResourceValue,
};

/// The alert id Prisma Cloud uses for its test notification.
pub const TEST_ALERT_ID: &str = "T-0";

/// The `sender` of Prisma Cloud's test notification.
pub const TEST_SENDER: &str = "Test Notification";
