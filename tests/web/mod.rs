//! What the web-app tests share: a running service on a fresh store with
//! the demo's data and a token per role, and a client that keeps cookies
//! like a browser does.

#![allow(dead_code)]

use std::collections::BTreeMap;

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::Router;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tower::ServiceExt;
use wijkbudget::auth::{create_token, Role};
use wijkbudget::http::{router, AppState};
use wijkbudget::service::Service;
use wijkbudget::store::Db;

use crate::common::{Backend, TestStore};

pub struct Tokens {
    pub finance: String,
    pub regisseur: String,
    pub council: String,
    pub auditor: String,
}

impl Tokens {
    pub fn of(&self, role: Role) -> &str {
        match role {
            Role::Finance => &self.finance,
            Role::Wijkregisseur => &self.regisseur,
            Role::Council => &self.council,
            Role::Auditor => &self.auditor,
        }
    }
}

/// The service with the demo loaded, driven through its router.
pub struct DemoApp {
    pub store: TestStore,
    pub db: Db,
    pub router: Router,
    pub tokens: Tokens,
    stop: watch::Sender<bool>,
    projector: JoinHandle<()>,
}

impl DemoApp {
    pub async fn start(backend: Backend) -> Self {
        let store = TestStore::new(backend).await;
        let Service { db, ledger, projector } = Service::open(&store.url).await.expect("the service opens");
        wijkbudget::demo::load(&ledger, |_, _| {}).await.expect("the demo loads");
        projector.catch_up(|_| {}).await.expect("the projector catches up");
        let (stop, stopped) = watch::channel(false);
        let projector = tokio::spawn(projector.run(stopped));
        let tokens = Tokens {
            finance: create_token(&db, Role::Finance, &[], "Fenna Financiën").await.unwrap(),
            regisseur: create_token(&db, Role::Wijkregisseur, &["oost-1223".into()], "Ward Regisseur").await.unwrap(),
            council: create_token(&db, Role::Council, &[], "Cor Raadslid").await.unwrap(),
            auditor: create_token(&db, Role::Auditor, &[], "Anna Auditor").await.unwrap(),
        };
        Self { store, db, router: router(AppState::new(ledger)), tokens, stop, projector }
    }

    pub async fn finish(self) {
        let _ = self.stop.send(true);
        let _ = self.projector.await;
        self.db.close().await;
        self.store.cleanup().await;
    }

    pub async fn head(&self) -> i64 {
        wijkbudget::store::repository::head(&self.db).await.unwrap().0
    }

    /// A browser with no cookies yet.
    pub fn browser(&self) -> Browser {
        Browser { router: self.router.clone(), cookies: BTreeMap::new() }
    }

    /// A browser signed in with this role's token.
    pub async fn signed_in(&self, role: Role) -> Browser {
        let mut browser = self.browser();
        browser.sign_in(self.tokens.of(role)).await.expect_status(303);
        browser
    }

    /// The API's JSON answer to a GET, as this role.
    pub async fn api(&self, role: Role, path: &str) -> serde_json::Value {
        let request = Request::get(format!("/api/v1{path}"))
            .header(header::AUTHORIZATION, format!("Bearer {}", self.tokens.of(role)))
            .body(Body::empty())
            .unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "GET {path}");
        let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        serde_json::from_slice(&body).unwrap()
    }
}

/// Keeps cookies between requests, as a browser does.
pub struct Browser {
    router: Router,
    pub cookies: BTreeMap<String, String>,
}

#[derive(Debug)]
pub struct Page {
    pub what: String,
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Page {
    #[track_caller]
    pub fn expect_status(&self, status: u16) -> &Self {
        assert_eq!(self.status.as_u16(), status, "{} answered {}: {}", self.what, self.status, self.body);
        self
    }

    pub fn location(&self) -> &str {
        self.headers.get(header::LOCATION).and_then(|v| v.to_str().ok()).unwrap_or("")
    }

    /// The value of a hidden input, such as the CSRF token.
    pub fn input_value(&self, name: &str) -> String {
        let marker = format!("name=\"{name}\" value=\"");
        let start = self.body.find(&marker).unwrap_or_else(|| panic!("{}: no input {name}", self.what)) + marker.len();
        self.body[start..].split('"').next().unwrap().to_string()
    }

    pub fn set_cookies(&self) -> Vec<String> {
        self.headers.get_all(header::SET_COOKIE).iter().map(|v| v.to_str().unwrap().to_string()).collect()
    }
}

impl Browser {
    pub async fn send(&mut self, method: Method, path: &str, form: Option<&[(&str, &str)]>) -> Page {
        match form {
            Some(fields) => {
                let body = Body::from(form_urlencode(fields));
                self.send_body(method, path, Some("application/x-www-form-urlencoded"), body).await
            }
            None => self.send_body(method, path, None, Body::empty()).await,
        }
    }

    /// Posts a form with a file, as `enctype="multipart/form-data"` sends it.
    pub async fn post_file(&mut self, path: &str, fields: &[(&str, &str)], file: (&str, &str, &[u8])) -> Page {
        const BOUNDARY: &str = "wijkbudget-test-boundary";
        let mut body = Vec::new();
        for (name, value) in fields {
            body.extend(
                format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").bytes(),
            );
        }
        let (name, file_name, bytes) = file;
        body.extend(
            format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{file_name}\"\r\nContent-Type: text/csv\r\n\r\n")
                .bytes(),
        );
        body.extend(bytes);
        body.extend(format!("\r\n--{BOUNDARY}--\r\n").bytes());
        let content_type = format!("multipart/form-data; boundary={BOUNDARY}");
        self.send_body(Method::POST, path, Some(&content_type), Body::from(body)).await
    }

    async fn send_body(&mut self, method: Method, path: &str, content_type: Option<&str>, body: Body) -> Page {
        let mut request = Request::builder().method(method.clone()).uri(path);
        if !self.cookies.is_empty() {
            let cookie = self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ");
            request = request.header(header::COOKIE, cookie);
        }
        if let Some(content_type) = content_type {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        let response = self.router.clone().oneshot(request.body(body).unwrap()).await.unwrap();
        let (parts, body) = response.into_parts();
        let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        let page = Page {
            what: format!("{method} {path}"),
            status: parts.status,
            headers: parts.headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        };
        for set in page.set_cookies() {
            let pair = set.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() || set.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_string(), value.to_string());
            }
        }
        page
    }

    /// The raw body of a GET, for a download.
    pub async fn get_bytes(&mut self, path: &str) -> Vec<u8> {
        let cookie = self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ");
        let request = Request::get(path).header(header::COOKIE, cookie).body(Body::empty()).unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "GET {path}");
        axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap().to_vec()
    }

    pub async fn get(&mut self, path: &str) -> Page {
        self.send(Method::GET, path, None).await
    }

    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        self.send(Method::POST, path, Some(form)).await
    }

    pub async fn sign_in(&mut self, token: &str) -> Page {
        let form = self.get("/inloggen").await;
        let csrf = form.input_value("csrf");
        self.post("/inloggen", &[("csrf", &csrf), ("token", token), ("terug", "/")]).await
    }
}

pub fn form_urlencode(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| {
            let enc = |s: &str| {
                s.bytes()
                    .map(|b| match b {
                        b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
                        b' ' => "+".to_string(),
                        _ => format!("%{b:02X}"),
                    })
                    .collect::<String>()
            };
            format!("{}={}", enc(k), enc(v))
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Euro as the pages show it, from the API's decimal string ("50000.00").
pub fn dutch_euro(api_amount: &str) -> String {
    let cents: i64 = api_amount.replace('.', "").parse().unwrap();
    wijkbudget::web::format::euro(cents)
}
