//! Logging in to the web pages: a browser cannot run the cluster's handshake, so a user's
//! tools sign a short-lived [`LoginToken`] that travels in a URL once, and the daemon that
//! checks it answers with a [`Session`] that lives in an HttpOnly cookie.
//!
//! A login token is signed by the caller's own key (a user's key, or a member's), derived for
//! this one use, over the claim and an expiry. Any member can check it, since every such key
//! derives from the cluster key, so no RPC is needed to get one and every daemon's web port
//! accepts it. Letting a user sign its own login adds no power: the user's key already
//! authenticates it on every port for as long as it is held. What the server bounds is the
//! lifetime: a token that expires more than [`LOGIN_TOKEN_LIFETIME_MS`] (plus
//! [`CLOCK_SKEW_MS`]) from now is refused, so a login URL left in a terminal or a browser's
//! history is soon worth nothing. Tasks' tokens cannot log in: a task has no business with
//! the pages.
//!
//! A session is signed by the cluster key (only members can make one) over the principal and
//! its expiry, so the cookie carries its own proof and no daemon keeps session state.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::key::KEY_BYTES;
use super::principal::{Authority, Claim, Credentials, Principal};
use crate::error::{Error, Result};

/// How long a login URL may be used.
pub const LOGIN_TOKEN_LIFETIME_MS: u64 = 15 * 60 * 1000;
/// How far ahead of the server's clock a client's may run before its tokens are refused.
pub const CLOCK_SKEW_MS: u64 = 5 * 60 * 1000;
/// How long a web session (the cookie) lasts, as Hadoop's signed auth cookie (10 hours).
pub const SESSION_LIFETIME_MS: u64 = 10 * 60 * 60 * 1000;
/// Longest encoded token or session accepted: checked before decoding anything.
pub const MAX_ENCODED_BYTES: usize = 1024;

/// The label of the key a login token is signed with (derived from the claim's key).
const LOGIN_LABEL: &str = "web login";
/// The label of the cluster's signature on a session.
const SESSION_LABEL: &str = "web session";

/// See the module docs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginToken {
    /// Who logs in: a member or a user.
    pub claim: Claim,
    /// Milliseconds since the Unix epoch after which it is refused.
    pub expires_unix_ms: u64,
    /// MAC by the claim's key (derived for logins) over the fields above.
    pub tag: [u8; KEY_BYTES],
}

/// See the module docs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// Whom the pages act for.
    pub principal: Principal,
    /// Milliseconds since the Unix epoch after which it is refused.
    pub expires_unix_ms: u64,
    /// MAC by the cluster key over the fields above.
    pub tag: [u8; KEY_BYTES],
}

fn login_fields(claim: &Claim, expires_unix_ms: u64) -> Vec<Vec<u8>> {
    // Postcard of a claim cannot fail.
    let claim = postcard::to_allocvec(claim).expect("a claim encodes");
    vec![claim, expires_unix_ms.to_be_bytes().to_vec()]
}

fn session_fields(principal: &Principal, expires_unix_ms: u64) -> Vec<Vec<u8>> {
    let principal = postcard::to_allocvec(principal).expect("a principal encodes");
    vec![principal, expires_unix_ms.to_be_bytes().to_vec()]
}

fn parts(fields: &[Vec<u8>]) -> Vec<&[u8]> {
    fields.iter().map(Vec::as_slice).collect()
}

impl Credentials {
    /// A login token for these credentials, good for [`LOGIN_TOKEN_LIFETIME_MS`] from
    /// `now_unix_ms`. A task's token cannot log in.
    pub fn login_token(&self, now_unix_ms: u64) -> Result<LoginToken> {
        if let Claim::Token(t) = self.claim() {
            return Err(Error::Unauthenticated(format!(
                "a task of job {} cannot log in to the web pages",
                t.job
            )));
        }
        let expires_unix_ms = now_unix_ms.saturating_add(LOGIN_TOKEN_LIFETIME_MS);
        let f = login_fields(self.claim(), expires_unix_ms);
        let tag = self.key().derive(LOGIN_LABEL, b"").mac(&parts(&f));
        Ok(LoginToken {
            claim: self.claim().clone(),
            expires_unix_ms,
            tag,
        })
    }
}

impl Authority {
    /// The principal `token` logs in, or why it is refused: forged (or another cluster's),
    /// expired, too long-lived, or a task's.
    pub fn check_login(&self, token: &LoginToken, now_unix_ms: u64) -> Result<Principal> {
        let refused = |why: String| Err(Error::Unauthenticated(why));
        if matches!(token.claim, Claim::Token(_)) {
            return refused("a task's token cannot log in to the web pages".into());
        }
        if token.expires_unix_ms <= now_unix_ms {
            return refused("the login link expired".into());
        }
        let latest = now_unix_ms.saturating_add(LOGIN_TOKEN_LIFETIME_MS + CLOCK_SKEW_MS);
        if token.expires_unix_ms > latest {
            return refused(format!(
                "the login link is good for longer than {} minutes (or the clock of the \
                 machine that made it runs ahead of this one)",
                LOGIN_TOKEN_LIFETIME_MS / 60_000
            ));
        }
        let (principal, key) = self.resolve(&token.claim, now_unix_ms)?;
        let f = login_fields(&token.claim, token.expires_unix_ms);
        if !key.derive(LOGIN_LABEL, b"").verify(&parts(&f), &token.tag) {
            return refused(
                "the login link's signature is wrong (forged, or made for another cluster)".into(),
            );
        }
        Ok(principal)
    }

    /// A session for `principal`, good for [`SESSION_LIFETIME_MS`] from `now_unix_ms`.
    pub fn session(&self, principal: Principal, now_unix_ms: u64) -> Session {
        let expires_unix_ms = now_unix_ms.saturating_add(SESSION_LIFETIME_MS);
        let tag = self.sign(
            SESSION_LABEL,
            &parts(&session_fields(&principal, expires_unix_ms)),
        );
        Session {
            principal,
            expires_unix_ms,
            tag,
        }
    }

    /// The principal of `session`, or why it is refused (forged or expired).
    pub fn check_session(&self, session: &Session, now_unix_ms: u64) -> Result<Principal> {
        let f = session_fields(&session.principal, session.expires_unix_ms);
        if !self.check(SESSION_LABEL, &parts(&f), &session.tag) {
            return Err(Error::Unauthenticated(
                "the session cookie's signature is wrong (forged, or from another cluster)".into(),
            ));
        }
        if session.expires_unix_ms <= now_unix_ms {
            return Err(Error::Unauthenticated("the web session expired".into()));
        }
        Ok(session.principal.clone())
    }
}

/// A token or session as URL- and cookie-safe text (hex of its postcard bytes).
pub fn encode<T: Serialize>(value: &T) -> String {
    // Postcard of these plain structs cannot fail.
    hex::encode(postcard::to_allocvec(value).expect("a web token encodes"))
}

/// Decodes what [`encode`] made; `what` names it in the error. Text longer than
/// [`MAX_ENCODED_BYTES`] is refused unread.
pub fn decode<T: DeserializeOwned>(text: &str, what: &str) -> Result<T> {
    if text.len() > MAX_ENCODED_BYTES {
        return Err(Error::Unauthenticated(format!(
            "the {what} is {} bytes long, more than {MAX_ENCODED_BYTES}",
            text.len()
        )));
    }
    let bytes = hex::decode(text)
        .map_err(|e| Error::Unauthenticated(format!("the {what} is not hex: {e}")))?;
    postcard::from_bytes(&bytes)
        .map_err(|e| Error::Unauthenticated(format!("the {what} is malformed: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Key;

    fn alice(a: &Authority) -> Credentials {
        Credentials::user("alice", a.user_key("alice"))
    }

    #[test]
    fn a_login_token_logs_in_its_user_until_it_expires() {
        let a = Authority::new(Key::generate());
        let token = alice(&a).login_token(1_000).unwrap();
        let back: LoginToken = decode(&encode(&token), "login token").unwrap();
        assert_eq!(back, token);
        assert_eq!(
            a.check_login(&back, 1_001).unwrap(),
            Principal::User("alice".into())
        );
        let late = 1_000 + LOGIN_TOKEN_LIFETIME_MS;
        let err = a.check_login(&token, late).unwrap_err().to_string();
        assert!(err.contains("expired"), "{err}");
        let member = a.member_credentials("admin").login_token(0).unwrap();
        assert!(a.check_login(&member, 1).unwrap().is_superuser());
    }

    #[test]
    fn forged_foreign_stretched_and_task_tokens_are_refused() {
        let a = Authority::new(Key::generate());
        let refused = |t: &LoginToken, now| a.check_login(t, now).unwrap_err().to_string();
        // Claiming another user with alice's signature.
        let mut t = alice(&a).login_token(0).unwrap();
        t.claim = Claim::User("admin".into());
        assert!(refused(&t, 1).contains("signature is wrong"));
        // Another cluster's user of the same name.
        let other = Authority::new(Key::generate());
        assert!(refused(&alice(&other).login_token(0).unwrap(), 1).contains("signature"));
        // A longer life than it was signed for breaks the signature; a long life signed by
        // the user's own key is refused by its length.
        let mut t = alice(&a).login_token(0).unwrap();
        t.expires_unix_ms += 1;
        assert!(refused(&t, 1).contains("signature is wrong"));
        let far = alice(&a).login_token(10 * LOGIN_TOKEN_LIFETIME_MS).unwrap();
        assert!(refused(&far, 0).contains("good for longer than 15 minutes"));
        // A client clock a minute ahead is fine.
        assert!(a
            .check_login(&alice(&a).login_token(60_000).unwrap(), 0)
            .is_ok());
        let (token, password) = a.issue_token("alice", "job_1", u64::MAX);
        let task = Credentials::token(token, password);
        assert!(task.login_token(0).is_err());
    }

    #[test]
    fn sessions_are_the_clusters_word_until_they_expire() {
        let a = Authority::new(Key::generate());
        let s = a.session(Principal::User("alice".into()), 0);
        let back: Session = decode(&encode(&s), "session").unwrap();
        assert_eq!(a.check_session(&back, 1).unwrap().user(), "alice");
        let err = a.check_session(&s, SESSION_LIFETIME_MS).unwrap_err();
        assert!(err.to_string().contains("expired"), "{err}");
        let mut forged = s.clone();
        forged.principal = Principal::User("admin".into());
        assert!(a.check_session(&forged, 1).is_err());
        let foreign = Authority::new(Key::generate()).session(Principal::User("alice".into()), 0);
        assert!(a.check_session(&foreign, 1).is_err());
        // A login token and a session have the same shape: each is refused as the other,
        // since they are signed under different keys.
        let token = alice(&a).login_token(0).unwrap();
        let token_as_session: Session = decode(&encode(&token), "session").unwrap();
        assert!(a.check_session(&token_as_session, 1).is_err());
        let member = a.session(Principal::Member("admin".into()), 0);
        let session_as_token: LoginToken = decode(&encode(&member), "login token").unwrap();
        assert!(a.check_login(&session_as_token, 1).is_err());
    }

    #[test]
    fn bad_text_is_refused_before_decoding() {
        let err = decode::<Session>(&"a".repeat(MAX_ENCODED_BYTES + 2), "session").unwrap_err();
        assert!(err.to_string().contains("more than 1024"), "{err}");
        assert!(decode::<Session>("zz", "session").is_err());
        assert!(decode::<Session>("00ff", "session").is_err());
    }
}
