//! The web login and the job page's links to attempt logs, on a running cluster whose job
//! `job` failed (called by a cluster test that already has one).

use dfs::auth::web_token::{self, LOGIN_TOKEN_LIFETIME_MS};
use dfs::auth::{now_unix_ms, Credentials, Key, Principal};
use dfs::config::ClusterConfig;
use dfs::http::session::{login_url, COOKIE_NAME};

use super::{dump_dom, get, get_json, get_with, Http};

/// The path and query of a login URL (`http://ADDR/login?...`).
fn path_of(url: &str) -> &str {
    let rest = url.strip_prefix("http://").expect("an http URL");
    &rest[rest.find('/').expect("a path")..]
}

/// Visits login URL `url`: it must redirect to `next` and set an HttpOnly, SameSite=Strict
/// session cookie; returns the `Cookie` header line that sends it back.
fn must_log_in(jt: &str, url: &str, next: &str) -> String {
    let r = get(jt, path_of(url));
    assert_eq!(r.status, 303, "{}\n{}", r.head, r.body);
    let head = r.head.to_lowercase();
    assert!(
        head.lines()
            .any(|l| l.trim() == format!("location: {next}")),
        "{}",
        r.head
    );
    let set = r
        .head
        .lines()
        .find(|l| l.to_lowercase().starts_with("set-cookie:"))
        .unwrap_or_else(|| panic!("no cookie set: {}", r.head));
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Path=/"),
        "{set}"
    );
    let pair = set
        .split_once(':')
        .unwrap()
        .1
        .split(';')
        .next()
        .unwrap()
        .trim();
    assert!(pair.starts_with(&format!("{COOKIE_NAME}=")), "{set}");
    format!("Cookie: {pair}\r\n")
}

/// A refused answer: `status`, the reason in the body, and none of the log text `secret`.
fn assert_refused(r: &Http, status: u16, reason: &str, secret: &str, what: &str) {
    assert_eq!(r.status, status, "{what}: {}", r.body);
    assert!(r.body.contains(reason), "{what}: {}", r.body);
    assert!(
        !r.body.contains(secret),
        "{what}: the log text leaked: {}",
        r.body
    );
    assert!(
        !r.head.to_lowercase().contains("set-cookie"),
        "{what}: {}",
        r.head
    );
}

/// Checks G8 on the web port: the page of failed job `job` links each failed attempt to its
/// logs; with the session from `admin_login` (the URL `mrjob web JOB` printed for the job's
/// user, the admin) the link shows the stderr the task printed (`cause`), in the HTML page,
/// its JSON twin and a real browser that follows a login URL; without a cookie, with another
/// user's, a forged or another cluster's cookie, and after a forged, stretched, expired or
/// foreign login token, the link is refused and shows no log text.
pub fn check_log_links(config: &ClusterConfig, job: u64, admin_login: &str, cause: &str) {
    let jt = config.jobtracker_web_addr();
    let api = get_json(&jt, &format!("/api/job/{job}"));
    let failed = &api["failed"][0];
    let logs = failed["logs_url"]
        .as_str()
        .expect("a failed attempt's logs link");
    let attempt = failed["attempt"].as_str().unwrap();
    assert_eq!(logs, format!("/job/{job}/logs/{attempt}"), "{api}");
    let page = get(&jt, &format!("/job/{job}")).body;
    assert!(page.contains(&format!("href=\"{logs}\"")), "{page}");

    let admin = must_log_in(&jt, admin_login, &format!("/job/{job}"));
    let shown = get_with(&jt, logs, &admin);
    assert_eq!(shown.status, 200, "{}", shown.body);
    assert!(shown.body.contains(cause), "{}", shown.body);
    assert!(shown
        .head
        .to_lowercase()
        .contains("cache-control: no-store"));
    let json = get_json_with(&jt, &format!("/api{logs}"), &admin);
    let stderr = &json["streams"][1];
    assert_eq!(stderr["stream"], "stderr", "{json}");
    assert!(stderr["head"].as_str().unwrap().contains(cause), "{json}");

    // Nobody else sees them.
    let anonymous = get(&jt, logs);
    assert_refused(&anonymous, 401, "mrjob web", cause, "no cookie");
    let authority = config.secrets.authority().unwrap();
    let mallory = Credentials::user("mallory", authority.user_key("mallory"));
    let as_mallory = must_log_in(&jt, &login_url(&jt, &mallory, "/").unwrap(), "/");
    let r = get_with(&jt, logs, &as_mallory);
    assert_refused(&r, 403, "user mallory may not see them", cause, "mallory");
    let r = get_with(&jt, &format!("/api{logs}"), &as_mallory);
    assert_refused(&r, 403, "may not see them", cause, "mallory's JSON");
    let stranger = dfs::auth::Authority::new(Key::generate());
    let foreign = stranger.session(Principal::Member("admin".into()), now_unix_ms());
    let cookie = format!("Cookie: {COOKIE_NAME}={}\r\n", web_token::encode(&foreign));
    let r = get_with(&jt, logs, &cookie);
    assert_refused(
        &r,
        401,
        "signature is wrong",
        cause,
        "another cluster's cookie",
    );
    let garbage = format!("Cookie: {COOKIE_NAME}=00ff{}\r\n", "ab".repeat(40));
    assert_refused(
        &get_with(&jt, logs, &garbage),
        401,
        "malformed",
        cause,
        "a garbage cookie",
    );

    // Bad login links set no cookie.
    let me = config.secrets.credentials().unwrap();
    let token_of = |url: &str| -> String {
        let q = url.split_once("token=").unwrap().1;
        q.split('&').next().unwrap().to_owned()
    };
    let mut forged = token_of(admin_login);
    let last = forged.pop().unwrap();
    forged.push(if last == '0' { '1' } else { '0' });
    let r = get(&jt, &format!("/login?token={forged}&next=/"));
    assert_refused(&r, 401, "signature is wrong", cause, "a forged login token");
    assert!(r.body.contains("mrjob web JOB"), "{}", r.body);
    let old = me
        .login_token(now_unix_ms() - LOGIN_TOKEN_LIFETIME_MS - 1)
        .unwrap();
    let r = get(&jt, &format!("/login?token={}", web_token::encode(&old)));
    assert_refused(&r, 401, "expired", cause, "an expired login token");
    let long = me.login_token(now_unix_ms() + 24 * 3600 * 1000).unwrap();
    let r = get(&jt, &format!("/login?token={}", web_token::encode(&long)));
    assert_refused(
        &r,
        401,
        "good for longer than",
        cause,
        "a stretched login token",
    );
    let other = Credentials::member("admin", &Key::generate());
    let r = get(&jt, path_of(&login_url(&jt, &other, "/").unwrap()));
    assert_refused(
        &r,
        401,
        "signature is wrong",
        cause,
        "another cluster's login",
    );
    assert_refused(&get(&jt, "/login"), 401, "no token", cause, "no token");
    // A login link cannot send the browser to another site.
    let away = login_url(&jt, me, "//evil.example/").unwrap();
    must_log_in(&jt, &away, "/");

    // A real browser follows a login link to the logs: the cookie survives the redirect.
    let url = login_url(&jt, me, logs).unwrap();
    let dom = dump_dom(&url);
    assert!(dom.contains("id=\"stderr\""), "{dom}");
    assert!(dom.contains(cause), "{dom}");
}

fn get_json_with(addr: &str, path: &str, headers: &str) -> serde_json::Value {
    let r = get_with(addr, path, headers);
    assert_eq!(r.status, 200, "GET {addr}{path}: {}", r.body);
    serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("{addr}{path} is not JSON: {e}"))
}

/// Checks G8 on the namenode's pages: they act as the logged-in user, held to its file
/// permissions. A mode-0700 directory of the admin's is refused to the anonymous `dr.who` and
/// to user mallory (403, its entries not shown) and listed for the admin once logged in.
pub fn check_namenode_login(config: &ClusterConfig, fs: &mapreduce::dfs_fs::DfsFs) {
    let client = fs.client();
    fs.block_on(client.mkdirs("/private/hidden-entry")).unwrap();
    fs.block_on(client.set_permission("/private", 0o700))
        .unwrap();
    let nn = super::leader_web(config);
    let page = "/browse?path=/private";
    let r = get(&nn, page);
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("dr.who"), "{}", r.body);
    assert!(!r.body.contains("hidden-entry"), "{}", r.body);

    let me = config.secrets.credentials().unwrap();
    let admin = must_log_in(&nn, &login_url(&nn, me, page).unwrap(), page);
    let r = get_with(&nn, page, &admin);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("hidden-entry"), "{}", r.body);

    let authority = config.secrets.authority().unwrap();
    let mallory = Credentials::user("mallory", authority.user_key("mallory"));
    let as_mallory = must_log_in(&nn, &login_url(&nn, &mallory, "/").unwrap(), "/");
    let r = get_with(&nn, &format!("/api{page}"), &as_mallory);
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(!r.body.contains("hidden-entry"), "{}", r.body);
    fs.block_on(client.delete("/private", true)).unwrap();
}
