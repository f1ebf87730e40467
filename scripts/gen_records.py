#!/usr/bin/env python3
"""Writes a CloudTrail log file ({"Records":[...]}) of about SIZE_MB megabytes to PATH
and prints the number of records. Deterministic; streams, so it needs no memory."""
import json, sys

path, size_mb = sys.argv[1], int(sys.argv[2])
target = size_mb * 1024 * 1024
template = {
    "eventVersion": "1.08",
    "userIdentity": {"type": "IAMUser", "principalId": "AIDAEXAMPLE", "arn": "arn:aws:iam::123456789012:user/u",
                     "accountId": "123456789012", "accessKeyId": "AKIAIOSFODNN7EXAMPLE", "userName": "u",
                     "sessionContext": {"attributes": {"mfaAuthenticated": "false", "creationDate": "2023-11-14T12:00:00Z"}}},
    "eventTime": "2023-11-14T12:00:00Z", "eventSource": "iam.amazonaws.com", "eventName": "AttachUserPolicy",
    "awsRegion": "us-east-1", "sourceIPAddress": "198.51.100.7", "userAgent": "aws-cli/2.13.0 Python/3.11.4 Linux/6.1",
    "requestParameters": {"userName": "u", "policyArn": "arn:aws:iam::aws:policy/AdministratorAccess"},
    "responseElements": None, "requestID": "", "eventID": "", "readOnly": False, "eventType": "AwsApiCall",
    "managementEvent": True, "recipientAccountId": "123456789012", "eventCategory": "Management",
    "tlsDetails": {"tlsVersion": "TLSv1.3", "cipherSuite": "TLS_AES_128_GCM_SHA256", "clientProvidedHostHeader": "iam.amazonaws.com"},
}
written, n = 0, 0
with open(path, "w") as f:
    f.write('{"Records":[')
    while written < target:
        template["eventID"] = f"00000000-0000-4000-8000-{n:012d}"
        template["requestID"] = f"11111111-0000-4000-8000-{n:012d}"
        template["userIdentity"]["userName"] = f"user-{n % 5000}"
        s = ("," if n else "") + json.dumps(template, separators=(",", ":"))
        f.write(s)
        written += len(s)
        n += 1
    f.write("]}\n")
print(n)
