//! A real `serve` process for the tests that need one, and a plain
//! HTTP/1.1 client for it: one request per connection.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A `serve` process, stopped however the test ends.
pub struct Server {
    child: Child,
    pub addr: String,
}

impl Server {
    /// Waits for the process to end by itself (a failpoint aborts it).
    pub fn wait_for_exit(&mut self) -> std::process::ExitStatus {
        self.child.wait().expect("the server process can be waited for")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn wijkbudget(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_wijkbudget")).args(args).env("RUST_LOG", "warn").output().expect("the binary runs")
}

pub async fn serve(database: &str, extra: &[&str]) -> Server {
    serve_with_env(database, extra, &[]).await
}

/// Like [`serve`], with environment variables set for the process (a failpoint, say).
pub async fn serve_with_env(database: &str, extra: &[&str], env: &[(&str, &str)]) -> Server {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    drop(listener);
    let child = Command::new(env!("CARGO_BIN_EXE_wijkbudget"))
        .args(["serve", "--listen", &addr, "--database", database])
        .args(extra)
        .envs(env.iter().copied())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        // WIJKBUDGET_TEST_SERVER_LOG=1 shows the server's log, to see why a test failed.
        .stderr(if std::env::var_os("WIJKBUDGET_TEST_SERVER_LOG").is_some() { Stdio::inherit() } else { Stdio::null() })
        .spawn()
        .expect("serve starts");
    let server = Server { child, addr };
    // Wait for the port, not for a time: start-up migrates and verifies.
    for _ in 0..600 {
        if TcpStream::connect(&server.addr).await.is_ok() {
            return server;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("serve never listened on {}", server.addr);
}

/// One answer, read to the end of the connection.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

pub async fn request(
    addr: &str,
    method: &str,
    path: &str,
    token: &str,
    body: Option<&str>,
    key: Option<&str>,
) -> Answer {
    let mut stream = TcpStream::connect(addr).await.expect("connects");
    let body = body.unwrap_or("");
    let mut req = format!(
        "{method} /api/v1{path} HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(key) = key {
        req.push_str(&format!("Idempotency-Key: {key}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    Answer { status, head: head.to_string(), body: body.to_string() }
}
