//! A moto server (AWS emulator) on a free loopback port, started from the
//! Python venv that `scripts/test` creates, and killed when dropped.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The venv holding `moto[server]` and `awscli`: `$REMEDIATION_VENV`, or
/// `<crate>/.venv`. Panics with instructions if it is missing: a test that
/// needs it must fail, never pass silently.
pub fn venv() -> PathBuf {
    let venv = std::env::var_os("REMEDIATION_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv"));
    for tool in ["moto_server", "aws"] {
        let path = venv.join("bin").join(tool);
        assert!(
            path.is_file(),
            "{} is missing: run `scripts/test` (or `python3 -m venv {v} && {v}/bin/pip install 'moto[server]' awscli`), \
             or point REMEDIATION_VENV at a venv holding moto[server] and awscli",
            path.display(),
            v = venv.display()
        );
    }
    venv
}

/// A running moto server; killed on drop.
#[derive(Debug)]
pub struct MotoServer {
    child: Child,
    port: u16,
}

impl MotoServer {
    /// Starts `moto_server` from `venv` on a free port and waits until it answers.
    pub fn start(venv: &Path) -> MotoServer {
        Self::spawn(
            Command::new(venv.join("bin").join("moto_server")),
            Stdio::null(),
        )
        .wait_until_listening()
    }

    /// Starts moto handling one request at a time (`moto_serialized.py`).
    ///
    /// moto checks a DynamoDB write's condition and then writes, without a
    /// lock, so two concurrent conditional `PutItem`s on one key can both
    /// succeed; DynamoDB applies each conditional write atomically. Tests of
    /// concurrent claims need DynamoDB's guarantee, so they use this server.
    /// Panics if the wrapper did not take effect (a moto that changed how
    /// it starts must fail here, not silently run unserialized).
    pub fn start_serialized(venv: &Path) -> MotoServer {
        let mut python = Command::new(venv.join("bin").join("python"));
        python.args(["-c", include_str!("moto_serialized.py")]);
        let mut server = Self::spawn(python, Stdio::piped());
        let stdout = server.child.stdout.take().expect("piped stdout");
        let mut first = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut first)
            .expect("read the serialized moto_server's first line");
        assert!(
            first.starts_with("serialized moto_server on "),
            "moto_serialized.py did not wrap moto's server (moto changed?): {first:?}"
        );
        server.wait_until_listening()
    }

    /// Runs `command` (moto's server or a wrapper taking its arguments) on a
    /// free loopback port.
    fn spawn(mut command: Command, stdout: Stdio) -> MotoServer {
        let port = free_port();
        let child = command
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn moto_server");
        MotoServer { child, port }
    }

    fn wait_until_listening(self) -> MotoServer {
        let port = self.port;
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "moto_server did not start on port {port}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        self
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its base URL, for `AWS_ENDPOINT_URL`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port that was free a moment ago (bind port 0, read it, release it).
pub fn free_port() -> u16 {
    TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .expect("bind a free port")
        .port()
}

/// Runs the venv's real aws CLI against `moto` with the dummy credentials,
/// outside any executor (test set-up); panics unless it succeeds. Returns stdout.
pub fn aws_cli(venv: &Path, moto: &MotoServer, args: &[&str]) -> String {
    let output = Command::new(venv.join("bin").join("aws"))
        .args(["--endpoint-url", &moto.endpoint(), "--region", "us-east-1"])
        .args(args)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env_remove("AWS_PROFILE")
        .output()
        .expect("running the aws CLI");
    assert!(
        output.status.success(),
        "aws {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Everything moto holds, as JSON text (`GET /moto-api/data.json`).
pub fn dump(moto: &MotoServer) -> String {
    use std::io::{Read, Write};
    let mut stream = TcpStream::connect(("127.0.0.1", moto.port())).expect("connect to moto");
    write!(
        stream,
        "GET /moto-api/data.json HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .expect("request the moto dump");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .expect("read the moto dump");
    assert!(
        response.starts_with("HTTP/1.0 200") || response.starts_with("HTTP/1.1 200"),
        "moto dump: {}",
        response.lines().next().unwrap_or_default()
    );
    response
}

/// The environment a [`ProcessExecutor`](remediation::executor::ProcessExecutor)
/// needs to run the venv's real aws CLI against `endpoint` as profile
/// `remediator` (dummy credentials, written under `dir`): `PATH`,
/// `AWS_CONFIG_FILE`, `AWS_SHARED_CREDENTIALS_FILE`, `AWS_ENDPOINT_URL`.
#[allow(dead_code)]
pub fn remediator_env(venv: &Path, dir: &Path, endpoint: &str) -> Vec<(String, String)> {
    let config = dir.join("config");
    let credentials = dir.join("credentials");
    std::fs::write(&config, "[profile remediator]\nregion = us-east-1\n").expect("config");
    std::fs::write(
        &credentials,
        "[remediator]\naws_access_key_id = testing\naws_secret_access_key = testing\n",
    )
    .expect("credentials");
    let path = format!(
        "{}:{}",
        venv.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    vec![
        ("PATH".to_owned(), path),
        ("AWS_CONFIG_FILE".to_owned(), config.display().to_string()),
        (
            "AWS_SHARED_CREDENTIALS_FILE".to_owned(),
            credentials.display().to_string(),
        ),
        ("AWS_ENDPOINT_URL".to_owned(), endpoint.to_owned()),
    ]
}
