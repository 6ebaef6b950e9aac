//! A tiny HTTP/1.1 server for scrape tests: each connection's behaviour is chosen by the
//! test (a page, a status, garbage, a huge page, or no answer at all).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the server answers to `GET /metrics`.
#[derive(Debug, Clone)]
pub enum Behaviour {
    /// 200 with this body.
    Page(String),
    /// This status with a short body.
    Status(u16),
    /// Accept, read the request, never answer.
    Hang,
    /// 200 with `len` bytes, sent chunked without a content-length.
    Huge(usize),
    /// 200 with a content-length of `len` but nothing sent.
    Announced(usize),
}

/// A running test server; counts the requests it received.
pub struct TestServer {
    pub address: SocketAddr,
    behaviour: Arc<Mutex<Behaviour>>,
    requests: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl TestServer {
    pub async fn start(behaviour: Behaviour) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let behaviour = Arc::new(Mutex::new(behaviour));
        let requests = Arc::new(AtomicUsize::new(0));
        let (b, r) = (Arc::clone(&behaviour), Arc::clone(&requests));
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, Arc::clone(&b), Arc::clone(&r)));
            }
        });
        TestServer {
            address,
            behaviour,
            requests,
            task,
        }
    }

    pub fn set(&self, behaviour: Behaviour) {
        *self.behaviour.lock() = behaviour;
    }

    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves requests on one keep-alive connection until it closes.
async fn serve(
    mut stream: TcpStream,
    behaviour: Arc<Mutex<Behaviour>>,
    requests: Arc<AtomicUsize>,
) {
    let mut buffer = Vec::new();
    loop {
        if !read_request(&mut stream, &mut buffer).await {
            return;
        }
        requests.fetch_add(1, Ordering::SeqCst);
        let current = behaviour.lock().clone();
        if !respond(&mut stream, current).await {
            return;
        }
    }
}

async fn read_request(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            buffer.drain(..end + 4);
            return true;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    }
}

async fn respond(stream: &mut TcpStream, behaviour: Behaviour) -> bool {
    let result = match behaviour {
        Behaviour::Page(body) => write(stream, 200, body.as_bytes()).await,
        Behaviour::Status(code) => write(stream, code, b"error").await,
        Behaviour::Hang => {
            std::future::pending::<()>().await;
            Ok(())
        }
        Behaviour::Announced(len) => {
            let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {len}\r\n\r\n");
            stream.write_all(head.as_bytes()).await.map(|_| ())
        }
        Behaviour::Huge(len) => write_chunked(stream, len).await,
    };
    result.is_ok()
}

async fn write(stream: &mut TcpStream, status: u16, body: &[u8]) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await
}

async fn write_chunked(stream: &mut TcpStream, len: usize) -> std::io::Result<()> {
    stream
        .write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        .await?;
    let block = vec![b'#'; 64 * 1024];
    let mut sent = 0;
    while sent < len {
        let n = block.len().min(len - sent);
        stream.write_all(format!("{n:x}\r\n").as_bytes()).await?;
        stream.write_all(&block[..n]).await?;
        stream.write_all(b"\r\n").await?;
        sent += n;
    }
    stream.write_all(b"0\r\n\r\n").await
}
