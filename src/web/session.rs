//! Signing in: a person trades their API token for a session, kept in an
//! HttpOnly, SameSite=Strict cookie. The token never appears in a URL or a
//! cookie; the server keeps it in memory and checks it again on every
//! request (through `auth::authenticate`, which remembers a token for at most
//! a second), so a revoked token ends its sessions: at once when revoked in
//! this process, within `auth::TOKEN_CACHE_TTL` when revoked by another.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};
use rand::RngCore;

use crate::auth::{authenticate, Caller};
use crate::http::AppState;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "wb_sessie";
/// The cookie that ties the sign-in form to the browser that asked for it.
pub const SIGN_IN_COOKIE: &str = "wb_inloggen";
/// A session ends after this long without a request...
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// ...and after this long in any case.
pub const MAX_AGE: Duration = Duration::from_secs(8 * 3600);
/// At most this many live sessions per process; the oldest go first.
pub const MAX_SESSIONS: usize = 10_000;

struct Session {
    token: String,
    csrf: String,
    started: Instant,
    last_seen: Instant,
}

impl Session {
    fn expired(&self, now: Instant) -> bool {
        now.duration_since(self.last_seen) > IDLE_TIMEOUT || now.duration_since(self.started) > MAX_AGE
    }
}

/// The sessions of this process. They live in memory only: a restart signs
/// everyone out, and with several instances a browser must keep talking to
/// the instance it signed in on.
#[derive(Default)]
pub struct Sessions {
    live: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    /// Starts a session for a token already checked; returns its cookie value.
    pub fn start(&self, token: String) -> String {
        let id = random_hex(32);
        let now = Instant::now();
        let mut live = self.live.lock().expect("sessions lock");
        live.retain(|_, s| !s.expired(now));
        if live.len() >= MAX_SESSIONS {
            if let Some(oldest) = live.iter().min_by_key(|(_, s)| s.last_seen).map(|(id, _)| id.clone()) {
                live.remove(&oldest);
            }
        }
        live.insert(id.clone(), Session { token, csrf: random_hex(24), started: now, last_seen: now });
        id
    }

    /// The token and CSRF token of a live session, refreshing its idle timer.
    fn touch(&self, id: &str) -> Option<(String, String)> {
        let now = Instant::now();
        let mut live = self.live.lock().expect("sessions lock");
        let session = live.get_mut(id)?;
        if session.expired(now) {
            live.remove(id);
            return None;
        }
        session.last_seen = now;
        Some((session.token.clone(), session.csrf.clone()))
    }

    pub fn end(&self, id: &str) {
        self.live.lock().expect("sessions lock").remove(id);
    }
}

/// A signed-in person: who they are, and the CSRF token their forms carry.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub caller: Caller,
    pub csrf: String,
    session_id: String,
}

impl Viewer {
    /// Whether a posted form's CSRF token is this session's.
    pub fn csrf_matches(&self, posted: &str) -> bool {
        constant_time_eq(self.csrf.as_bytes(), posted.as_bytes())
    }

    pub fn session_id(&self) -> &str {
        &self.session_id
    }
}

/// Pages for signed-in people only: anyone else is sent to the sign-in page,
/// which brings them back afterwards.
impl FromRequestParts<AppState> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let back = parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
        // A cookie that was sent but no longer works is cleared. One that was
        // not sent is left alone: a link from another site arrives without
        // the SameSite=Strict cookie, and clearing it would sign the person out.
        let to_sign_in = |reason: &str| {
            let target = format!("/inloggen?{}", query_string(&[("terug", &back), ("reden", reason)]));
            let mut response = Redirect::to(&target).into_response();
            if !reason.is_empty() {
                response.headers_mut().insert(header::SET_COOKIE, expired_cookie(SESSION_COOKIE));
            }
            response
        };
        let Some(id) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(to_sign_in(""));
        };
        let Some((token, csrf)) = state.web.sessions.touch(&id) else {
            return Err(to_sign_in("verlopen"));
        };
        match authenticate(state.ledger.db(), &token).await {
            Ok(Some(caller)) => Ok(Viewer { caller, csrf, session_id: id }),
            Ok(None) => {
                state.web.sessions.end(&id);
                Err(to_sign_in("ingetrokken"))
            }
            Err(err) => Err(super::pages::unavailable(err)),
        }
    }
}

/// A cookie's value from the request's `Cookie` headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_string())
        .filter(|value| !value.is_empty() && value.len() <= 128)
}

/// A `Set-Cookie` value that scripts cannot read and other sites cannot send.
pub fn session_cookie(name: &str, value: &str, max_age: Duration) -> HeaderValue {
    HeaderValue::from_str(&format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}", max_age.as_secs()))
        .expect("cookie values are hex")
}

pub fn expired_cookie(name: &str) -> HeaderValue {
    session_cookie(name, "", Duration::ZERO)
}

pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `key=value&...`, percent-encoded.
pub fn query_string(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn percent_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_ends_when_ended_and_its_id_is_unguessable() {
        let sessions = Sessions::default();
        let a = sessions.start("wb_a".into());
        let b = sessions.start("wb_a".into());
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert_eq!(sessions.touch(&a).map(|(t, _)| t), Some("wb_a".to_string()));
        sessions.end(&a);
        assert!(sessions.touch(&a).is_none());
        assert!(sessions.touch(&b).is_some());
    }

    #[test]
    fn an_idle_or_old_session_is_expired() {
        let now = Instant::now();
        let fresh = Session { token: String::new(), csrf: String::new(), started: now, last_seen: now };
        assert!(!fresh.expired(now));
        assert!(fresh.expired(now + IDLE_TIMEOUT + Duration::from_secs(1)));
        let busy = Session { last_seen: now + MAX_AGE, ..fresh };
        assert!(busy.expired(now + MAX_AGE + Duration::from_secs(1)));
    }

    #[test]
    fn cookies_are_read_by_name_and_csrf_compares_whole_tokens() {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_static("a=1; wb_sessie=abc; b=2"));
        assert_eq!(cookie(&headers, SESSION_COOKIE).as_deref(), Some("abc"));
        assert_eq!(cookie(&headers, "c"), None);
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(
            query_string(&[("terug", "/wijken/x?jaar=2022"), ("reden", "")]),
            "terug=%2Fwijken%2Fx%3Fjaar%3D2022"
        );
    }
}
