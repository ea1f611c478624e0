//! The benchmark stub server as a process of its own: `cargo run --release --example stub -- PORT`.
//! It answers the Interaction Service paths with fixed bodies and does nothing else, so what a
//! benchmark measures is the client. Used by `bench/batch.sh`.

#[path = "../benches/stub.rs"]
mod stub;

fn main() {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(18790);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        println!("{}", stub::start_on(port).await);
        std::future::pending::<()>().await;
    });
}
