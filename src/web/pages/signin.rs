//! Signing in with an API token, and signing out.

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::html;
use serde::Deserialize;

use super::render;
use crate::auth::authenticate;
use crate::http::AppState;
use crate::web::components::{error_summary, layout, Field, FieldError, Section};
use crate::web::session::{
    cookie, expired_cookie, random_hex, session_cookie, Viewer, MAX_AGE, SESSION_COOKIE, SIGN_IN_COOKIE,
};

#[derive(Debug, Default, Deserialize)]
pub struct SignInQuery {
    terug: Option<String>,
    reden: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    terug: String,
}

/// Only a path of this app may be the page to return to, never another site.
fn safe_return(path: &str) -> &str {
    // Browsers drop tabs and line breaks from an address, so `/\t/evil`
    // would become `//evil`: only visible ASCII passes.
    let ok = path.starts_with('/')
        && !path.starts_with("//")
        && !path.contains('\\')
        && path.len() <= 500
        && path.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        path
    } else {
        "/"
    }
}

fn sign_in_page(status: StatusCode, notice: Option<&str>, errors: &[FieldError], back: &str) -> Response {
    // A fresh value ties this form to this browser (a double-submit cookie),
    // since there is no session yet to hold a CSRF token.
    let form_key = random_hex(24);
    let body = html! {
        h1 { "Inloggen" }
        @if let Some(notice) = notice { div class="notice" role="status" { p { (notice) } } }
        (error_summary(errors))
        p { "Log in met het token dat u van de afdeling Financiën kreeg. Het token bepaalt uw rol en welke wijken u ziet." }
        form method="post" action="/inloggen" novalidate {
            input type="hidden" name="csrf" value=(form_key);
            input type="hidden" name="terug" value=(safe_return(back));
            (Field { name: "token", label: "Token", hint: Some("Begint met wb_"), kind: "password", value: "", errors, extra: None }.render())
            button type="submit" class="button" { "Inloggen" }
        }
    };
    let mut response = (status, render(layout("Inloggen", None, Section::None, body))).into_response();
    response
        .headers_mut()
        .append(header::SET_COOKIE, session_cookie(SIGN_IN_COOKIE, &form_key, std::time::Duration::from_secs(3600)));
    response
}

pub async fn form(Query(q): Query<SignInQuery>) -> Response {
    let notice = match q.reden.as_deref() {
        Some("verlopen") => Some("Uw sessie is verlopen. Log opnieuw in."),
        Some("ingetrokken") => Some("Uw token is ingetrokken. Vraag de afdeling Financiën om een nieuw token."),
        Some("uitgelogd") => Some("U bent uitgelogd."),
        _ => None,
    };
    sign_in_page(StatusCode::OK, notice, &[], q.terug.as_deref().unwrap_or("/"))
}

pub async fn submit(State(state): State<AppState>, headers: HeaderMap, Form(f): Form<SignInForm>) -> Response {
    let expected = cookie(&headers, SIGN_IN_COOKIE).unwrap_or_default();
    if expected.is_empty() || expected != f.csrf {
        let error = FieldError {
            field: "token".into(),
            message: "Het inlogformulier was verlopen. Vul uw token opnieuw in.".into(),
        };
        return sign_in_page(StatusCode::BAD_REQUEST, None, &[error], &f.terug);
    }
    let token = f.token.trim();
    let refuse = |message: &str| {
        let error = FieldError { field: "token".into(), message: message.into() };
        sign_in_page(StatusCode::UNPROCESSABLE_ENTITY, None, &[error], &f.terug)
    };
    if token.is_empty() {
        return refuse("Vul uw token in.");
    }
    if token.len() > 200 {
        return refuse("Dit token is te lang; een token is 51 tekens en begint met wb_.");
    }
    match authenticate(state.ledger.db(), token).await {
        Ok(Some(_)) => {
            let id = state.web.sessions.start(token.to_string());
            let mut response = Redirect::to(safe_return(&f.terug)).into_response();
            response.headers_mut().append(header::SET_COOKIE, session_cookie(SESSION_COOKIE, &id, MAX_AGE));
            response.headers_mut().append(header::SET_COOKIE, expired_cookie(SIGN_IN_COOKIE));
            response
        }
        Ok(None) => refuse("Dit token kennen we niet, of het is ingetrokken. Controleer het token of vraag een nieuw."),
        Err(err) => super::unavailable(err),
    }
}

#[derive(Debug, Deserialize)]
pub struct SignOutForm {
    #[serde(default)]
    csrf: String,
}

pub async fn sign_out(State(state): State<AppState>, viewer: Viewer, Form(f): Form<SignOutForm>) -> Response {
    if !viewer.csrf_matches(&f.csrf) {
        return super::bad_request(&viewer, "Het formulier was verlopen. Probeer het opnieuw.");
    }
    state.web.sessions.end(viewer.session_id());
    let mut response = Redirect::to("/inloggen?reden=uitgelogd").into_response();
    response.headers_mut().append(header::SET_COOKIE, expired_cookie(SESSION_COOKIE));
    response
}

#[cfg(test)]
mod tests {
    use super::safe_return;

    #[test]
    fn only_own_paths_are_returned_to() {
        assert_eq!(safe_return("/wijken/oost-1223?jaar=2022"), "/wijken/oost-1223?jaar=2022");
        assert_eq!(safe_return("//evil.example/"), "/");
        assert_eq!(safe_return("https://evil.example/"), "/");
        assert_eq!(safe_return("/\\evil.example"), "/");
        assert_eq!(safe_return("/\t/evil.example"), "/");
        assert_eq!(safe_return("/\n/evil.example"), "/");
        assert_eq!(safe_return(""), "/");
    }
}
