//! A TCP forwarder in front of a local server that can be cut and restored,
//! to show what a client does while its server is unreachable. While down,
//! open connections are closed and new ones are refused (the listener is
//! closed, so the port answers with a reset, as a stopped server does).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// The forwarder; stops when dropped.
pub struct TcpProxy {
    port: u16,
    target: SocketAddr,
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    acceptor: Option<JoinHandle<()>>,
    connections: Vec<JoinHandle<()>>,
}

impl TcpProxy {
    /// Forwards a free loopback port to `target`; starts up.
    pub async fn start(target: SocketAddr) -> TcpProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("proxy addr").port();
        let proxy = TcpProxy {
            port,
            target,
            inner: Arc::new(Mutex::new(Inner::default())),
        };
        proxy.serve(listener);
        proxy
    }

    fn serve(&self, listener: TcpListener) {
        let inner = Arc::clone(&self.inner);
        let target = self.target;
        let acceptor = tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    continue;
                };
                let conn = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                let mut i = inner.lock().unwrap();
                i.connections.retain(|c| !c.is_finished());
                i.connections.push(conn);
            }
        });
        self.inner.lock().unwrap().acceptor = Some(acceptor);
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Cuts every connection and stops listening.
    pub fn down(&self) {
        let mut i = self.inner.lock().unwrap();
        if let Some(a) = i.acceptor.take() {
            a.abort();
        }
        for c in i.connections.drain(..) {
            c.abort();
        }
    }

    /// Listens on the same port again.
    pub async fn up(&self) {
        // The aborted acceptor releases the port once its task is dropped.
        let mut tries = 0;
        let listener = loop {
            match TcpListener::bind(("127.0.0.1", self.port)).await {
                Ok(l) => break l,
                Err(e) if tries < 50 => {
                    tries += 1;
                    let _ = e;
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                Err(e) => panic!("proxy cannot listen on {} again: {e}", self.port),
            }
        };
        self.serve(listener);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.down();
    }
}
