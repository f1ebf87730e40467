//! The official Google Cloud Pub/Sub emulator (the Google Cloud SDK component
//! `pubsub-emulator`, a Java server) on a free loopback port, shared by the
//! tests of one binary that run at the same time and killed when the last of
//! them drops its handle.
//!
//! Found as `$PUBSUB_EMULATOR_LAUNCHER`, or under the SDK root that
//! `gcloud info` reports (`platform/pubsub-emulator/bin/cloud-pubsub-emulator`,
//! the launcher `gcloud beta emulators pubsub start` runs). A missing emulator
//! is a test failure with instructions, never a skip.

use std::io::Read;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// A running emulator; killed (with its process group) on drop.
#[derive(Debug)]
pub struct Emulator {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

static SHARED: Mutex<Weak<Emulator>> = Mutex::new(Weak::new());

/// The emulator the tests of this binary share, started if none is running.
pub fn shared() -> Arc<Emulator> {
    let mut slot = SHARED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(running) = slot.upgrade() {
        return running;
    }
    let started = Arc::new(Emulator::start());
    *slot = Arc::downgrade(&started);
    started
}

/// The emulator's launcher, or a panic saying how to install it.
pub fn launcher() -> PathBuf {
    if let Some(path) = std::env::var_os("PUBSUB_EMULATOR_LAUNCHER") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "PUBSUB_EMULATOR_LAUNCHER={} is not a file",
            path.display()
        );
        return path;
    }
    let out = Command::new("gcloud")
        .args([
            "info",
            "--format=value(installation.sdk_root)",
            "--verbosity=error",
        ])
        .stdin(Stdio::null())
        .output();
    let root = match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_owned(),
        Ok(o) => panic!(
            "`gcloud info` failed ({}): {}; the Pub/Sub tests need the Google Cloud SDK \
             with the pubsub-emulator component and Java (see scripts/test)",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => panic!(
            "cannot run `gcloud` ({e}): the Pub/Sub tests need the Google Cloud SDK with the \
             pubsub-emulator component (`gcloud components install pubsub-emulator`, or the \
             google-cloud-cli-pubsub-emulator package) and Java; or set PUBSUB_EMULATOR_LAUNCHER"
        ),
    };
    let path = PathBuf::from(root).join("platform/pubsub-emulator/bin/cloud-pubsub-emulator");
    assert!(
        path.is_file(),
        "the official Pub/Sub emulator is not installed ({} is missing): \
         `gcloud components install pubsub-emulator` (or the google-cloud-cli-pubsub-emulator \
         package); it also needs Java",
        path.display()
    );
    path
}

impl Emulator {
    /// Starts the emulator on a free port and waits until it serves.
    pub fn start() -> Emulator {
        let launcher = launcher();
        let dir = tempfile::tempdir().expect("temp dir");
        let log_path = dir.path().join("emulator.log");
        let log = std::fs::File::create(&log_path).expect("emulator log");
        let port = super::moto::free_port();
        let child = {
            use std::os::unix::process::CommandExt as _;
            Command::new(&launcher)
                .arg("--host=127.0.0.1")
                .arg(format!("--port={port}"))
                .current_dir(dir.path())
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log handle"))
                .stderr(log)
                // Its own process group: the launcher script and the JVM go together.
                .process_group(0)
                .spawn()
                .unwrap_or_else(|e| panic!("starting {}: {e}", launcher.display()))
        };
        let mut emulator = Emulator {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let mut text = String::new();
            if let Ok(mut f) = std::fs::File::open(&log_path) {
                let _ = f.read_to_string(&mut text);
            }
            if text.contains("Server started") && TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return emulator;
            }
            if let Ok(Some(status)) = emulator.child.try_wait() {
                panic!(
                    "the Pub/Sub emulator exited ({status}) before serving on port {port}:\n{text}"
                );
            }
            assert!(
                Instant::now() < deadline,
                "the Pub/Sub emulator did not start on port {port} within 90 s:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `127.0.0.1:PORT`, what `PUBSUB_EMULATOR_HOST` holds.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        // The whole group: the launcher script and the JVM it started.
        let _ = Command::new("kill")
            .args(["-TERM", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.wait();
    }
}
