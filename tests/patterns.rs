//! Conformance table for the EventBridge event-pattern matcher, written from
//! the Amazon EventBridge user guide. Each group cites the section it follows:
//!
//! * EP = "Creating event patterns" / "Amazon EventBridge event patterns",
//!   <https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-event-patterns.html>
//! * CF = "Content filtering in Amazon EventBridge event patterns",
//!   <https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-event-patterns-content-based-filtering.html>
//! * OPS = "Comparison operators for use in event patterns",
//!   <https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-create-pattern-operators.html>
//! * ARR = "Arrays in Amazon EventBridge event patterns" ("Matching on multiple field values"),
//!   <https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-event-patterns-arrays.html>
//!
//! Where the guide is silent, the choice made is stated next to its cases:
//! exact numbers compare numerically; `anything-but` matches leaf values of
//! other types (a number is not among a list of strings); `exists` sees
//! through arrays (an empty array has no leaf, like an absent field); `$or`
//! needs two or more alternatives.

use remediation::plan::EventPattern;
use serde_json::Value;

/// (pattern, event, expected)
type Case = (&'static str, &'static str, bool);

const EC2: &str = r#"{"version":"0","id":"6a7e8feb-b491-4cf7-a9f1-bf3703467718",
  "detail-type":"EC2 Instance State-change Notification","source":"aws.ec2",
  "account":"111122223333","time":"2017-12-22T18:43:48Z","region":"us-west-1",
  "resources":["arn:aws:ec2:us-west-1:123456789012:instance/i-1234567890abcdef0"],
  "detail":{"instance-id":"i-1234567890abcdef0","state":"terminated"}}"#;

const CASES: &[Case] = &[
    // ---- EP "Values in event patterns" / "Example event and event pattern":
    // strings match exactly, case-sensitively; every pattern field must match (AND);
    // values in a field's array are alternatives (OR).
    (r#"{"source":["aws.ec2"]}"#, EC2, true),
    (r#"{"source":["aws.s3"]}"#, EC2, false),
    (r#"{"source":["AWS.EC2"]}"#, EC2, false),
    (r#"{"source":["aws.s3","aws.ec2"]}"#, EC2, true),
    (
        r#"{"source":["aws.ec2"],"detail-type":["EC2 Instance State-change Notification"]}"#,
        EC2,
        true,
    ),
    (
        r#"{"source":["aws.ec2"],"detail-type":["Other"]}"#,
        EC2,
        false,
    ),
    (r#"{"detail":{"state":["terminated"]}}"#, EC2, true),
    (r#"{"detail":{"state":["running","pending"]}}"#, EC2, false),
    (
        r#"{"detail":{"state":["terminated"],"instance-id":["i-1234567890abcdef0"]}}"#,
        EC2,
        true,
    ),
    (
        r#"{"detail":{"state":["terminated"],"instance-id":["i-other"]}}"#,
        EC2,
        false,
    ),
    (
        r#"{"account":["111122223333"],"region":["us-west-1"]}"#,
        EC2,
        true,
    ),
    (r#"{"region":["us-west-1 "]}"#, EC2, false),
    // A field the event lacks never matches an exact value.
    (r#"{"detail":{"missing":["x"]}}"#, EC2, false),
    (r#"{"nothere":{"deeper":["x"]}}"#, EC2, false),
    // Extra event fields are irrelevant.
    (
        r#"{"source":["aws.ec2"]}"#,
        r#"{"source":"aws.ec2","x":{"y":[1,2]},"z":null}"#,
        true,
    ),
    // ---- EP "Values in event patterns": numbers, true, false, null.
    (r#"{"n":[5]}"#, r#"{"n":5}"#, true),
    (r#"{"n":[5]}"#, r#"{"n":6}"#, false),
    (r#"{"n":[5]}"#, r#"{"n":"5"}"#, false),
    (r#"{"n":["5"]}"#, r#"{"n":5}"#, false),
    (r#"{"n":[300]}"#, r#"{"n":300.0}"#, true),
    (r#"{"n":[300]}"#, r#"{"n":3e2}"#, true),
    (r#"{"n":[-1.5]}"#, r#"{"n":-1.5}"#, true),
    (r#"{"n":[0]}"#, r#"{"n":-0.0}"#, true),
    (r#"{"b":[true]}"#, r#"{"b":true}"#, true),
    (r#"{"b":[true]}"#, r#"{"b":false}"#, false),
    (r#"{"b":[false]}"#, r#"{"b":false}"#, true),
    (r#"{"b":[true]}"#, r#"{"b":"true"}"#, false),
    (r#"{"b":["true"]}"#, r#"{"b":true}"#, false),
    // ---- EP "Matching null values and empty strings".
    (r#"{"v":[null]}"#, r#"{"v":null}"#, true),
    (r#"{"v":[null]}"#, r#"{"v":""}"#, false),
    (r#"{"v":[null]}"#, r#"{"w":1}"#, false),
    (r#"{"v":[""]}"#, r#"{"v":""}"#, true),
    (r#"{"v":[""]}"#, r#"{"v":null}"#, false),
    (r#"{"v":[""]}"#, r#"{"v":" "}"#, false),
    (r#"{"v":[""]}"#, r#"{"w":""}"#, false),
    (r#"{"v":["",null]}"#, r#"{"v":null}"#, true),
    (r#"{"v":["",null]}"#, r#"{"v":""}"#, true),
    // ---- ARR: if the event value is an array, the pattern matches when the
    // two arrays intersect (for operators: when any element matches).
    (
        r#"{"resources":["arn:aws:ec2:us-west-1:123456789012:instance/i-1234567890abcdef0"]}"#,
        EC2,
        true,
    ),
    (
        r#"{"resources":["arn:x","arn:y"]}"#,
        r#"{"resources":["arn:z","arn:y"]}"#,
        true,
    ),
    (
        r#"{"resources":["arn:x"]}"#,
        r#"{"resources":["arn:z","arn:y"]}"#,
        false,
    ),
    (r#"{"resources":["arn:x"]}"#, r#"{"resources":[]}"#, false),
    (r#"{"n":[2]}"#, r#"{"n":[1,2,3]}"#, true),
    (r#"{"n":[{"numeric":[">",10]}]}"#, r#"{"n":[1,20]}"#, true),
    (r#"{"n":[{"numeric":[">",10]}]}"#, r#"{"n":[1,2]}"#, false),
    (r#"{"s":[{"prefix":"ab"}]}"#, r#"{"s":["xx","abc"]}"#, true),
    (r#"{"s":["a"]}"#, r#"{"s":[["a"]]}"#, true),
    // Arrays of objects: the nested pattern matches within one element.
    (
        r#"{"a":{"b":["x"]}}"#,
        r#"{"a":[{"b":"y"},{"b":"x"}]}"#,
        true,
    ),
    (
        r#"{"a":{"b":["x"]}}"#,
        r#"{"a":[{"b":"y"},{"b":"z"}]}"#,
        false,
    ),
    (
        r#"{"a":{"b":["x"],"c":["y"]}}"#,
        r#"{"a":[{"b":"x","c":"y"}]}"#,
        true,
    ),
    (
        r#"{"a":{"b":["x"],"c":["y"]}}"#,
        r#"{"a":[{"b":"x","c":"n"},{"b":"n","c":"y"}]}"#,
        false,
    ),
    // ---- OPS "Comparison operators only work on leaf nodes": a value
    // condition on an object never matches.
    (r#"{"detail":["terminated"]}"#, EC2, false),
    (r#"{"detail":[{"prefix":""}]}"#, EC2, false),
    (r#"{"detail":[{"exists":true}]}"#, EC2, false),
    (r#"{"source":{"x":["aws.ec2"]}}"#, EC2, false),
    // ---- CF "Prefix matching".
    (r#"{"time":[{"prefix":"2017-12-22"}]}"#, EC2, true),
    (r#"{"time":[{"prefix":"2017-10-02"}]}"#, EC2, false),
    (r#"{"time":[{"prefix":"2017-12-22T18:43:48Z"}]}"#, EC2, true),
    (
        r#"{"time":[{"prefix":"2017-12-22T18:43:48Z!"}]}"#,
        EC2,
        false,
    ),
    (r#"{"time":[{"prefix":""}]}"#, EC2, true),
    (r#"{"region":[{"prefix":"us-"}]}"#, EC2, true),
    (r#"{"region":[{"prefix":"US-"}]}"#, EC2, false),
    (r#"{"n":[{"prefix":"1"}]}"#, r#"{"n":123}"#, false),
    (r#"{"n":[{"prefix":"n"}]}"#, r#"{"n":null}"#, false),
    (
        r#"{"region":[{"prefix":"eu-"},{"prefix":"us-"}]}"#,
        EC2,
        true,
    ),
    // ---- CF "Prefix matching while ignoring case".
    (
        r#"{"detail":{"service":[{"prefix":{"equals-ignore-case":"EventB"}}]}}"#,
        r#"{"detail":{"service":"eventbridge"}}"#,
        true,
    ),
    (
        r#"{"detail":{"service":[{"prefix":{"equals-ignore-case":"EventB"}}]}}"#,
        r#"{"detail":{"service":"EVENTBRIDGE"}}"#,
        true,
    ),
    (
        r#"{"detail":{"service":[{"prefix":{"equals-ignore-case":"EventB"}}]}}"#,
        r#"{"detail":{"service":"EvEnTb"}}"#,
        true,
    ),
    (
        r#"{"detail":{"service":[{"prefix":{"equals-ignore-case":"EventB"}}]}}"#,
        r#"{"detail":{"service":"Event"}}"#,
        false,
    ),
    (
        r#"{"detail":{"service":[{"prefix":{"equals-ignore-case":"EventB"}}]}}"#,
        r#"{"detail":{"service":"xEventB"}}"#,
        false,
    ),
    (
        r#"{"s":[{"prefix":{"equals-ignore-case":"ÄB"}}]}"#,
        r#"{"s":"äbc"}"#,
        true,
    ),
    // ---- CF "Suffix matching".
    (
        r#"{"FileName":[{"suffix":".png"}]}"#,
        r#"{"FileName":"image.png"}"#,
        true,
    ),
    (
        r#"{"FileName":[{"suffix":".png"}]}"#,
        r#"{"FileName":"image.PNG"}"#,
        false,
    ),
    (
        r#"{"FileName":[{"suffix":".png"}]}"#,
        r#"{"FileName":"image.png.txt"}"#,
        false,
    ),
    (
        r#"{"FileName":[{"suffix":".png"}]}"#,
        r#"{"FileName":".png"}"#,
        true,
    ),
    (
        r#"{"FileName":[{"suffix":".png"}]}"#,
        r#"{"FileName":"png"}"#,
        false,
    ),
    (
        r#"{"FileName":[{"suffix":""}]}"#,
        r#"{"FileName":"x"}"#,
        true,
    ),
    (
        r#"{"FileName":[{"suffix":"5"}]}"#,
        r#"{"FileName":25}"#,
        false,
    ),
    (
        r#"{"FileName":[{"suffix":".png"}]}"#,
        r#"{"Other":"a.png"}"#,
        false,
    ),
    // ---- CF "Suffix matching while ignoring case".
    (
        r#"{"detail":{"FileName":[{"suffix":{"equals-ignore-case":".png"}}]}}"#,
        r#"{"detail":{"FileName":"a.PNG"}}"#,
        true,
    ),
    (
        r#"{"detail":{"FileName":[{"suffix":{"equals-ignore-case":".png"}}]}}"#,
        r#"{"detail":{"FileName":"a.Png"}}"#,
        true,
    ),
    (
        r#"{"detail":{"FileName":[{"suffix":{"equals-ignore-case":".png"}}]}}"#,
        r#"{"detail":{"FileName":"a.png"}}"#,
        true,
    ),
    (
        r#"{"detail":{"FileName":[{"suffix":{"equals-ignore-case":".png"}}]}}"#,
        r#"{"detail":{"FileName":"a.jpg"}}"#,
        false,
    ),
    (
        r#"{"detail":{"FileName":[{"suffix":{"equals-ignore-case":".png"}}]}}"#,
        r#"{"detail":{"FileName":"PNG"}}"#,
        false,
    ),
    // ---- CF "Equals-ignore-case matching".
    (
        r#"{"detail-type":[{"equals-ignore-case":"ec2 instance state-change notification"}]}"#,
        EC2,
        true,
    ),
    (
        r#"{"detail-type":[{"equals-ignore-case":"EC2 INSTANCE STATE-CHANGE NOTIFICATION"}]}"#,
        EC2,
        true,
    ),
    (
        r#"{"detail-type":[{"equals-ignore-case":"ec2 instance state-change"}]}"#,
        EC2,
        false,
    ),
    (
        r#"{"s":[{"equals-ignore-case":"straße"}]}"#,
        r#"{"s":"STRAßE"}"#,
        true,
    ),
    (
        r#"{"s":[{"equals-ignore-case":"abc"}]}"#,
        r#"{"s":"abcd"}"#,
        false,
    ),
    (r#"{"s":[{"equals-ignore-case":""}]}"#, r#"{"s":""}"#, true),
    (
        r#"{"s":[{"equals-ignore-case":"true"}]}"#,
        r#"{"s":true}"#,
        false,
    ),
    // ---- CF "Matching using wildcards".
    (
        r#"{"EventBusArn":[{"wildcard":"arn:aws:events:us-east-1:*:event-bus/*"}]}"#,
        r#"{"EventBusArn":"arn:aws:events:us-east-1:123456789012:event-bus/default"}"#,
        true,
    ),
    (
        r#"{"EventBusArn":[{"wildcard":"arn:aws:events:us-east-1:*:event-bus/*"}]}"#,
        r#"{"EventBusArn":"arn:aws:events:us-west-2:123456789012:event-bus/default"}"#,
        false,
    ),
    (
        r#"{"f":[{"wildcard":"*.png"}]}"#,
        r#"{"f":"dir/a.png"}"#,
        true,
    ),
    (
        r#"{"f":[{"wildcard":"*.png"}]}"#,
        r#"{"f":"dir/a.png.bak"}"#,
        false,
    ),
    (r#"{"f":[{"wildcard":"dir/*"}]}"#, r#"{"f":"dir/"}"#, true),
    (r#"{"f":[{"wildcard":"*"}]}"#, r#"{"f":""}"#, true),
    (r#"{"f":[{"wildcard":"a*b*c"}]}"#, r#"{"f":"abbbc"}"#, true),
    (r#"{"f":[{"wildcard":"a*b*c"}]}"#, r#"{"f":"acb"}"#, false),
    (
        r#"{"f":[{"wildcard":"*lib*"}]}"#,
        r#"{"f":"/usr/lib/x"}"#,
        true,
    ),
    (r#"{"f":[{"wildcard":"abc"}]}"#, r#"{"f":"abc"}"#, true),
    (r#"{"f":[{"wildcard":"abc"}]}"#, r#"{"f":"abcd"}"#, false),
    (r#"{"f":[{"wildcard":"a\\*b"}]}"#, r#"{"f":"a*b"}"#, true),
    (r#"{"f":[{"wildcard":"a\\*b"}]}"#, r#"{"f":"axxb"}"#, false),
    (r#"{"f":[{"wildcard":"a\\\\b"}]}"#, r#"{"f":"a\\b"}"#, true),
    (r#"{"f":[{"wildcard":"A*"}]}"#, r#"{"f":"abc"}"#, false),
    (r#"{"f":[{"wildcard":"1*"}]}"#, r#"{"f":123}"#, false),
    // ---- CF "Anything-but matching": a string, a number, lists.
    (
        r#"{"detail":{"state":[{"anything-but":"initializing"}]}}"#,
        r#"{"detail":{"state":"running"}}"#,
        true,
    ),
    (
        r#"{"detail":{"state":[{"anything-but":"initializing"}]}}"#,
        r#"{"detail":{"state":"initializing"}}"#,
        false,
    ),
    (
        r#"{"detail":{"state":[{"anything-but":"initializing"}]}}"#,
        r#"{"detail":{"state":"INITIALIZING"}}"#,
        true,
    ),
    (
        r#"{"detail":{"state":[{"anything-but":"initializing"}]}}"#,
        r#"{"detail":{"other":"x"}}"#,
        false,
    ),
    (
        r#"{"detail":{"x-limit":[{"anything-but":123}]}}"#,
        r#"{"detail":{"x-limit":456}}"#,
        true,
    ),
    (
        r#"{"detail":{"x-limit":[{"anything-but":123}]}}"#,
        r#"{"detail":{"x-limit":123}}"#,
        false,
    ),
    (
        r#"{"detail":{"x-limit":[{"anything-but":123}]}}"#,
        r#"{"detail":{"x-limit":123.0}}"#,
        false,
    ),
    (
        r#"{"detail":{"x-limit":[{"anything-but":123}]}}"#,
        r#"{"detail":{"x-limit":"123"}}"#,
        true,
    ),
    (
        r#"{"detail":{"state":[{"anything-but":["stopped","overloaded"]}]}}"#,
        r#"{"detail":{"state":"running"}}"#,
        true,
    ),
    (
        r#"{"detail":{"state":[{"anything-but":["stopped","overloaded"]}]}}"#,
        r#"{"detail":{"state":"stopped"}}"#,
        false,
    ),
    (
        r#"{"detail":{"state":[{"anything-but":["stopped","overloaded"]}]}}"#,
        r#"{"detail":{"state":"overloaded"}}"#,
        false,
    ),
    (
        r#"{"detail":{"x-limit":[{"anything-but":[100,200,300]}]}}"#,
        r#"{"detail":{"x-limit":250}}"#,
        true,
    ),
    (
        r#"{"detail":{"x-limit":[{"anything-but":[100,200,300]}]}}"#,
        r#"{"detail":{"x-limit":200}}"#,
        false,
    ),
    (
        r#"{"s":[{"anything-but":"a"}]}"#,
        r#"{"s":["a","b"]}"#,
        true,
    ),
    (r#"{"s":[{"anything-but":"a"}]}"#, r#"{"s":["a"]}"#, false),
    (r#"{"s":[{"anything-but":"a"}]}"#, r#"{"s":[]}"#, false),
    (r#"{"s":[{"anything-but":"a"}]}"#, r#"{"s":null}"#, true),
    // CF "Anything-but matching" on prefixes ("Region is not in the US").
    (
        r#"{"detail":{"state":[{"anything-but":{"prefix":"init"}}]}}"#,
        r#"{"detail":{"state":"running"}}"#,
        true,
    ),
    (
        r#"{"detail":{"state":[{"anything-but":{"prefix":"init"}}]}}"#,
        r#"{"detail":{"state":"initializing"}}"#,
        false,
    ),
    (
        r#"{"detail":{"state":[{"anything-but":{"prefix":"init"}}]}}"#,
        r#"{"detail":{"state":"Initializing"}}"#,
        true,
    ),
    (
        r#"{"region":[{"anything-but":{"prefix":"us-"}}]}"#,
        EC2,
        false,
    ),
    (
        r#"{"region":[{"anything-but":{"prefix":"eu-"}}]}"#,
        EC2,
        true,
    ),
    // CF "Anything-but matching" on suffixes.
    (
        r#"{"detail":{"FileName":[{"anything-but":{"suffix":".txt"}}]}}"#,
        r#"{"detail":{"FileName":"a.png"}}"#,
        true,
    ),
    (
        r#"{"detail":{"FileName":[{"anything-but":{"suffix":".txt"}}]}}"#,
        r#"{"detail":{"FileName":"a.txt"}}"#,
        false,
    ),
    (
        r#"{"detail":{"FileName":[{"anything-but":{"suffix":".txt"}}]}}"#,
        r#"{"detail":{"FileName":"a.TXT"}}"#,
        true,
    ),
    // CF "Anything-but matching" ignoring case.
    (
        r#"{"detail":{"state":[{"anything-but":{"equals-ignore-case":"initializing"}}]}}"#,
        r#"{"detail":{"state":"INITIALIZING"}}"#,
        false,
    ),
    (
        r#"{"detail":{"state":[{"anything-but":{"equals-ignore-case":"initializing"}}]}}"#,
        r#"{"detail":{"state":"running"}}"#,
        true,
    ),
    (
        r#"{"detail":{"state":[{"anything-but":{"equals-ignore-case":["Stopped","overloaded"]}}]}}"#,
        r#"{"detail":{"state":"STOPPED"}}"#,
        false,
    ),
    (
        r#"{"detail":{"state":[{"anything-but":{"equals-ignore-case":["Stopped","overloaded"]}}]}}"#,
        r#"{"detail":{"state":"OverLoaded"}}"#,
        false,
    ),
    (
        r#"{"detail":{"state":[{"anything-but":{"equals-ignore-case":["Stopped","overloaded"]}}]}}"#,
        r#"{"detail":{"state":"running"}}"#,
        true,
    ),
    // CF "Anything-but matching" with wildcards.
    (
        r#"{"FilePath":[{"anything-but":{"wildcard":"*/lib/*"}}]}"#,
        r#"{"FilePath":"/usr/lib/libc.so"}"#,
        false,
    ),
    (
        r#"{"FilePath":[{"anything-but":{"wildcard":"*/lib/*"}}]}"#,
        r#"{"FilePath":"/usr/bin/ls"}"#,
        true,
    ),
    (
        r#"{"FilePath":[{"anything-but":{"wildcard":["*/lib/*","*/bin/*"]}}]}"#,
        r#"{"FilePath":"/usr/bin/ls"}"#,
        false,
    ),
    (
        r#"{"FilePath":[{"anything-but":{"wildcard":["*/lib/*","*/bin/*"]}}]}"#,
        r#"{"FilePath":"/etc/hosts"}"#,
        true,
    ),
    // ---- CF "Numeric matching": JSON numbers only, ranges with bounds.
    (
        r#"{"detail":{"c-count":[{"numeric":[">",0,"<=",5]}]}}"#,
        r#"{"detail":{"c-count":5}}"#,
        true,
    ),
    (
        r#"{"detail":{"c-count":[{"numeric":[">",0,"<=",5]}]}}"#,
        r#"{"detail":{"c-count":0}}"#,
        false,
    ),
    (
        r#"{"detail":{"c-count":[{"numeric":[">",0,"<=",5]}]}}"#,
        r#"{"detail":{"c-count":0.0001}}"#,
        true,
    ),
    (
        r#"{"detail":{"c-count":[{"numeric":[">",0,"<=",5]}]}}"#,
        r#"{"detail":{"c-count":5.0001}}"#,
        false,
    ),
    (
        r#"{"detail":{"c-count":[{"numeric":[">",0,"<=",5]}]}}"#,
        r#"{"detail":{"c-count":"3"}}"#,
        false,
    ),
    (
        r#"{"detail":{"d-count":[{"numeric":["<",10]}]}}"#,
        r#"{"detail":{"d-count":9.999}}"#,
        true,
    ),
    (
        r#"{"detail":{"d-count":[{"numeric":["<",10]}]}}"#,
        r#"{"detail":{"d-count":10}}"#,
        false,
    ),
    (
        r#"{"detail":{"d-count":[{"numeric":["<=",10]}]}}"#,
        r#"{"detail":{"d-count":10}}"#,
        true,
    ),
    (
        r#"{"detail":{"x-limit":[{"numeric":["=",3.018e2]}]}}"#,
        r#"{"detail":{"x-limit":301.8}}"#,
        true,
    ),
    (
        r#"{"detail":{"x-limit":[{"numeric":["=",3.018e2]}]}}"#,
        r#"{"detail":{"x-limit":301.81}}"#,
        false,
    ),
    (r#"{"n":[{"numeric":[">=",-5]}]}"#, r#"{"n":-5}"#, true),
    (r#"{"n":[{"numeric":[">=",-5]}]}"#, r#"{"n":-5.5}"#, false),
    (r#"{"n":[{"numeric":[">",-5]}]}"#, r#"{"n":-5}"#, false),
    (r#"{"n":[{"numeric":[">=",1,"<",2]}]}"#, r#"{"n":1}"#, true),
    (r#"{"n":[{"numeric":[">=",1,"<",2]}]}"#, r#"{"n":2}"#, false),
    (
        r#"{"n":[{"numeric":[">",100]}]}"#,
        r#"{"n":4999999999}"#,
        true,
    ),
    (r#"{"n":[{"numeric":[">",0]}]}"#, r#"{"n":null}"#, false),
    (r#"{"n":[{"numeric":[">",0]}]}"#, r#"{"n":true}"#, false),
    (r#"{"n":[{"numeric":[">",0]}]}"#, r#"{"m":1}"#, false),
    (
        r#"{"n":[{"numeric":["<",0]},{"numeric":[">",10]}]}"#,
        r#"{"n":11}"#,
        true,
    ),
    (
        r#"{"n":[{"numeric":["<",0]},{"numeric":[">",10]}]}"#,
        r#"{"n":5}"#,
        false,
    ),
    // ---- CF "IP address matching" (IPv4 and IPv6 CIDR blocks).
    (
        r#"{"detail":{"sourceIPAddress":[{"cidr":"10.0.0.0/24"}]}}"#,
        r#"{"detail":{"sourceIPAddress":"10.0.0.255"}}"#,
        true,
    ),
    (
        r#"{"detail":{"sourceIPAddress":[{"cidr":"10.0.0.0/24"}]}}"#,
        r#"{"detail":{"sourceIPAddress":"10.0.1.0"}}"#,
        false,
    ),
    (
        r#"{"detail":{"sourceIPAddress":[{"cidr":"10.0.0.0/24"}]}}"#,
        r#"{"detail":{"sourceIPAddress":"10.0.0.0"}}"#,
        true,
    ),
    (
        r#"{"detail":{"sourceIPAddress":[{"cidr":"10.0.0.0/8"}]}}"#,
        r#"{"detail":{"sourceIPAddress":"10.200.3.4"}}"#,
        true,
    ),
    (
        r#"{"detail":{"sourceIPAddress":[{"cidr":"192.168.1.7/32"}]}}"#,
        r#"{"detail":{"sourceIPAddress":"192.168.1.7"}}"#,
        true,
    ),
    (
        r#"{"detail":{"sourceIPAddress":[{"cidr":"192.168.1.7/32"}]}}"#,
        r#"{"detail":{"sourceIPAddress":"192.168.1.8"}}"#,
        false,
    ),
    (
        r#"{"detail":{"sourceIPAddress":[{"cidr":"0.0.0.0/0"}]}}"#,
        r#"{"detail":{"sourceIPAddress":"8.8.8.8"}}"#,
        true,
    ),
    (
        r#"{"detail":{"sourceIPAddress":[{"cidr":"10.0.0.0/24"}]}}"#,
        r#"{"detail":{"sourceIPAddress":"AWS Internal"}}"#,
        false,
    ),
    (
        r#"{"detail":{"sourceIPAddress":[{"cidr":"10.0.0.0/24"}]}}"#,
        r#"{"detail":{"sourceIPAddress":"iam.amazonaws.com"}}"#,
        false,
    ),
    (
        r#"{"detail":{"sourceIPAddress":[{"cidr":"2001:db8::/32"}]}}"#,
        r#"{"detail":{"sourceIPAddress":"2001:db8:1::ab"}}"#,
        true,
    ),
    (
        r#"{"detail":{"sourceIPAddress":[{"cidr":"2001:db8::/32"}]}}"#,
        r#"{"detail":{"sourceIPAddress":"2001:db9::1"}}"#,
        false,
    ),
    (
        r#"{"detail":{"sourceIPAddress":[{"cidr":"2001:db8::/32"}]}}"#,
        r#"{"detail":{"sourceIPAddress":"10.0.0.1"}}"#,
        false,
    ),
    (
        r#"{"detail":{"sourceIPAddress":[{"cidr":"10.0.0.0/8"}]}}"#,
        r#"{"detail":{"sourceIPAddress":"2001:db8::1"}}"#,
        false,
    ),
    (
        r#"{"detail":{"sourceIPAddress":[{"cidr":"::/0"}]}}"#,
        r#"{"detail":{"sourceIPAddress":"::1"}}"#,
        true,
    ),
    (
        r#"{"ip":[{"cidr":"10.0.0.0/8"}]}"#,
        r#"{"ip":["192.168.0.1","10.1.1.1"]}"#,
        true,
    ),
    // ---- CF "Exists matching": leaf fields only; false matches absence.
    (r#"{"detail":{"state":[{"exists":true}]}}"#, EC2, true),
    (r#"{"detail":{"state":[{"exists":false}]}}"#, EC2, false),
    (r#"{"detail":{"c-count":[{"exists":false}]}}"#, EC2, true),
    (r#"{"detail":{"c-count":[{"exists":true}]}}"#, EC2, false),
    (r#"{"nope":{"deeper":[{"exists":false}]}}"#, EC2, true),
    (r#"{"nope":{"deeper":[{"exists":true}]}}"#, EC2, false),
    (r#"{"v":[{"exists":true}]}"#, r#"{"v":null}"#, true),
    (r#"{"v":[{"exists":true}]}"#, r#"{"v":""}"#, true),
    (r#"{"v":[{"exists":true}]}"#, r#"{"v":[]}"#, false),
    (r#"{"v":[{"exists":false}]}"#, r#"{"v":[]}"#, true),
    (r#"{"v":[{"exists":true}]}"#, r#"{"v":{"w":1}}"#, false),
    (r#"{"v":[{"exists":false}]}"#, r#"{"v":{"w":1}}"#, true),
    (
        r#"{"detail":{"state":[{"exists":false}],"instance-id":[{"prefix":"i-"}]}}"#,
        EC2,
        false,
    ),
    (r#"{"v":["x",{"exists":false}]}"#, r#"{"w":1}"#, true),
    (r#"{"v":["x",{"exists":false}]}"#, r#"{"v":"x"}"#, true),
    (r#"{"v":["x",{"exists":false}]}"#, r#"{"v":"y"}"#, false),
    // ---- CF "Complex example with multiple matching".
    (
        r#"{"time":[{"prefix":"2017-12-22"}],"detail":{"state":[{"anything-but":"running"}],"instance-id":[{"prefix":"i-"}]},"resources":[{"wildcard":"*:instance/*"}]}"#,
        EC2,
        true,
    ),
    (
        r#"{"time":[{"prefix":"2017-12-22"}],"detail":{"state":[{"anything-but":"terminated"}],"instance-id":[{"prefix":"i-"}]}}"#,
        EC2,
        false,
    ),
    (
        r#"{"detail":{"location":[{"prefix":"us-"},{"anything-but":["us-east-1"]}]}}"#,
        r#"{"detail":{"location":"us-east-1"}}"#,
        true,
    ),
    (
        r#"{"detail":{"location":[{"prefix":"eu-"},{"anything-but":["us-east-1"]}]}}"#,
        r#"{"detail":{"location":"us-east-1"}}"#,
        false,
    ),
    // ---- CF "Complex example with $or matching".
    (
        r#"{"detail":{"$or":[{"c-count":[{"numeric":[">",0,"<=",5]}]},{"d-count":[{"numeric":["<",10]}]},{"x-limit":[{"numeric":["=",3.018e2]}]}]}}"#,
        r#"{"detail":{"c-count":3}}"#,
        true,
    ),
    (
        r#"{"detail":{"$or":[{"c-count":[{"numeric":[">",0,"<=",5]}]},{"d-count":[{"numeric":["<",10]}]},{"x-limit":[{"numeric":["=",3.018e2]}]}]}}"#,
        r#"{"detail":{"d-count":3}}"#,
        true,
    ),
    (
        r#"{"detail":{"$or":[{"c-count":[{"numeric":[">",0,"<=",5]}]},{"d-count":[{"numeric":["<",10]}]},{"x-limit":[{"numeric":["=",3.018e2]}]}]}}"#,
        r#"{"detail":{"x-limit":301.8}}"#,
        true,
    ),
    (
        r#"{"detail":{"$or":[{"c-count":[{"numeric":[">",0,"<=",5]}]},{"d-count":[{"numeric":["<",10]}]},{"x-limit":[{"numeric":["=",3.018e2]}]}]}}"#,
        r#"{"detail":{"c-count":9,"d-count":10,"x-limit":1}}"#,
        false,
    ),
    (
        r#"{"source":["aws.ec2"],"$or":[{"region":["us-east-1"]},{"detail":{"state":["terminated"]}}]}"#,
        EC2,
        true,
    ),
    (
        r#"{"source":["aws.s3"],"$or":[{"region":["us-east-1"]},{"detail":{"state":["terminated"]}}]}"#,
        EC2,
        false,
    ),
    (
        r#"{"$or":[{"region":["us-east-1"]},{"detail":{"state":["running"]}}]}"#,
        EC2,
        false,
    ),
    (
        r#"{"$or":[{"a":["1"]},{"$or":[{"b":["2"]},{"c":["3"]}]}]}"#,
        r#"{"c":"3"}"#,
        true,
    ),
    (
        r#"{"$or":[{"a":["1"]},{"$or":[{"b":["2"]},{"c":["3"]}]}]}"#,
        r#"{"c":"4"}"#,
        false,
    ),
    (
        r#"{"$or":[{"a":[{"exists":false}]},{"b":["2"]}]}"#,
        r#"{"a":"x","b":"2"}"#,
        true,
    ),
    (
        r#"{"$or":[{"a":[{"exists":false}]},{"b":["2"]}]}"#,
        r#"{"a":"x","b":"3"}"#,
        false,
    ),
    // ---- A CloudTrail event as EventBridge delivers it (EP "Example event").
    (
        r#"{"source":["aws.iam"],"detail-type":["AWS API Call via CloudTrail"],"detail":{"eventSource":["iam.amazonaws.com"],"eventName":[{"prefix":"Create"}],"userIdentity":{"type":["IAMUser"]}}}"#,
        r#"{"source":"aws.iam","detail-type":"AWS API Call via CloudTrail","detail":{"eventSource":"iam.amazonaws.com","eventName":"CreateUser","userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::123456789012:user/alice"}}}"#,
        true,
    ),
    (
        r#"{"source":["aws.iam"],"detail":{"userIdentity":{"type":[{"anything-but":"AssumedRole"}]}}}"#,
        r#"{"source":"aws.iam","detail":{"userIdentity":{"type":"AssumedRole"}}}"#,
        false,
    ),
    (
        r#"{"detail":{"userIdentity":{"arn":[{"wildcard":"arn:aws:iam::*:user/*"}]},"errorCode":[{"exists":false}]}}"#,
        r#"{"detail":{"userIdentity":{"arn":"arn:aws:iam::123456789012:user/alice"},"errorCode":"AccessDenied"}}"#,
        false,
    ),
    (
        r#"{"detail":{"requestParameters":{"securityGroupIds":[{"exists":false}]}}}"#,
        r#"{"detail":{"requestParameters":{"endpointName":"e","securityGroupIds":[]}}}"#,
        true,
    ),
];

/// Patterns EventBridge rejects, and the path the error must name.
const INVALID: &[(&str, &str)] = &[
    (r#"["aws.ec2"]"#, ""),
    (r#"{}"#, ""),
    (r#"{"source":"aws.ec2"}"#, "source"),
    (r#"{"source":5}"#, "source"),
    (r#"{"source":[]}"#, "source"),
    (r#"{"detail":{}}"#, "detail"),
    (r#"{"source":[["a"]]}"#, "source[0]"),
    (r#"{"source":[{}]}"#, "source[0]"),
    (r#"{"source":[{"prefix":"a","suffix":"b"}]}"#, "source[0]"),
    (r#"{"source":[{"regex":"a.*"}]}"#, "source[0].regex"),
    (r#"{"source":[{"prefix":5}]}"#, "source[0].prefix"),
    (
        r#"{"source":[{"prefix":{"equals-ignore-case":5}}]}"#,
        "source[0].prefix.equals-ignore-case",
    ),
    (
        r#"{"source":[{"prefix":{"anything-but":"x"}}]}"#,
        "source[0].prefix",
    ),
    (r#"{"source":[{"suffix":null}]}"#, "source[0].suffix"),
    (
        r#"{"source":[{"equals-ignore-case":["a"]}]}"#,
        "source[0].equals-ignore-case",
    ),
    (r#"{"source":[{"wildcard":"a**b"}]}"#, "source[0].wildcard"),
    (r#"{"source":[{"wildcard":"a\\b"}]}"#, "source[0].wildcard"),
    (r#"{"source":[{"wildcard":1}]}"#, "source[0].wildcard"),
    (
        r#"{"source":[{"anything-but":["a",1]}]}"#,
        "source[0].anything-but",
    ),
    (
        r#"{"source":[{"anything-but":[]}]}"#,
        "source[0].anything-but",
    ),
    (
        r#"{"source":[{"anything-but":true}]}"#,
        "source[0].anything-but",
    ),
    (
        r#"{"source":[{"anything-but":{"numeric":[">",1]}}]}"#,
        "source[0].anything-but.numeric",
    ),
    (
        r#"{"source":[{"anything-but":{"prefix":1}}]}"#,
        "source[0].anything-but.prefix",
    ),
    (
        r#"{"source":[{"anything-but":{"wildcard":"a**"}}]}"#,
        "source[0].anything-but.wildcard",
    ),
    (r#"{"n":[{"numeric":[">"]}]}"#, "n[0].numeric"),
    (r#"{"n":[{"numeric":[">",0,"<"]}]}"#, "n[0].numeric"),
    (r#"{"n":[{"numeric":["~",0]}]}"#, "n[0].numeric[0]"),
    (r#"{"n":[{"numeric":[">","0"]}]}"#, "n[0].numeric[1]"),
    (r#"{"n":[{"numeric":["<",5,">",0]}]}"#, "n[0].numeric"),
    (r#"{"n":[{"numeric":[">",5,"<",1]}]}"#, "n[0].numeric"),
    (r#"{"n":[{"numeric":[">",1,">",2]}]}"#, "n[0].numeric[2]"),
    (r#"{"n":[{"numeric":["=",1,"<",2]}]}"#, "n[0].numeric"),
    (r#"{"n":[{"numeric":[">",6e9]}]}"#, "n[0].numeric[1]"),
    (r#"{"n":[{"numeric":5}]}"#, "n[0].numeric"),
    (r#"{"ip":[{"cidr":"10.0.0.0"}]}"#, "ip[0].cidr"),
    (r#"{"ip":[{"cidr":"10.0.0.0/33"}]}"#, "ip[0].cidr"),
    (r#"{"ip":[{"cidr":"2001:db8::/129"}]}"#, "ip[0].cidr"),
    (r#"{"ip":[{"cidr":"10.0.0/8"}]}"#, "ip[0].cidr"),
    (r#"{"ip":[{"cidr":"10.0.0.0/-1"}]}"#, "ip[0].cidr"),
    (r#"{"e":[{"exists":"true"}]}"#, "e[0].exists"),
    (r#"{"$or":{"a":["1"]}}"#, "$or"),
    (r#"{"$or":[{"a":["1"]}]}"#, "$or"),
    (r#"{"$or":[{"a":["1"]},"b"]}"#, "$or[1]"),
    (
        r#"{"detail":{"$or":[{"a":["1"]},{"b":"2"}]}}"#,
        "detail.$or[1].b",
    ),
];

#[test]
fn conformance_table() {
    let mut failures = Vec::new();
    for (i, (pattern, event, expected)) in CASES.iter().enumerate() {
        let compiled = EventPattern::from_json(pattern)
            .unwrap_or_else(|e| panic!("case {i}: pattern {pattern} rejected: {e}"));
        let event: Value =
            serde_json::from_str(event).unwrap_or_else(|e| panic!("case {i}: event: {e}"));
        if compiled.matches(&event) != *expected {
            failures.push(format!(
                "case {i}: {pattern} vs {event}: expected {expected}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(CASES.len() >= 150, "only {} cases", CASES.len());
    // Both outcomes are well represented, so a matcher answering always one way fails.
    let trues = CASES.iter().filter(|c| c.2).count();
    assert!(trues > 50 && CASES.len() - trues > 50);
}

#[test]
fn invalid_patterns_are_rejected_naming_the_path() {
    let mut failures = Vec::new();
    for (pattern, path) in INVALID {
        match EventPattern::from_json(pattern) {
            Ok(_) => failures.push(format!("{pattern} was accepted")),
            Err(e) if e.path != *path => failures.push(format!(
                "{pattern}: error at `{}`, expected `{path}`: {e}",
                e.path
            )),
            Err(e) => {
                let text = e.to_string();
                assert!(text.contains("invalid event pattern"), "{text}");
                if !path.is_empty() {
                    assert!(text.contains(&format!("`{path}`")), "{text}");
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn one_compiled_pattern_matches_many_events() {
    let pattern = EventPattern::from_json(
        r#"{"detail":{"n":[{"numeric":[">=",0,"<",100]}],"s":[{"wildcard":"item-*"}]}}"#,
    )
    .unwrap();
    let mut matched = 0;
    for n in 0..1000 {
        let event: Value = serde_json::json!({"detail": {"n": n % 200, "s": format!("item-{n}")}});
        matched += usize::from(pattern.matches(&event));
    }
    assert_eq!(matched, 500);
}

/// The `match_pattern` example next to this test binary (`cargo test` builds examples).
fn match_pattern_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let bin = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>")
        .join("examples")
        .join("match_pattern");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo test` (which builds the examples)",
        bin.display()
    );
    bin
}

fn run_match_pattern(pattern: &str, input: &str) -> std::process::Output {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pattern.json");
    std::fs::write(&file, pattern).unwrap();
    let mut child = std::process::Command::new(match_pattern_binary())
        .arg(&file)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A pattern that does not compile makes the tool exit before it reads
    // stdin; the write then races its exit and may meet a closed pipe.
    let written = child.stdin.take().unwrap().write_all(input.as_bytes());
    if let Err(err) = written {
        assert_eq!(err.kind(), std::io::ErrorKind::BrokenPipe, "{err}");
    }
    child.wait_with_output().unwrap()
}

#[test]
fn match_pattern_prints_a_verdict_per_line() {
    let pattern = r#"{"source":["aws.iam"],"detail":{"eventName":[{"prefix":"Create"}]}}"#;
    let input = concat!(
        r#"{"source":"aws.iam","detail":{"eventName":"CreateUser"}}"#,
        "\n",
        r#"{"source":"aws.iam","detail":{"eventName":"GetUser"}}"#,
        "\n\n",
        "{not json\n",
        r#"{"source":"aws.iam","detail":{"eventName":"CreateRole"}}"#,
        "\n"
    );
    let out = run_match_pattern(pattern, input);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stdout, "true\nfalse\nerror\ntrue\n", "{stderr}");
    assert!(stderr.contains("line 4"), "{stderr}");
    assert_eq!(out.status.code(), Some(1));

    let out = run_match_pattern(r#"{"source":[{"prefix":["a"]}]}"#, "{}\n");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr.contains("source[0].prefix"), "{stderr}");
    assert!(out.stdout.is_empty());
}
