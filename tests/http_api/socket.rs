//! Over a real socket: what only a real connection shows.

use super::*;

// ---------------------------------------------------------------------------
// 6. Over a real socket
// ---------------------------------------------------------------------------

struct RawResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl RawResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 GET on its own connection.
async fn raw_get(addr: SocketAddr, path: &str, extra: &[(&str, &str)]) -> RawResponse {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("the server accepts");
    let mut request =
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAccept: application/json\r\n");
    for (name, value) in extra {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(30), stream.read_to_end(&mut raw))
        .await
        .expect("the server answers")
        .unwrap();
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no header end in {raw}"));
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("status line {status_line}"));
    let headers =
        lines.filter_map(|l| l.split_once(':')).map(|(n, v)| (n.trim().to_string(), v.trim().to_string())).collect();
    RawResponse { status, headers, body: body.to_string() }
}

#[tokio::test]
async fn over_a_real_socket_answers_carry_a_request_id() {
    for backend in BACKENDS {
        let app = App::start(backend).await;
        seed(&app).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let service = app.router.clone();
        let server = tokio::spawn(async move {
            axum::serve(listener, service)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
        });

        let health = raw_get(addr, "/api/v1/health", &[]).await;
        assert_eq!(health.status, 200, "{}", health.body);
        assert!(health.body.contains("\"status\":\"ok\""), "{}", health.body);
        let id = health.header("x-request-id").unwrap_or_else(|| panic!("no x-request-id in {:?}", health.headers));
        assert!(!id.is_empty());

        let bearer = format!("Bearer {}", app.tokens.finance);
        let fund = raw_get(addr, &format!("/api/v1/funds/{FUND}"), &[("Authorization", &bearer)]).await;
        assert_eq!(fund.status, 200, "{}", fund.body);
        assert!(fund.body.contains("Herinrichting Wegaplein"), "{}", fund.body);
        let other_id = fund.header("x-request-id").unwrap_or_else(|| panic!("no x-request-id in {:?}", fund.headers));
        assert_ne!(other_id, id, "two requests got the same id");

        // A caller's own request id is passed back, also on a refusal.
        let refused = raw_get(addr, "/api/v1/funds", &[("x-request-id", "trace-abc-123")]).await;
        assert_eq!(refused.status, 401);
        assert_eq!(refused.header("x-request-id"), Some("trace-abc-123"));
        assert!(refused.header("content-type").is_some_and(|c| c == "application/problem+json"));

        let _ = stop.send(());
        server.await.unwrap().unwrap();
        app.finish().await;
    }
}
