//! The frame every HTML page shares: a title, links to the other pages of the daemon, inline
//! CSS (no external asset, so a page works on a closed network), and an optional refresh.
//!
//! Pages are built with maud, which escapes every interpolated string: a file name, job name
//! or error message cannot inject markup. Only [`maud::PreEscaped`] bypasses that, and it is
//! used for server-made SVG alone.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{html, Markup, DOCTYPE};
use serde::Serialize;

/// The shared style: plain tables, readable without any asset.
const STYLE: &str = "body{font-family:sans-serif;margin:1em 2em;color:#222}\
table{border-collapse:collapse;margin:.5em 0 1.5em}\
th,td{border:1px solid #ccc;padding:2px 8px;text-align:left;font-size:14px}\
th{background:#eee}td.n{text-align:right}nav a{margin-right:1em}\
.bad{color:#b00}.good{color:#070}pre{background:#f6f6f6;padding:4px;white-space:pre-wrap}";

/// Seconds between reloads of a page that shows something still changing.
pub const REFRESH_SECS: u32 = 3;

/// A whole HTML page: `title`, the navigation `links` (href, text), `body`, reloaded every
/// [`REFRESH_SECS`] when `refresh`.
pub fn frame(title: &str, links: &[(&str, &str)], refresh: bool, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html {
            head {
                meta charset="utf-8";
                @if refresh {
                    meta http-equiv="refresh" content=(REFRESH_SECS);
                }
                title { (title) }
                style { (maud::PreEscaped(STYLE)) }
            }
            body {
                nav {
                    @for (href, text) in links {
                        a href=(href) { (text) }
                    }
                }
                h1 { (title) }
                (body)
            }
        }
    }
}

/// Milliseconds as seconds with one decimal ("1.5 s").
pub fn secs(ms: u64) -> String {
    format!("{:.1} s", ms as f64 / 1000.0)
}

/// A size in human units.
pub fn bytes(n: u64) -> String {
    crate::units::human(n)
}

/// Percent-encodes `s` for a query string value (a path in a link).
pub fn query_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Why a page could not be shown: the status code, a sentence, and where to look instead
/// (the leader's page, when this namenode is not the leader). The JSON twin sends it as is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PageError {
    /// HTTP status code.
    #[serde(skip)]
    pub status: StatusCode,
    /// What went wrong.
    pub error: String,
    /// A page that can answer instead, if one is known.
    pub see: Option<String>,
}

impl PageError {
    /// A 404 naming what is missing.
    pub fn not_found(what: impl Into<String>) -> PageError {
        PageError {
            status: StatusCode::NOT_FOUND,
            error: what.into(),
            see: None,
        }
    }

    /// The page for a dfs error: its kind picks the status code.
    pub fn from_dfs(e: &crate::Error, see: Option<String>) -> PageError {
        use crate::ErrorKind as K;
        let status = match e.kind() {
            K::NotFound => StatusCode::NOT_FOUND,
            K::InvalidPath | K::Malformed | K::WrongKind => StatusCode::BAD_REQUEST,
            K::NotLeader | K::Unavailable | K::Timeout => StatusCode::SERVICE_UNAVAILABLE,
            K::Unauthenticated => StatusCode::UNAUTHORIZED,
            K::PermissionDenied => StatusCode::FORBIDDEN,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        PageError {
            status,
            error: e.to_string(),
            see,
        }
    }
}

/// A page's data as HTML (rendered by `render`) or, on error, an error page.
pub fn html_response<T>(
    title: &str,
    links: &[(&str, &str)],
    data: Result<T, PageError>,
    render: impl FnOnce(&T) -> (Markup, bool),
) -> Response {
    match data {
        Ok(data) => {
            let (body, refresh) = render(&data);
            axum::response::Html(frame(title, links, refresh, body).into_string()).into_response()
        }
        Err(e) => {
            let body = html! {
                p.bad { (e.error) }
                @if let Some(see) = &e.see {
                    p { "See " a href=(see) { (see) } }
                }
            };
            let page = frame(title, links, false, body).into_string();
            (e.status, axum::response::Html(page)).into_response()
        }
    }
}

/// A page's data as its JSON twin; an error is `{"error": ..., "see": ...}` with its status.
pub fn json_response<T: Serialize>(data: Result<T, PageError>) -> Response {
    match data {
        Ok(data) => axum::Json(data).into_response(),
        Err(e) => (e.status, axum::Json(e)).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolated_text_is_escaped() {
        let page = frame(
            "<script>alert(1)</script>",
            &[("/", "home")],
            true,
            html! {
                p { ("a & b \"c\"") }
            },
        )
        .into_string();
        assert!(
            page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{page}"
        );
        assert!(!page.contains("<script>"), "{page}");
        assert!(page.contains("a &amp; b &quot;c&quot;"), "{page}");
        assert!(page.contains("http-equiv=\"refresh\""), "{page}");
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(query_value("/a b/c&d=e"), "/a%20b/c%26d%3De");
        assert_eq!(query_value("/ü"), "/%C3%BC");
    }
}
