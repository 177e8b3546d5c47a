//! A minimal HTTP/1.1 client over one keep-alive connection, for the
//! benchmarks' requests and web-page timings.

use super::*;

// ---------------------------------------------------------------------------
// A minimal HTTP/1.1 client over one keep-alive connection
// ---------------------------------------------------------------------------

pub(crate) struct Http {
    pub(crate) addr: SocketAddr,
    pub(crate) stream: Option<TcpStream>,
    pub(crate) buf: Vec<u8>,
    /// A web-app session to send with every request, for timing pages.
    pub(crate) cookie: Option<String>,
}

pub(crate) fn find(haystack: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    haystack.get(from..)?.windows(needle.len()).position(|w| w == needle).map(|i| i + from)
}

impl Http {
    pub(crate) fn new(addr: SocketAddr) -> Self {
        Self { addr, stream: None, buf: Vec::with_capacity(64 * 1024), cookie: None }
    }

    /// Sends one request and reads the whole answer. A keep-alive connection
    /// that turns out to be closed is reopened once (requests here carry an
    /// Idempotency-Key where a repeat would matter).
    pub(crate) async fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> anyhow::Result<(u16, Vec<u8>)> {
        let mut req = Vec::with_capacity(256 + body.len());
        write!(req, "{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.addr)?;
        for (name, value) in headers {
            write!(req, "{name}: {value}\r\n")?;
        }
        if !body.is_empty() || method != "GET" {
            write!(req, "Content-Length: {}\r\n", body.len())?;
        }
        req.extend_from_slice(b"\r\n");
        req.extend_from_slice(body);
        for attempt in 0..2 {
            let reused = self.stream.is_some();
            if self.stream.is_none() {
                let stream =
                    TcpStream::connect(self.addr).await.with_context(|| format!("connecting to {}", self.addr))?;
                stream.set_nodelay(true)?;
                self.stream = Some(stream);
                self.buf.clear();
            }
            match self.exchange(&req).await {
                Ok(answer) => return Ok(answer),
                Err(err) => {
                    self.stream = None;
                    self.buf.clear();
                    if !(reused && attempt == 0) {
                        return Err(err);
                    }
                }
            }
        }
        unreachable!("the loop returns")
    }

    pub(crate) async fn read_more(&mut self) -> anyhow::Result<()> {
        let stream = self.stream.as_mut().context("no connection")?;
        if self.buf.capacity() - self.buf.len() < 16 * 1024 {
            self.buf.reserve(64 * 1024);
        }
        let n = stream.read_buf(&mut self.buf).await?;
        if n == 0 {
            bail!("the server closed the connection");
        }
        Ok(())
    }

    pub(crate) async fn exchange(&mut self, req: &[u8]) -> anyhow::Result<(u16, Vec<u8>)> {
        self.stream.as_mut().context("no connection")?.write_all(req).await?;
        let head_end = loop {
            if let Some(i) = find(&self.buf, 0, b"\r\n\r\n") {
                break i + 4;
            }
            self.read_more().await?;
        };
        let head = std::str::from_utf8(&self.buf[..head_end]).context("response head is not UTF-8")?.to_string();
        let mut lines = head.split("\r\n");
        let status: u16 = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .context("malformed status line")?;
        let (mut length, mut chunked, mut close) = (None, false, false);
        for line in lines {
            if let Some((name, value)) = line.split_once(':') {
                let (name, value) = (name.trim().to_ascii_lowercase(), value.trim().to_ascii_lowercase());
                match name.as_str() {
                    "content-length" => length = value.parse::<usize>().ok(),
                    "transfer-encoding" => chunked = value.contains("chunked"),
                    "connection" => close = value.contains("close"),
                    _ => {}
                }
            }
        }
        let body = if chunked {
            let mut body = Vec::new();
            let mut at = head_end;
            loop {
                let line_end = loop {
                    if let Some(i) = find(&self.buf, at, b"\r\n") {
                        break i;
                    }
                    self.read_more().await?;
                };
                let size_text =
                    std::str::from_utf8(&self.buf[at..line_end])?.split(';').next().unwrap_or("").trim().to_string();
                let size = usize::from_str_radix(&size_text, 16).context("malformed chunk size")?;
                at = line_end + 2;
                if size == 0 {
                    loop {
                        let end = loop {
                            if let Some(i) = find(&self.buf, at, b"\r\n") {
                                break i;
                            }
                            self.read_more().await?;
                        };
                        let empty = end == at;
                        at = end + 2;
                        if empty {
                            break;
                        }
                    }
                    break;
                }
                while self.buf.len() < at + size + 2 {
                    self.read_more().await?;
                }
                body.extend_from_slice(&self.buf[at..at + size]);
                at += size + 2;
            }
            self.buf.drain(..at);
            body
        } else if let Some(n) = length {
            while self.buf.len() < head_end + n {
                self.read_more().await?;
            }
            let body = self.buf[head_end..head_end + n].to_vec();
            self.buf.drain(..head_end + n);
            body
        } else {
            while self.read_more().await.is_ok() {}
            close = true;
            self.buf[head_end..].to_vec()
        };
        if close {
            self.stream = None;
            self.buf.clear();
        }
        Ok((status, body))
    }

    pub(crate) async fn get(&mut self, path: &str, auth: &str) -> anyhow::Result<(u16, Vec<u8>)> {
        match self.cookie.clone() {
            Some(cookie) => self.request("GET", path, &[("Authorization", auth), ("Cookie", &cookie)], b"").await,
            None => self.request("GET", path, &[("Authorization", auth)], b"").await,
        }
    }

    /// POSTs JSON and insists on 200 or 201.
    pub(crate) async fn post_ok(
        &mut self,
        path: &str,
        auth: &str,
        key: Option<&str>,
        body: &str,
    ) -> anyhow::Result<Vec<u8>> {
        let mut headers = vec![("Authorization", auth), ("Content-Type", "application/json")];
        if let Some(key) = key {
            headers.push(("Idempotency-Key", key));
        }
        let (status, answer) = self.request("POST", path, &headers, body.as_bytes()).await?;
        if status != 200 && status != 201 {
            bail!("POST {path} answered {status}: {}", String::from_utf8_lossy(&answer));
        }
        Ok(answer)
    }
}

/// Signs in to the web app as a browser would (the sign-in form, its cookie
/// and CSRF value, then the token) and returns the session's `Cookie` header.
pub(crate) async fn web_session(addr: SocketAddr, token: &str) -> anyhow::Result<String> {
    async fn exchange(addr: SocketAddr, request: String) -> anyhow::Result<String> {
        let mut stream = TcpStream::connect(addr).await?;
        stream.write_all(request.as_bytes()).await?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await?;
        Ok(String::from_utf8_lossy(&answer).into_owned())
    }
    let cookie_of = |answer: &str, name: &str| {
        answer
            .lines()
            .filter_map(|l| l.strip_prefix("set-cookie: ").or_else(|| l.strip_prefix("Set-Cookie: ")))
            .find_map(|c| c.strip_prefix(&format!("{name}=")).map(|v| v.split(';').next().unwrap_or("").to_string()))
    };
    let form = exchange(addr, format!("GET /inloggen HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")).await?;
    let form_cookie = cookie_of(&form, "wb_inloggen").context("the sign-in page sets no cookie")?;
    let marker = "name=\"csrf\" value=\"";
    let start = form.find(marker).context("the sign-in page has no CSRF value")? + marker.len();
    let csrf = form[start..].split('"').next().unwrap_or("");
    let body = format!("csrf={csrf}&token={token}&terug=%2F");
    let signed_in = exchange(
        addr,
        format!(
            "POST /inloggen HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nCookie: wb_inloggen={form_cookie}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    )
    .await?;
    let session = cookie_of(&signed_in, "wb_sessie").context("signing in gave no session")?;
    Ok(format!("wb_sessie={session}"))
}
