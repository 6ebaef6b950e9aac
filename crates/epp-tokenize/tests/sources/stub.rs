//! A minimal HTTP/1.1 server standing in for vLLM's `/tokenize`: records each request and
//! answers with a fixed reply, closing the connection after it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the stub answers.
#[derive(Debug, Clone)]
pub enum Reply {
    /// This status and body.
    Status(u16, String),
    /// Nothing, for this long (a server that hangs).
    Hang(Duration),
    /// This status and body, after this long (a slow server).
    After(Duration, u16, String),
}

impl Reply {
    pub fn tokens(ids: &[u32]) -> Reply {
        Reply::Status(
            200,
            serde_json::json!({"count": ids.len(), "tokens": ids}).to_string(),
        )
    }
}

/// One received request: its path and JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    pub path: String,
    pub body: Value,
}

pub struct Stub {
    pub address: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Stub {
    pub async fn start(reply: Reply) -> Stub {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a port");
        let address = listener.local_addr().expect("bound address");
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&received);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, reply.clone(), Arc::clone(&log)));
            }
        });
        Stub { address, received }
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().clone()
    }
}

async fn serve(mut stream: TcpStream, reply: Reply, log: Arc<Mutex<Vec<Received>>>) {
    let Some(request) = read_request(&mut stream).await else {
        return;
    };
    log.lock().push(request);
    let (status, body) = match reply {
        Reply::Status(status, body) => (status, body),
        Reply::Hang(duration) => {
            tokio::time::sleep(duration).await;
            return;
        }
        Reply::After(duration, status, body) => {
            tokio::time::sleep(duration).await;
            (status, body)
        }
    };
    let response = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// Reads the head, then `content-length` bytes of body.
async fn read_request(stream: &mut TcpStream) -> Option<Received> {
    let mut buffer = Vec::new();
    let head_end = loop {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
        if let Some(i) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).to_string();
    let path = head.split_whitespace().nth(1)?.to_owned();
    let length: usize = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    while buffer.len() < head_end + length {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
    let body = serde_json::from_slice(&buffer[head_end..head_end + length]).ok()?;
    Some(Received { path, body })
}
