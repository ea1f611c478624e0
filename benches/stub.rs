//! A minimal HTTP/1.1 keep-alive server on 127.0.0.1 that answers the Interaction Service
//! paths with fixed bodies of the described success shapes. It does as little as possible, so that a benchmark measures the
//! client, not the server.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

fn answer(request_line: &str) -> &'static str {
    let path = request_line.split(' ').nth(1).unwrap_or("");
    match path {
        "/api/v1/interactions" => {
            r#"{"conversationIdentifier":"8a1f2c3d-0000-4000-8000-00000000c0de","workItemIds":["0Mw5g000000SimW"],"success":true}"#
        }
        "/api/v1/route" => r#"{"success":true,"routingCorrelationId":"rc-1","psrId":"0JR5g000000Sim1"}"#,
        "/api/v1/agentWork" => {
            r#"{"id":"5e550000-0000-4000-8000-0000000000aa","agentWorkId":"0Bz5g000000Sim1","success":true,"agentWorkDetails":{"existPsr":true,"psrId":"0JR5g000000Sim1","routingContext":{"conversationIdentifier":"8a1f2c3d-0000-4000-8000-00000000c0de","routingType":"Initial","routingCorrelationId":"rc-1"}}}"#
        }
        _ => r#"{"success":true}"#,
    }
}

fn status(request_line: &str) -> &'static str {
    if request_line.contains("/consent") {
        "200 OK"
    } else {
        "202 Accepted"
    }
}

/// Starts the stub on a free port and returns its base URL.
#[allow(dead_code)] // the `run` bench uses this, the `stub` example `start_on`
pub async fn start() -> String {
    start_on(0).await
}

/// Starts the stub on 127.0.0.1:`port` and returns its base URL.
pub async fn start_on(port: u16) -> String {
    let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let mut buf = Vec::with_capacity(8192);
                let mut chunk = [0u8; 8192];
                loop {
                    // Read one request: headers, then Content-Length bytes of body.
                    let head_end = loop {
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                        match socket.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
                    let length: usize = head
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse().ok())?
                        })
                        .unwrap_or(0);
                    while buf.len() < head_end + length {
                        match socket.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let line = head.lines().next().unwrap_or("").to_string();
                    buf.drain(..head_end + length);
                    let body = answer(&line);
                    let response = format!(
                        "HTTP/1.1 {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                        status(&line),
                        body.len()
                    );
                    if socket.write_all(response.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    format!("http://{addr}")
}
