//! The adapter's unit tests: event shapes and deadlines.

use super::invocation::eventbridge_body;
use super::*;

#[test]
fn eventbridge_detail_alert_is_unwrapped_cloudtrail_is_not() {
    let alert = br#"{"id":"ev-1","detail-type":"Prisma Cloud Alert","source":"prismacloud","detail":{"alertId":"P-1","status":"open"}}"#;
    let (id, body) = eventbridge_body(alert);
    assert_eq!(id, "ev-1");
    assert_eq!(&body[..], br#"{"alertId":"P-1","status":"open"}"#);
    let ct = br#"{"id":"ev-2","detail-type":"AWS API Call via CloudTrail","source":"aws.iam","detail":{"eventID":"e-1","eventName":"CreateUser"}}"#;
    let (id, body) = eventbridge_body(ct);
    assert_eq!(id, "ev-2");
    assert_eq!(&body[..], &ct[..]);
    let (id, body) = eventbridge_body(b"not json");
    assert_eq!((id.as_str(), &body[..]), ("eventbridge", &b"not json"[..]));
}

#[test]
fn deadline_margin_is_subtracted_and_never_negative() {
    let now = Instant::now();
    let soon = stop_at(
        SystemTime::now() + Duration::from_secs(60),
        Duration::from_secs(10),
    );
    let left = soon.saturating_duration_since(now);
    assert!(
        left > Duration::from_secs(45) && left < Duration::from_secs(51),
        "{left:?}"
    );
    let past = stop_at(
        SystemTime::now() - Duration::from_secs(5),
        Duration::from_secs(1),
    );
    assert!(past <= Instant::now());
}
