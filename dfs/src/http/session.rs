//! Who a web request acts for: the logged-in user of a valid session cookie, else the
//! anonymous web user [`ANONYMOUS`] (`dr.who`, Hadoop's name for it).
//!
//! Logging in: a user's tools (`mrjob web`, `dfs web`) print a URL to `/login?token=...`
//! carrying a [`LoginToken`] (see [`crate::auth::web_token`]). Visiting it checks the token,
//! sets the session cookie (HttpOnly, so page scripts cannot read it; SameSite=Strict, so
//! another site's page cannot make the browser send it) and redirects to the page asked for,
//! without the token in the URL. A handler takes a [`Viewer`] to learn whom it acts for.
//!
//! Only pages of the user's own data (a task's logs) need a login; the rest stay readable by
//! anyone, as before. No route here changes anything but the browser's cookie.

use std::convert::Infallible;

use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use cookie::{Cookie, SameSite};
use maud::html;
use serde::Deserialize;

use super::page::{frame, PageError};
use crate::auth::web_token::{self, SESSION_LIFETIME_MS};
use crate::auth::{now_unix_ms, Authority, Credentials, LoginToken, Principal, Session};

/// Whom a request without a valid session acts for.
pub const ANONYMOUS: &str = "dr.who";
/// The session cookie's name (cookies are per host, not per port: one login serves every
/// daemon of a cluster on that host, since any member can check a session).
pub const COOKIE_NAME: &str = "mrjob_session";
/// Longest `next` path the login follows.
const MAX_NEXT_BYTES: usize = 2048;

/// What a web port needs to check logins: the cluster key, and the command that prints a
/// login URL for this port (shown to anonymous visitors of a page that needs a login).
#[derive(Clone)]
pub struct WebAuth {
    authority: Authority,
    login_hint: &'static str,
}

impl std::fmt::Debug for WebAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WebAuth({})", self.login_hint)
    }
}

impl WebAuth {
    /// Logins checked with `authority`; `login_hint` is the command that prints a login URL.
    pub fn new(authority: Authority, login_hint: &'static str) -> WebAuth {
        WebAuth {
            authority,
            login_hint,
        }
    }
}

/// The URL that logs a browser in to the web port at `addr` as `credentials` (for
/// [`web_token::LOGIN_TOKEN_LIFETIME_MS`]), then shows the page at path `next`.
pub fn login_url(addr: &str, credentials: &Credentials, next: &str) -> crate::Result<String> {
    let token = credentials.login_token(now_unix_ms())?;
    Ok(format!(
        "http://{addr}/login?token={}&next={}",
        web_token::encode(&token),
        super::page::query_value(next)
    ))
}

/// Prints a login URL on stdout (alone, for scripts) with a warning on stderr for `tool`'s
/// user, and opens it in the desktop's browser when `open` (xdg-open).
pub fn hand_out(tool: &str, url: &str, open: bool) {
    println!("{url}");
    eprintln!(
        "{tool}: this URL logs a browser in as you for {} hours; it works for {} minutes. \
         Anyone who opens it first acts as you on the web pages: keep it private.",
        SESSION_LIFETIME_MS / 3_600_000,
        web_token::LOGIN_TOKEN_LIFETIME_MS / 60_000
    );
    if open {
        if let Err(e) = std::process::Command::new("xdg-open").arg(url).status() {
            eprintln!("{tool}: could not open a browser (xdg-open: {e}); open the URL above");
        }
    }
}

/// Adds `/login` to `router`, and what its handlers' [`Viewer`]s need.
pub fn with_login(router: Router, auth: WebAuth) -> Router {
    router.route("/login", get(login)).layer(Extension(auth))
}

/// Whom a request acts for. See the module docs.
#[derive(Debug, Clone)]
pub struct Viewer {
    /// The logged-in principal; `None` for the anonymous user.
    pub principal: Option<Principal>,
    /// Why a session cookie the browser sent was not accepted (expired, forged).
    pub refused: Option<String>,
    /// The command that prints a login URL for this port.
    pub login_hint: &'static str,
}

impl Viewer {
    /// The user name the request acts as.
    pub fn user(&self) -> &str {
        self.principal.as_ref().map_or(ANONYMOUS, Principal::user)
    }

    /// The principal, or a 401 page saying how to log in to see `what`.
    pub fn require(&self, what: &str) -> Result<&Principal, PageError> {
        self.principal.as_ref().ok_or_else(|| PageError {
            status: StatusCode::UNAUTHORIZED,
            error: format!(
                "{what} can be seen only when logged in{}: run `{}` and open the URL it prints",
                self.refused
                    .as_deref()
                    .map_or(String::new(), |why| format!(" ({why})")),
                self.login_hint
            ),
            see: None,
        })
    }

    fn from_parts(parts: &Parts) -> Viewer {
        let Some(auth) = parts.extensions.get::<WebAuth>() else {
            return Viewer {
                principal: None,
                refused: None,
                login_hint: "(this port has no login)",
            };
        };
        let mut viewer = Viewer {
            principal: None,
            refused: None,
            login_hint: auth.login_hint,
        };
        let Some(value) = session_cookie(parts) else {
            return viewer;
        };
        let checked = web_token::decode::<Session>(&value, "session cookie")
            .and_then(|s| auth.authority.check_session(&s, now_unix_ms()));
        match checked {
            Ok(p) => viewer.principal = Some(p),
            Err(e) => viewer.refused = Some(e.to_string()),
        }
        viewer
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Viewer {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Viewer, Infallible> {
        Ok(Viewer::from_parts(parts))
    }
}

/// The value of the session cookie among the request's `Cookie` headers.
fn session_cookie(parts: &Parts) -> Option<String> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(std::result::Result::ok)
        .find(|c| c.name() == COOKIE_NAME)
        .map(|c| c.value().to_owned())
}

/// The query of `/login`.
#[derive(Debug, Deserialize)]
struct LoginQuery {
    token: Option<String>,
    next: Option<String>,
}

/// `next` when it is a path on this server; `/` otherwise, so a login link cannot send the
/// browser elsewhere (`//host` and `/\host` are other hosts to a browser).
fn local_path(next: Option<&str>) -> &str {
    match next {
        Some(p)
            if p.starts_with('/')
                && !p.starts_with("//")
                && p.len() <= MAX_NEXT_BYTES
                && !p.bytes().any(|b| b == b'\\' || b.is_ascii_control()) =>
        {
            p
        }
        _ => "/",
    }
}

async fn login(Extension(auth): Extension<WebAuth>, Query(q): Query<LoginQuery>) -> Response {
    let next = local_path(q.next.as_deref()).to_owned();
    let checked = q
        .token
        .as_deref()
        .ok_or_else(|| crate::Error::Unauthenticated("the login link has no token".into()))
        .and_then(|t| web_token::decode::<LoginToken>(t, "login token"))
        .and_then(|t| auth.authority.check_login(&t, now_unix_ms()));
    let principal = match checked {
        Ok(p) => p,
        Err(e) => return refused_login(&e.to_string(), auth.login_hint),
    };
    let session = auth.authority.session(principal.clone(), now_unix_ms());
    let cookie = Cookie::build((COOKIE_NAME, web_token::encode(&session)))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .max_age(cookie::time::Duration::milliseconds(
            SESSION_LIFETIME_MS as i64,
        ))
        .build();
    tracing::info!(user = principal.user(), "web login");
    let body = frame(
        "Logged in",
        &[],
        false,
        html! { p { "Logged in as " (principal.user()) ". Go to " a href=(next) { (next) } } },
    );
    let mut response = (
        StatusCode::SEE_OTHER,
        axum::response::Html(body.into_string()),
    )
        .into_response();
    let headers = response.headers_mut();
    // Both values are ASCII made here: the path was checked above, the cookie is hex.
    if let Ok(v) = HeaderValue::from_str(&next) {
        headers.insert(header::LOCATION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&cookie.to_string()) {
        headers.insert(header::SET_COOKIE, v);
    }
    no_store(headers);
    response
}

/// A refused login: 401 with the reason and how to get a fresh link.
fn refused_login(why: &str, hint: &str) -> Response {
    let body = html! {
        p.bad #refused { "This login link is refused: " (why) "." }
        p { "Run " code { (hint) } " and open the URL it prints (a login link is good for "
            (web_token::LOGIN_TOKEN_LIFETIME_MS / 60_000) " minutes)." }
    };
    let page = frame("Login refused", &[], false, body).into_string();
    let mut response = (StatusCode::UNAUTHORIZED, axum::response::Html(page)).into_response();
    no_store(response.headers_mut());
    response
}

/// Keeps a login answer out of caches, and the token out of any `Referer`.
fn no_store(headers: &mut axum::http::HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Key;

    #[test]
    fn login_redirects_only_to_local_paths() {
        assert_eq!(local_path(Some("/job/3")), "/job/3");
        assert_eq!(local_path(Some("/job/3/logs/a?x=1")), "/job/3/logs/a?x=1");
        for bad in [
            "//evil.example/",
            "http://evil.example/",
            "/\\evil",
            "job",
            "/a\nb",
        ] {
            assert_eq!(local_path(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(local_path(None), "/");
    }

    fn parts(cookie: Option<&str>, auth: Option<WebAuth>) -> Parts {
        let mut req = axum::http::Request::builder().uri("/x");
        if let Some(c) = cookie {
            req = req.header(header::COOKIE, c);
        }
        let (mut parts, ()) = req.body(()).unwrap().into_parts();
        if let Some(a) = auth {
            parts.extensions.insert(a);
        }
        parts
    }

    #[test]
    fn a_session_cookie_makes_the_viewer_and_a_bad_one_is_anonymous() {
        let authority = Authority::new(Key::generate());
        let auth = WebAuth::new(authority.clone(), "mrjob web");
        let session = authority.session(Principal::User("alice".into()), now_unix_ms());
        let good = format!("other=1; {COOKIE_NAME}={}", web_token::encode(&session));
        let v = Viewer::from_parts(&parts(Some(&good), Some(auth.clone())));
        assert_eq!(v.user(), "alice");
        assert!(v.require("logs").is_ok());

        let foreign = Authority::new(Key::generate()).session(Principal::User("alice".into()), 0);
        let bad = format!("{COOKIE_NAME}={}", web_token::encode(&foreign));
        let v = Viewer::from_parts(&parts(Some(&bad), Some(auth.clone())));
        assert_eq!(v.user(), ANONYMOUS);
        let e = v.require("the logs").unwrap_err();
        assert_eq!(e.status, StatusCode::UNAUTHORIZED);
        assert!(
            e.error.contains("signature is wrong") && e.error.contains("run `mrjob web`"),
            "{}",
            e.error
        );
        let v = Viewer::from_parts(&parts(None, Some(auth)));
        assert!(v.principal.is_none() && v.refused.is_none());
        // A port without a login has only anonymous viewers, whatever the cookie.
        assert_eq!(
            Viewer::from_parts(&parts(Some(&good), None)).user(),
            ANONYMOUS
        );
        // A login token signed by a user's key is what the login route takes.
        let token = Credentials::user("alice", authority.user_key("alice"))
            .login_token(now_unix_ms())
            .unwrap();
        assert!(authority.check_login(&token, now_unix_ms()).is_ok());
    }
}
