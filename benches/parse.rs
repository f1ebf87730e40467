//! Parsing throughput of the wire models against the floor of merely
//! validating the same JSON, and of streaming a CloudTrail log file.
//!
//! The corpus is generated deterministically in code: 1000 Prisma alerts
//! (flat, nested and API shapes, ~2 KB each), 1000 CloudTrail records
//! (~1.5 KB each, nested `requestParameters`) and an ~8 MB `Records` file.

use criterion::{BenchmarkId, Criterion, Throughput, black_box, criterion_group, criterion_main};
use remediation::model::cloudtrail::RecordSplitter;
use remediation::model::{CloudTrailRecord, PrismaAlert};
use serde_json::{Value, json};
use std::io::BufReader;

/// A small deterministic generator (64-bit LCG), so runs compare.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() as usize) % items.len()]
    }
    fn hex(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b"0123456789abcdef"[(self.next() % 16) as usize]))
            .collect()
    }
    fn account(&mut self) -> String {
        format!("{:012}", self.next() % 1_000_000_000_000)
    }
}

const REGIONS: &[&str] = &["us-east-1", "us-west-2", "eu-west-1", "ap-northeast-1"];
const SEVERITIES: &[&str] = &["low", "medium", "high", "critical"];

fn resource_data(rng: &mut Lcg) -> Value {
    json!({
        "vpcId": format!("vpc-{}", rng.hex(17)),
        "cidrBlock": "10.0.0.0/16",
        "state": "available",
        "isDefault": rng.next() % 2 == 0,
        "ownerId": rng.account(),
        "tags": [
            {"key": "Name", "value": format!("app-{}", rng.hex(6))},
            {"key": "team", "value": rng.pick(&["payments", "search", "infra"])}
        ],
        "cidrBlockAssociationSet": [{
            "cidrBlock": "10.0.0.0/16",
            "cidrBlockState": {"state": "associated"},
            "associationId": format!("vpc-cidr-assoc-{}", rng.hex(17))
        }],
        "securityGroupCount": rng.next() % 20,
        "subnetCount": rng.next() % 12
    })
}

fn flat_alert(rng: &mut Lcg, i: usize) -> Value {
    let region = rng.pick(REGIONS);
    let account = rng.account();
    let data = resource_data(rng);
    json!({
        "resourceId": format!("vpc-{}", rng.hex(17)),
        "alertRuleName": "auto-remediation",
        "accountName": format!("acct-{}", rng.hex(4)),
        "hasFinding": false,
        "resourceRegionId": region,
        "alertRemediationCli": if i % 3 == 0 { json!(null) } else {
            json!({"cliScript": format!("aws ec2 delete-vpc --vpc-id vpc-{} --region {region}", rng.hex(17)),
                   "description": "Deletes the VPC."})
        },
        "source": "Prisma Cloud",
        "cloudType": "aws",
        "complianceMetadata": null,
        "callbackUrl": format!("https://app.prismacloud.io/alerts/overview?filters#alert.id=P-{i}&timeType=to_now"),
        "alertId": format!("P-{}", 100_000 + i),
        "policyLabels": ["Network", "Prisma_Cloud"],
        "alertAttribution": null,
        "severity": rng.pick(SEVERITIES),
        "policyName": "AWS VPC allows unauthorized peering",
        "resource": {
            "data": data,
            "url": format!("https://console.aws.amazon.com/vpc/home?region={region}"),
            "rrn": format!("rrn::virtualNetwork:{region}:{account}:vpc-{}", rng.hex(8)),
            "cloudAccountGroups": [],
            "accountId": account,
            "resourceTags": {"Name": "app"},
            "regionId": region,
            "cloudType": "aws",
            "resourceApiName": "aws-ec2-describe-vpcs",
            "name": "app",
            "additionalInfo": null,
            "id": format!("vpc-{}", rng.hex(17)),
            "region": "AWS Virginia",
            "account": "prod",
            "resourceType": "VIRTUAL_NETWORK"
        },
        "resourceName": "app",
        "riskRating": "B",
        "resourceRegion": "AWS Virginia",
        "policyDescription": "This policy identifies VPCs which allow peering connections from accounts outside the organization, which can expose internal networks.",
        "policyRecommendation": "1. Sign in to the AWS console\n2. Open the VPC dashboard\n3. Remove the unauthorized peering connection.",
        "accountId": account,
        "resourceConfig": data,
        "policyId": format!("{}-{}", rng.hex(8), rng.hex(4)),
        "resourceCloudService": "Amazon VPC",
        "alertTs": 1_580_000_000_000u64 + rng.next() % 10_000_000,
        "findingSummary": null,
        "resourceType": "Virtual Network"
    })
}

fn nested_alert(rng: &mut Lcg, i: usize) -> Value {
    json!({
        "alertStatus": rng.pick(&["open", "resolved", "dismissed"]),
        "reason": "NEW_ALERT",
        "metadata": {"remediable": rng.next() % 2 == 0},
        "alertRuleName": "auto-remediation",
        "resource": {
            "resourceId": format!("arn:aws:iam::{}:user/u-{}", rng.account(), rng.hex(6)),
            "resourceTs": format!("{}", 1_600_000_000_000u64 + rng.next() % 1000),
            "resourceName": format!("u-{}", rng.hex(6))
        },
        "firstSeen": "1605104944614",
        "lastSeen": "1617799423260",
        "service": "Prisma Cloud",
        "alertTs": "1617799423260",
        "alertId": format!("I-{}", 200_000 + i),
        "region": "global",
        "account": {"cloudType": "aws", "name": "prod", "id": rng.account()},
        "policy": {
            "severity": rng.pick(SEVERITIES),
            "policyType": "iam",
            "name": "AWS entities with risky permissions",
            "policyTs": "1617799423260",
            "description": "This policy identifies AWS IAM permissions that are risky. Ensure that the AWS entities provisioned in your AWS account don't have a risky set of permissions to minimize security risks.",
            "recommendation": "Remediation for a user:\n1. Log in to the AWS console\n2. Navigate to the IAM service\n3. Click on Users\n4. Choose the relevant user\n5. Under 'Permissions policies', find the relevant policy according to the alert details and remove the risky actions\n----------------------------------------\nRemediation for a Compute instance that assumes a role:\n1. Log in to the AWS console\n2. Navigate to the compute service\n3. Find the role used by the compute instance\n4. Navigate to the IAM service\n5. Click on Roles\n6. Choose the relevant role\n7. Under 'Permissions policies', find the relevant policy and remove the risky actions\n----------------------------------------\nRemediation for a Resource-based Policy:\n1. Log in to the AWS console\n2. Navigate to the relevant service (for example, AWS S3)\n3. Find the resource-based policy of the resource\n4. Remove the risky actions according to the alert details",
            "id": format!("{}-{}-{}", rng.hex(8), rng.hex(4), rng.hex(12)),
            "labels": "[]"
        },
        "alertRuleId": format!("{}-{}", rng.hex(8), rng.hex(4))
    })
}

fn record(rng: &mut Lcg) -> Value {
    let account = rng.account();
    let region = rng.pick(REGIONS);
    let user = format!("user-{}", rng.hex(6));
    json!({
        "eventVersion": "1.08",
        "userIdentity": {
            "type": "AssumedRole",
            "principalId": format!("AROA{}:{user}", rng.hex(16).to_uppercase()),
            "arn": format!("arn:aws:sts::{account}:assumed-role/Admin/{user}"),
            "accountId": account,
            "accessKeyId": format!("ASIA{}", rng.hex(16).to_uppercase()),
            "sessionContext": {
                "sessionIssuer": {
                    "type": "Role",
                    "principalId": format!("AROA{}", rng.hex(16).to_uppercase()),
                    "arn": format!("arn:aws:iam::{account}:role/Admin"),
                    "accountId": account,
                    "userName": "Admin"
                },
                "webIdFederationData": {},
                "attributes": {"creationDate": "2024-07-10T16:05:11Z", "mfaAuthenticated": "false"}
            }
        },
        "eventTime": "2024-07-10T16:06:12Z",
        "eventSource": "ec2.amazonaws.com",
        "eventName": rng.pick(&["AuthorizeSecurityGroupIngress", "RunInstances", "CreateVpc", "ModifyInstanceAttribute"]),
        "awsRegion": region,
        "sourceIPAddress": format!("198.51.100.{}", rng.next() % 255),
        "userAgent": "aws-cli/2.15.0 Python/3.11.6 Linux/6.1.0 exe/x86_64.amzn.2023 prompt/off command/ec2.authorize-security-group-ingress",
        "requestParameters": {
            "groupId": format!("sg-{}", rng.hex(17)),
            "ipPermissions": {"items": [{
                "ipProtocol": "tcp",
                "fromPort": 22,
                "toPort": 22,
                "groups": {},
                "ipRanges": {"items": [{"cidrIp": "0.0.0.0/0", "description": "ssh"}]},
                "ipv6Ranges": {},
                "prefixListIds": {}
            }]}
        },
        "responseElements": {
            "requestId": format!("{}-{}", rng.hex(8), rng.hex(4)),
            "_return": true,
            "securityGroupRuleSet": {"items": [{
                "groupOwnerId": account,
                "groupId": format!("sg-{}", rng.hex(17)),
                "securityGroupRuleId": format!("sgr-{}", rng.hex(17)),
                "isEgress": false,
                "ipProtocol": "tcp",
                "fromPort": 22,
                "toPort": 22,
                "cidrIpv4": "0.0.0.0/0"
            }]}
        },
        "requestID": format!("{}-{}-{}", rng.hex(8), rng.hex(4), rng.hex(12)),
        "eventID": format!("{}-{}-{}", rng.hex(8), rng.hex(4), rng.hex(12)),
        "readOnly": false,
        "eventType": "AwsApiCall",
        "managementEvent": true,
        "recipientAccountId": account,
        "eventCategory": "Management",
        "tlsDetails": {
            "tlsVersion": "TLSv1.3",
            "cipherSuite": "TLS_AES_128_GCM_SHA256",
            "clientProvidedHostHeader": format!("ec2.{region}.amazonaws.com")
        }
    })
}

fn alerts() -> Vec<Vec<u8>> {
    let mut rng = Lcg(42);
    (0..1000)
        .map(|i| {
            let v = match i % 3 {
                0 | 1 => flat_alert(&mut rng, i),
                _ => nested_alert(&mut rng, i),
            };
            serde_json::to_vec(&v).unwrap()
        })
        .collect()
}

fn records() -> Vec<Vec<u8>> {
    let mut rng = Lcg(7);
    (0..1000)
        .map(|_| serde_json::to_vec(&record(&mut rng)).unwrap())
        .collect()
}

fn records_file(records: &[Vec<u8>], target: usize) -> Vec<u8> {
    let mut out = br#"{"Records":["#.to_vec();
    let mut first = true;
    'fill: loop {
        for r in records {
            if out.len() >= target {
                break 'fill;
            }
            if !first {
                out.push(b',');
            }
            first = false;
            out.extend_from_slice(r);
        }
    }
    out.extend_from_slice(br#"],"digest":{"s3Bucket":"b","s3Object":"o"}}"#);
    out
}

fn bytes(corpus: &[Vec<u8>]) -> u64 {
    corpus.iter().map(|b| b.len() as u64).sum()
}

fn parse(c: &mut Criterion) {
    let alerts = alerts();
    let records = records();
    let mut g = c.benchmark_group("parse");

    g.throughput(Throughput::Bytes(bytes(&alerts)));
    g.bench_function("prisma_typed", |b| {
        b.iter(|| {
            for a in &alerts {
                black_box(PrismaAlert::from_slice(black_box(a)).unwrap());
            }
        })
    });
    g.bench_function("prisma_validate", |b| {
        b.iter(|| {
            for a in &alerts {
                black_box(serde_json::from_slice::<serde::de::IgnoredAny>(black_box(a)).unwrap());
            }
        })
    });

    g.throughput(Throughput::Bytes(bytes(&records)));
    g.bench_function("cloudtrail_typed", |b| {
        b.iter(|| {
            for r in &records {
                black_box(CloudTrailRecord::from_slice(black_box(r)).unwrap());
            }
        })
    });
    g.bench_function("cloudtrail_validate", |b| {
        b.iter(|| {
            for r in &records {
                black_box(serde_json::from_slice::<serde::de::IgnoredAny>(black_box(r)).unwrap());
            }
        })
    });
    g.finish();

    let file = records_file(&records, 8 * 1024 * 1024);
    let mut g = c.benchmark_group("records");
    g.throughput(Throughput::Bytes(file.len() as u64));
    g.bench_with_input(BenchmarkId::from_parameter("stream"), &file, |b, file| {
        b.iter(|| {
            let reader = BufReader::with_capacity(64 * 1024, &file[..]);
            let n = RecordSplitter::new(reader).fold(0usize, |n, r| {
                black_box(r.unwrap());
                n + 1
            });
            black_box(n)
        })
    });
    g.finish();
}

criterion_group!(benches, parse);
criterion_main!(benches);
