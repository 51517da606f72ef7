//! What authentication costs a connection: a TCP connect on loopback with and without the
//! handshake (two round trips and four HMAC-SHA256), both against a server of the same
//! listener, in one run. Every RPC connection is pooled and a block pipeline opens one
//! connection per block (64 MiB), so this per-connection figure is the whole cost.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use dfs::auth::{Authority, Credentials, Gate, Key};
use dfs::listener::{serve, Limits, Shutdown};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};

fn limits() -> Limits {
    Limits {
        max_connections: 1024,
        idle_timeout: Duration::from_secs(30),
        read_timeout: Duration::from_secs(30),
        shutdown_grace: Duration::from_secs(1),
        handshake_timeout: Duration::from_secs(5),
    }
}

/// A server that closes each connection once it reached the handler.
async fn server(gate: Gate) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(
        listener,
        "bench",
        limits(),
        gate,
        Shutdown::never(),
        |mut s: TcpStream, _| async move {
            let mut b = [0u8; 1];
            let _ = s.read(&mut b).await;
            Ok::<(), dfs::Error>(())
        },
    ));
    addr
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let key = Key::generate();
    let creds = Credentials::member("bench", &key);
    let open = rt.block_on(server(Gate::Open));
    let gated = rt.block_on(server(Gate::Authenticate(Authority::new(key))));
    let mut g = c.benchmark_group("connect");
    g.bench_function("tcp only (open gate)", |b| {
        b.to_async(&rt).iter(|| async {
            let s = TcpStream::connect(open).await.unwrap();
            drop(s);
        })
    });
    g.bench_function("tcp + handshake", |b| {
        b.to_async(&rt).iter(|| async {
            let s = dfs::auth::connect(&gated.to_string(), "bench", &creds, Duration::from_secs(5))
                .await
                .unwrap();
            drop(s);
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
