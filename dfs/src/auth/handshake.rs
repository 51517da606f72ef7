//! The handshake that opens every connection: mutual challenge-response over HMAC-SHA256.
//!
//! ```text
//! client -> server  Hello { magic, version, claim, client nonce }
//! server -> client  Challenge { server nonce, server proof = MAC_K("server", hello, server nonce) }
//!                   (or Refused, when the claim is refused before any proof)
//! client -> server  Proof { MAC_K("client", hello, server nonce, server proof) }
//! server -> client  Welcome | Refused(why)
//! ```
//!
//! `K` is the key of the claim (derived from the cluster key; see [`super::key`]). Both sides
//! prove they hold it over nonces the other side chose fresh, so a recorded handshake replayed
//! against a server fails (new server nonce), as does a recorded server answer replayed to a
//! client (new client nonce). Each message is one frame of at most
//! [`HANDSHAKE_FRAME_LIMIT_BYTES`], read exactly (nothing past the handshake is buffered), and
//! the caller bounds the whole exchange in time: before it succeeds, a connection costs a
//! few hundred bytes and cannot make the server read a request.

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use super::key::KEY_BYTES;
use super::principal::{Authority, Claim, Credentials, Principal};
use crate::error::{Error, Result};
use crate::frame::{decode_msg, encode_msg, read_frame, write_frame};

/// The first bytes of every connection's payload: a peer of another protocol (or an old
/// version without authentication) is told apart at once.
pub const MAGIC: [u8; 8] = *b"dfs-auth";
/// Version of this handshake.
pub const VERSION: u16 = 1;
/// Largest handshake message.
pub const HANDSHAKE_FRAME_LIMIT_BYTES: usize = 1024;

type Nonce = [u8; KEY_BYTES];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Hello {
    magic: [u8; 8],
    version: u16,
    claim: Claim,
    nonce: Nonce,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum ServerMsg {
    Challenge { nonce: Nonce, proof: Nonce },
    Welcome,
    Refused(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Proof {
    proof: Nonce,
}

/// The server's side: reads the client's claim, proves the claim's key, checks the client's
/// proof. Returns who the client is, or an [`Error::Unauthenticated`] after telling the
/// client why (when it can).
pub async fn accept<S>(stream: &mut S, authority: &Authority, now_unix_ms: u64) -> Result<Principal>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let hello_bytes = read_frame(stream, HANDSHAKE_FRAME_LIMIT_BYTES)
        .await
        .map_err(refused_frame)?
        .ok_or_else(|| Error::Unauthenticated("closed before the handshake".into()))?;
    let hello = decode_hello(&hello_bytes)?;
    let (principal, key) = match authority.resolve(&hello.claim, now_unix_ms) {
        Ok(x) => x,
        Err(e) => {
            let _ = send(stream, &ServerMsg::Refused(e.to_string())).await;
            return Err(e);
        }
    };
    let nonce: Nonce = rand::random();
    let server_proof = key.mac(&[b"server", &hello_bytes, &nonce]);
    send(
        stream,
        &ServerMsg::Challenge {
            nonce,
            proof: server_proof,
        },
    )
    .await?;
    let reply = read_frame(stream, HANDSHAKE_FRAME_LIMIT_BYTES)
        .await
        .map_err(refused_frame)?
        .ok_or_else(|| Error::Unauthenticated(format!("{principal} left mid-handshake")))?;
    let proof: Proof = decode_msg(&reply)
        .map_err(|e| Error::Unauthenticated(format!("a garbled handshake proof: {e}")))?;
    if !key.verify(
        &[b"client", &hello_bytes, &nonce, &server_proof],
        &proof.proof,
    ) {
        let why = format!("wrong key for {principal}");
        let _ = send(stream, &ServerMsg::Refused(why.clone())).await;
        return Err(Error::Unauthenticated(why));
    }
    send(stream, &ServerMsg::Welcome).await?;
    Ok(principal)
}

/// The client's side: claims `credentials`, checks the server proves the same key, proves
/// it back, and waits to be welcomed. `peer` names the server in errors.
pub async fn connect<S>(stream: &mut S, credentials: &Credentials, peer: &str) -> Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let hello = Hello {
        magic: MAGIC,
        version: VERSION,
        claim: credentials.claim().clone(),
        nonce: rand::random(),
    };
    let hello_bytes = encode_msg(&hello)?;
    send_bytes(stream, &hello_bytes).await?;
    let (nonce, server_proof) = match receive(stream, peer).await? {
        ServerMsg::Challenge { nonce, proof } => (nonce, proof),
        ServerMsg::Refused(why) => return Err(refused_by(peer, &why)),
        ServerMsg::Welcome => {
            return Err(Error::Unauthenticated(format!(
                "{peer} welcomed a client it never challenged"
            )))
        }
    };
    let key = credentials.key();
    if !key.verify(&[b"server", &hello_bytes, &nonce], &server_proof) {
        return Err(Error::Unauthenticated(format!(
            "{peer} could not prove it holds this cluster's key (another cluster, or not a \
             member)"
        )));
    }
    let proof = key.mac(&[b"client", &hello_bytes, &nonce, &server_proof]);
    send(stream, &Proof { proof }).await?;
    match receive(stream, peer).await? {
        ServerMsg::Welcome => Ok(()),
        ServerMsg::Refused(why) => Err(refused_by(peer, &why)),
        ServerMsg::Challenge { .. } => {
            Err(Error::Unauthenticated(format!("{peer} challenged twice")))
        }
    }
}

fn decode_hello(bytes: &[u8]) -> Result<Hello> {
    let hello: Hello = decode_msg(bytes).map_err(|_| {
        Error::Unauthenticated(
            "the connection did not begin with a handshake (a client without the cluster's \
             key, or of another version)"
                .into(),
        )
    })?;
    if hello.magic != MAGIC {
        return Err(Error::Unauthenticated("not a dfs handshake".into()));
    }
    if hello.version != VERSION {
        return Err(Error::Unauthenticated(format!(
            "handshake version {} (this server speaks {VERSION})",
            hello.version
        )));
    }
    Ok(hello)
}

fn refused_by(peer: &str, why: &str) -> Error {
    Error::Unauthenticated(format!("{peer} refused the connection: {why}"))
}

fn refused_frame(e: Error) -> Error {
    match e {
        Error::FrameTooLarge { len, limit } => Error::Unauthenticated(format!(
            "a handshake message of {len} bytes (at most {limit}): not a client of this cluster"
        )),
        other => other,
    }
}

async fn receive<S: AsyncRead + Unpin>(stream: &mut S, peer: &str) -> Result<ServerMsg> {
    let frame = read_frame(stream, HANDSHAKE_FRAME_LIMIT_BYTES)
        .await?
        .ok_or_else(|| {
            Error::Unauthenticated(format!(
                "{peer} closed the connection during the handshake (is it of this cluster and \
                 version?)"
            ))
        })?;
    decode_msg(&frame).map_err(|e| Error::Unauthenticated(format!("{peer}: bad handshake: {e}")))
}

async fn send<S: AsyncWrite + Unpin, T: Serialize>(stream: &mut S, msg: &T) -> Result<()> {
    send_bytes(stream, &encode_msg(msg)?).await
}

async fn send_bytes<S: AsyncWrite + Unpin>(stream: &mut S, bytes: &[u8]) -> Result<()> {
    write_frame(stream, bytes).await?;
    stream
        .flush()
        .await
        .map_err(|e| Error::io("sending a handshake message", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::key::Key;
    use tokio::io::duplex;

    async fn run(authority: &Authority, creds: &Credentials) -> (Result<Principal>, Result<()>) {
        let (mut a, b) = duplex(4096);
        // The client's end is dropped when it gives up, as a real client's socket is.
        let client = async move {
            let mut b = b;
            connect(&mut b, creds, "test").await
        };
        tokio::join!(accept(&mut a, authority, 0), client)
    }

    #[tokio::test]
    async fn members_and_users_with_the_right_key_get_in() {
        let key = Key::generate();
        let authority = Authority::new(key.clone());
        let (server, client) = run(&authority, &Credentials::member("nn2", &key)).await;
        assert_eq!(server.unwrap(), Principal::Member("nn2".into()));
        client.unwrap();
        let alice = Credentials::user("alice", authority.user_key("alice"));
        let (server, client) = run(&authority, &alice).await;
        assert_eq!(server.unwrap(), Principal::User("alice".into()));
        client.unwrap();
    }

    #[tokio::test]
    async fn a_wrong_key_is_refused_on_both_sides() {
        let authority = Authority::new(Key::generate());
        // A user presenting another user's key.
        let forged = Credentials::user("alice", authority.user_key("bob"));
        let (server, client) = run(&authority, &forged).await;
        assert!(matches!(server, Err(Error::Unauthenticated(_))));
        // The client notices first: the server's proof does not match its key.
        let err = client.unwrap_err().to_string();
        assert!(err.contains("could not prove"), "{err}");
        // Another cluster's member.
        let stranger = Credentials::member("nn1", &Key::generate());
        let (server, client) = run(&authority, &stranger).await;
        assert!(server.is_err() && client.is_err());
    }

    #[tokio::test]
    async fn a_replayed_handshake_is_refused() {
        let key = Key::generate();
        let authority = Authority::new(key.clone());
        let creds = Credentials::member("nn1", &key);
        // Record a genuine client's messages by hand.
        let hello = encode_msg(&Hello {
            magic: MAGIC,
            version: VERSION,
            claim: creds.claim().clone(),
            nonce: [7; KEY_BYTES],
        })
        .unwrap();
        let recorded_proof = {
            let (mut a, mut b) = duplex(4096);
            let server = tokio::spawn(async move { accept(&mut a, &Authority::new(key), 0).await });
            send_bytes(&mut b, &hello).await.unwrap();
            let ServerMsg::Challenge { nonce, proof } = receive(&mut b, "s").await.unwrap() else {
                panic!("no challenge")
            };
            let client_proof = creds.key().mac(&[b"client", &hello, &nonce, &proof]);
            send(
                &mut b,
                &Proof {
                    proof: client_proof,
                },
            )
            .await
            .unwrap();
            assert_eq!(receive(&mut b, "s").await.unwrap(), ServerMsg::Welcome);
            server.await.unwrap().unwrap();
            client_proof
        };
        // Replaying the same bytes to a new connection fails: its challenge is new.
        let (mut a, mut b) = duplex(4096);
        let server = tokio::spawn(async move { accept(&mut a, &authority, 0).await });
        send_bytes(&mut b, &hello).await.unwrap();
        receive(&mut b, "s").await.unwrap();
        send(
            &mut b,
            &Proof {
                proof: recorded_proof,
            },
        )
        .await
        .unwrap();
        assert!(matches!(
            receive(&mut b, "s").await.unwrap(),
            ServerMsg::Refused(_)
        ));
        let err = server.await.unwrap().unwrap_err().to_string();
        assert!(err.contains("wrong key"), "{err}");
    }

    #[tokio::test]
    async fn garbage_and_big_frames_are_refused_unread() {
        let authority = Authority::new(Key::generate());
        for bytes in [
            b"GET / HTTP/1.1\r\n\r\n".to_vec(),
            vec![0, 0, 0, 3, 1, 2, 3],
            vec![0xff, 0xff, 0xff, 0xff],
        ] {
            let (mut a, mut b) = duplex(4096);
            b.write_all(&bytes).await.unwrap();
            drop(b);
            let err = accept(&mut a, &authority, 0).await.unwrap_err();
            assert!(
                matches!(err, Error::Unauthenticated(_) | Error::Io { .. }),
                "{err}"
            );
        }
    }

    #[tokio::test]
    async fn an_expired_token_is_refused_before_any_proof() {
        let authority = Authority::new(Key::generate());
        let (token, password) = authority.issue_token("alice", "job_1", 1);
        let (mut a, mut b) = duplex(4096);
        let creds = Credentials::token(token, password);
        let (server, client) = tokio::join!(accept(&mut a, &authority, 5), async {
            connect(&mut b, &creds, "jt").await
        });
        assert!(server.is_err());
        let err = client.unwrap_err().to_string();
        assert!(err.contains("expired"), "{err}");
    }
}
