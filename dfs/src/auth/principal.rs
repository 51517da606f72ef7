//! Who is talking: what a client claims to be, the key that claim must prove, and the
//! principal a server acts for once it is proven.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::key::Key;
use crate::error::{Error, Result};

/// The superuser's name: members (daemons and the admin's tools, holding the cluster key) act
/// as this user, and it may do anything, as HDFS's superuser may.
pub const SUPERUSER: &str = "admin";

/// Longest user or member name accepted in a claim.
pub const NAME_MAX_BYTES: usize = 64;

/// Member names by role: one spelling everywhere a daemon names itself or checks a name.
pub mod names {
    /// The namenode with Raft id `id`.
    pub fn namenode(id: u64) -> String {
        format!("nn{id}")
    }
    /// The datanode of `host`.
    pub fn datanode(host: &str) -> String {
        format!("datanode:{host}")
    }
    /// The worker of `host`.
    pub fn worker(host: &str) -> String {
        format!("worker:{host}")
    }
    /// The jobtracker.
    pub const JOBTRACKER: &str = "jobtracker";
}

/// A delegation token: lets a job's tasks act as the job's user, for that job, until it
/// expires, without holding the user's key. Its password is derived from the cluster key and
/// these fields, so any member can check it and nobody else can make one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Token {
    /// The user the token acts as.
    pub user: String,
    /// The job it was issued for.
    pub job: String,
    /// Milliseconds since the Unix epoch after which it is refused.
    pub expires_unix_ms: u64,
}

impl Token {
    fn identifier(&self) -> Vec<u8> {
        // Postcard of three plain fields cannot fail.
        postcard::to_allocvec(self).expect("a token encodes")
    }
}

/// What a client says it is, in the first message of a connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Claim {
    /// A member of the cluster (a daemon, or the admin's tools) by name: `nn1`,
    /// `datanode:host1`, `worker:host1`, `jobtracker`, `admin`.
    Member(String),
    /// A user by name, proving it with the key `dfs user add` made.
    User(String),
    /// A job's task, proving it with the token's password.
    Token(Token),
}

/// Who a connection authenticated as: what a server acts for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Principal {
    /// A member of the cluster (daemon or admin tool): the superuser.
    Member(String),
    /// A user.
    User(String),
    /// A task of `job`, acting as `user`.
    Task {
        /// The job's user.
        user: String,
        /// The job.
        job: String,
    },
}

impl Principal {
    /// The user this principal acts as, for file permissions and job ownership.
    pub fn user(&self) -> &str {
        match self {
            Principal::Member(_) => SUPERUSER,
            Principal::User(u) | Principal::Task { user: u, .. } => u,
        }
    }

    /// Whether it is a member of the cluster (holds the cluster key).
    pub fn is_member(&self) -> bool {
        matches!(self, Principal::Member(_))
    }

    /// Whether it may do anything: a member, or the superuser by user key.
    pub fn is_superuser(&self) -> bool {
        self.user() == SUPERUSER
    }

    /// The member's name, if it is one.
    pub fn member_name(&self) -> Option<&str> {
        match self {
            Principal::Member(n) => Some(n),
            _ => None,
        }
    }

    /// The Raft id of a namenode member.
    pub fn namenode_id(&self) -> Option<u64> {
        self.member_name()?.strip_prefix("nn")?.parse().ok()
    }

    /// The host of a datanode member.
    pub fn datanode_host(&self) -> Option<&str> {
        self.member_name()?.strip_prefix("datanode:")
    }

    /// The host of a worker member.
    pub fn worker_host(&self) -> Option<&str> {
        self.member_name()?.strip_prefix("worker:")
    }

    /// Refuses anyone but a member: for what only daemons do (Raft, reports, commands).
    pub fn require_member(&self, what: &str) -> Result<()> {
        if self.is_member() {
            Ok(())
        } else {
            Err(Error::PermissionDenied(format!(
                "{what} is for cluster members only, not {self}"
            )))
        }
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Principal::Member(n) => write!(f, "member {n}"),
            Principal::User(u) => write!(f, "user {u}"),
            Principal::Task { user, job } => write!(f, "a task of job {job} (user {user})"),
        }
    }
}

/// A client's side of authentication: its claim and the key that proves it. `Debug` hides
/// the key.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    claim: Claim,
    key: Key,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Credentials({:?})", self.claim)
    }
}

impl Credentials {
    /// A member named `name`, from the cluster key.
    pub fn member(name: &str, cluster_key: &Key) -> Credentials {
        Credentials {
            claim: Claim::Member(name.to_string()),
            key: member_key(cluster_key, name),
        }
    }

    /// A user, with the key from its key file.
    pub fn user(name: &str, user_key: Key) -> Credentials {
        Credentials {
            claim: Claim::User(name.to_string()),
            key: user_key,
        }
    }

    /// A task, with a token and its password (both from the jobtracker).
    pub fn token(token: Token, password: Key) -> Credentials {
        Credentials {
            claim: Claim::Token(token),
            key: password,
        }
    }

    /// What these credentials claim.
    pub fn claim(&self) -> &Claim {
        &self.claim
    }

    pub(super) fn key(&self) -> &Key {
        &self.key
    }
}

/// A server's side: the cluster key, from which the key of every claim is derived.
#[derive(Clone, PartialEq, Eq)]
pub struct Authority {
    cluster_key: Key,
}

impl fmt::Debug for Authority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Authority(..)")
    }
}

impl Authority {
    /// The authority of a member holding `cluster_key`.
    pub fn new(cluster_key: Key) -> Authority {
        Authority { cluster_key }
    }

    /// The key a user named `name` proves itself with (what `dfs user add` writes).
    pub fn user_key(&self, name: &str) -> Key {
        self.cluster_key.derive("user", name.as_bytes())
    }

    /// Issues a token for `job` acting as `user` until `expires_unix_ms`, with its password.
    pub fn issue_token(&self, user: &str, job: &str, expires_unix_ms: u64) -> (Token, Key) {
        let token = Token {
            user: user.to_string(),
            job: job.to_string(),
            expires_unix_ms,
        };
        let password = self.token_password(&token);
        (token, password)
    }

    /// Credentials of the member `name` (a daemon's own, for the connections it makes).
    pub fn member_credentials(&self, name: &str) -> Credentials {
        Credentials::member(name, &self.cluster_key)
    }

    /// The key `claim` must prove and the principal it becomes, or why it is refused before
    /// any proof (a bad name, an expired token). `now_unix_ms` is the clock.
    pub fn resolve(&self, claim: &Claim, now_unix_ms: u64) -> Result<(Principal, Key)> {
        match claim {
            Claim::Member(name) => {
                check_name(name)?;
                Ok((
                    Principal::Member(name.clone()),
                    member_key(&self.cluster_key, name),
                ))
            }
            Claim::User(name) => {
                check_name(name)?;
                Ok((Principal::User(name.clone()), self.user_key(name)))
            }
            Claim::Token(token) => {
                check_name(&token.user)?;
                if token.expires_unix_ms <= now_unix_ms {
                    return Err(Error::Unauthenticated(format!(
                        "the token of job {} expired",
                        token.job
                    )));
                }
                let principal = Principal::Task {
                    user: token.user.clone(),
                    job: token.job.clone(),
                };
                Ok((principal, self.token_password(token)))
            }
        }
    }

    /// A MAC by the cluster key over `parts` under `label`: for capabilities members hand
    /// out and check (block access tokens, shuffle secrets).
    pub fn sign(&self, label: &str, parts: &[&[u8]]) -> [u8; super::key::KEY_BYTES] {
        self.cluster_key
            .derive("capability", label.as_bytes())
            .mac(parts)
    }

    /// Whether `tag` is [`Authority::sign`] of `parts` under `label` (constant time).
    pub fn check(&self, label: &str, parts: &[&[u8]], tag: &[u8]) -> bool {
        self.cluster_key
            .derive("capability", label.as_bytes())
            .verify(parts, tag)
    }

    fn token_password(&self, token: &Token) -> Key {
        self.cluster_key.derive("token", &token.identifier())
    }
}

fn member_key(cluster_key: &Key, name: &str) -> Key {
    cluster_key.derive("member", name.as_bytes())
}

/// A name must be short, printable and free of separators, since it lands in paths, logs and
/// file listings.
fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= NAME_MAX_BYTES
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:@".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::Unauthenticated(format!(
            "{name:?} is not a valid name (1-{NAME_MAX_BYTES} letters, digits, - _ . : @)"
        )))
    }
}

/// Checks a user name given to `dfs user add` or `chown`, with the same rule as claims.
pub fn validate_user_name(name: &str) -> Result<()> {
    check_name(name).map_err(|e| match e {
        Error::Unauthenticated(m) => Error::Config(m),
        other => other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_resolve_to_principals_and_the_keys_clients_hold() {
        let key = Key::generate();
        let authority = Authority::new(key.clone());
        let (p, k) = authority.resolve(&Claim::Member("nn1".into()), 0).unwrap();
        assert_eq!(p, Principal::Member("nn1".into()));
        assert_eq!(&k, Credentials::member("nn1", &key).key());
        assert!(p.is_superuser() && p.is_member());

        let (p, k) = authority.resolve(&Claim::User("alice".into()), 0).unwrap();
        assert_eq!((p.user(), p.is_superuser()), ("alice", false));
        assert_eq!(k, authority.user_key("alice"));
        assert!(p.require_member("a block report").is_err());
    }

    #[test]
    fn member_names_say_their_role() {
        let m = |n: String| Principal::Member(n);
        assert_eq!(m(names::namenode(3)).namenode_id(), Some(3));
        assert_eq!(m(names::datanode("h1")).datanode_host(), Some("h1"));
        assert_eq!(m(names::worker("h1")).worker_host(), Some("h1"));
        assert_eq!(m(names::worker("h1")).namenode_id(), None);
        assert_eq!(Principal::User("nn1".into()).namenode_id(), None);
    }

    #[test]
    fn tokens_act_as_their_user_until_they_expire() {
        let authority = Authority::new(Key::generate());
        let (token, password) = authority.issue_token("alice", "job_7", 1_000);
        let (p, k) = authority
            .resolve(&Claim::Token(token.clone()), 999)
            .unwrap();
        assert_eq!(p.user(), "alice");
        assert_eq!(k, password);
        let err = authority
            .resolve(&Claim::Token(token.clone()), 1_000)
            .unwrap_err();
        assert!(err.to_string().contains("expired"), "{err}");
        // Changing any field changes the password: a token cannot be stretched or moved.
        let mut longer = token;
        longer.expires_unix_ms = 10_000;
        let (_, k2) = authority.resolve(&Claim::Token(longer), 999).unwrap();
        assert_ne!(k2, password);
    }

    #[test]
    fn bad_names_are_refused() {
        let authority = Authority::new(Key::generate());
        for name in ["", "a b", "x/y", &"n".repeat(65), "ümlaut"] {
            assert!(
                authority.resolve(&Claim::User(name.into()), 0).is_err(),
                "{name}"
            );
        }
        assert!(validate_user_name("alice_1").is_ok());
    }

    #[test]
    fn signatures_are_bound_to_their_label() {
        let authority = Authority::new(Key::generate());
        let tag = authority.sign("block", &[b"17"]);
        assert!(authority.check("block", &[b"17"], &tag));
        assert!(!authority.check("shuffle", &[b"17"], &tag));
        assert!(!Authority::new(Key::generate()).check("block", &[b"17"], &tag));
    }
}
