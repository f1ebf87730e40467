//! A local AWS Lambda Runtime API (the interface a custom runtime such as
//! `lambda_runtime` talks to), for running function binaries end to end.
//!
//! Implements the documented endpoints
//! (<https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html>):
//!
//! * `GET /2018-06-01/runtime/invocation/next` — long-polls for the next
//!   queued invocation; answers its payload with the headers
//!   `Lambda-Runtime-Aws-Request-Id`, `Lambda-Runtime-Deadline-Ms`,
//!   `Lambda-Runtime-Invoked-Function-Arn` and `Lambda-Runtime-Trace-Id`;
//! * `POST /2018-06-01/runtime/invocation/{id}/response` — 202, or 400
//!   (`InvalidRequestID`) for an id that is not outstanding;
//! * `POST /2018-06-01/runtime/invocation/{id}/error` — 202 (the
//!   `Lambda-Runtime-Function-Error-Type` header and the JSON body are
//!   recorded), or 400 as above;
//! * `POST /2018-06-01/runtime/init/error` — 202, recorded.
//!
//! Anything else is 404. HTTP/1.1 with keep-alive, `Content-Length` or
//! chunked request bodies.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// What the function posted back for one invocation (or at init).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Posted {
    /// `POST .../{id}/response`.
    Response {
        /// The response body.
        body: String,
    },
    /// `POST .../{id}/error`.
    Error {
        /// The `Lambda-Runtime-Function-Error-Type` header.
        error_type: Option<String>,
        /// The body (`{"errorType":..,"errorMessage":..}`).
        body: String,
    },
}

#[derive(Default)]
struct State {
    queue: VecDeque<(String, String, u64)>,
    outstanding: HashSet<String>,
    posted: HashMap<String, Posted>,
    init_errors: Vec<String>,
    polls: u64,
}

/// The runtime API server; stops when dropped.
pub struct RuntimeApi {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    queued: Arc<Notify>,
    posted: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The invoked function ARN the server reports.
pub const FUNCTION_ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:remediation-test";

impl RuntimeApi {
    /// Starts the server on a free loopback port.
    pub async fn start() -> RuntimeApi {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind runtime api");
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(Mutex::new(State::default()));
        let queued = Arc::new(Notify::new());
        let posted = Arc::new(Notify::new());
        let task = tokio::spawn({
            let state = Arc::clone(&state);
            let queued = Arc::clone(&queued);
            let posted = Arc::clone(&posted);
            async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let conn = Conn {
                        state: Arc::clone(&state),
                        queued: Arc::clone(&queued),
                        posted: Arc::clone(&posted),
                    };
                    tokio::spawn(async move {
                        let _ = conn.serve(stream).await;
                    });
                }
            }
        });
        RuntimeApi {
            addr,
            state,
            queued,
            posted,
            task,
        }
    }

    /// `host:port`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub fn host_port(&self) -> String {
        self.addr.to_string()
    }

    /// Queues an invocation with `payload` and `timeout` left; returns its request id.
    pub fn invoke(&self, request_id: &str, payload: &str, timeout: Duration) -> String {
        let deadline = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_millis() as u64
            + timeout.as_millis() as u64;
        self.state.lock().unwrap().queue.push_back((
            request_id.to_owned(),
            payload.to_owned(),
            deadline,
        ));
        self.queued.notify_one();
        request_id.to_owned()
    }

    /// Waits up to `limit` for what the function posts for `request_id`.
    pub async fn wait_for(&self, request_id: &str, limit: Duration) -> Option<Posted> {
        let give_up = tokio::time::Instant::now() + limit;
        loop {
            let notified = self.posted.notified();
            if let Some(p) = self.state.lock().unwrap().posted.get(request_id) {
                return Some(p.clone());
            }
            if tokio::time::timeout_at(give_up, notified).await.is_err() {
                return None;
            }
        }
    }

    /// Bodies posted to `/runtime/init/error`.
    pub fn init_errors(&self) -> Vec<String> {
        self.state.lock().unwrap().init_errors.clone()
    }

    /// How many `next` requests were received.
    pub fn polls(&self) -> u64 {
        self.state.lock().unwrap().polls
    }
}

struct Conn {
    state: Arc<Mutex<State>>,
    queued: Arc<Notify>,
    posted: Arc<Notify>,
}

struct Request {
    method: String,
    path: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

impl Conn {
    async fn serve(self, stream: TcpStream) -> std::io::Result<()> {
        let (read, mut write) = stream.into_split();
        let mut reader = BufReader::new(read);
        while let Some(request) = read_request(&mut reader).await? {
            let response = self.route(request).await;
            write.write_all(response.as_bytes()).await?;
            write.flush().await?;
        }
        Ok(())
    }

    async fn route(&self, r: Request) -> String {
        const PREFIX: &str = "/2018-06-01/runtime/";
        let Some(rest) = r.path.strip_prefix(PREFIX) else {
            return reply(404, &[], r#"{"errorType":"NotFound"}"#);
        };
        match (r.method.as_str(), rest) {
            ("GET", "invocation/next") => self.next().await,
            ("POST", "init/error") => {
                let body = String::from_utf8_lossy(&r.body).into_owned();
                self.state.lock().unwrap().init_errors.push(body);
                self.posted.notify_waiters();
                reply(202, &[], r#"{"status":"OK"}"#)
            }
            ("POST", path) => {
                let mut parts = path.splitn(3, '/');
                let (Some("invocation"), Some(id), Some(verb)) =
                    (parts.next(), parts.next(), parts.next())
                else {
                    return reply(404, &[], r#"{"errorType":"NotFound"}"#);
                };
                let body = String::from_utf8_lossy(&r.body).into_owned();
                let posted = match verb {
                    "response" => Posted::Response { body },
                    "error" => Posted::Error {
                        error_type: r.headers.get("lambda-runtime-function-error-type").cloned(),
                        body,
                    },
                    _ => return reply(404, &[], r#"{"errorType":"NotFound"}"#),
                };
                let mut s = self.state.lock().unwrap();
                if !s.outstanding.remove(id) {
                    return reply(
                        400,
                        &[],
                        r#"{"errorMessage":"Invalid request ID","errorType":"InvalidRequestID"}"#,
                    );
                }
                s.posted.insert(id.to_owned(), posted);
                drop(s);
                self.posted.notify_waiters();
                reply(202, &[], r#"{"status":"OK"}"#)
            }
            _ => reply(404, &[], r#"{"errorType":"NotFound"}"#),
        }
    }

    async fn next(&self) -> String {
        self.state.lock().unwrap().polls += 1;
        loop {
            let notified = self.queued.notified();
            if let Some((id, payload, deadline)) = {
                let mut s = self.state.lock().unwrap();
                let next = s.queue.pop_front();
                if let Some((id, _, _)) = &next {
                    s.outstanding.insert(id.clone());
                }
                next
            } {
                let deadline = deadline.to_string();
                let trace = format!("Root=1-00000000-{id};Sampled=0");
                return reply(
                    200,
                    &[
                        ("Lambda-Runtime-Aws-Request-Id", id.as_str()),
                        ("Lambda-Runtime-Deadline-Ms", deadline.as_str()),
                        ("Lambda-Runtime-Invoked-Function-Arn", FUNCTION_ARN),
                        ("Lambda-Runtime-Trace-Id", trace.as_str()),
                    ],
                    &payload,
                );
            }
            notified.await;
        }
    }
}

fn reply(status: u16, headers: &[(&str, &str)], body: &str) -> String {
    let reason = match status {
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        _ => "Not Found",
    };
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    out.push_str(body);
    out
}

async fn read_request<R: tokio::io::AsyncBufRead + Unpin>(
    reader: &mut R,
) -> std::io::Result<Option<Request>> {
    let mut line = String::new();
    if reader.read_line(&mut line).await? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let path = parts.next().unwrap_or_default().to_owned();
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).await? == 0 {
            return Ok(None);
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    let mut body = Vec::new();
    if headers
        .get("transfer-encoding")
        .is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
    {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).await?;
            let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16)
                .unwrap_or(0);
            let mut chunk = vec![0; n + 2];
            reader.read_exact(&mut chunk).await?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    } else if let Some(n) = headers
        .get("content-length")
        .and_then(|n| n.parse::<usize>().ok())
    {
        body = vec![0; n];
        reader.read_exact(&mut body).await?;
    }
    Ok(Some(Request {
        method,
        path,
        headers,
        body,
    }))
}
