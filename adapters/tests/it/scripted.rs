//! A scripted HTTP/1.1 server on a loopback port for the adapters that call a service: it
//! answers each connection with the next canned answer and reports the request it got.

use std::net::SocketAddr;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::sync::mpsc;

/// One request as the scripted server saw it.
#[derive(Debug)]
pub(crate) struct Seen {
    pub(crate) head: String,
    pub(crate) body: Vec<u8>,
}

impl Seen {
    pub(crate) fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }
}

/// A server that answers each connection with the next of `answers` (status, JSON) and
/// reports what it was sent.
pub(crate) async fn server(
    answers: Vec<(u16, Value)>,
) -> (SocketAddr, mpsc::UnboundedReceiver<Seen>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let addr = listener.local_addr().expect("bound");
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        for (status, answer) in answers {
            let Ok((socket, _)) = listener.accept().await else {
                return;
            };
            let mut reader = BufReader::new(socket);
            let mut head = String::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).await.unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                head.push_str(&line);
            }
            let seen = Seen { head, body: vec![] };
            let length: usize = seen
                .header("content-length")
                .and_then(|l| l.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0; length];
            reader.read_exact(&mut body).await.expect("body");
            let _ = tx.send(Seen { body, ..seen });
            let text = answer.to_string();
            let kind = if status < 300 {
                "application/json"
            } else {
                "application/problem+json"
            };
            let response = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: {kind}\r\ncontent-length: {}\r\n\
                 connection: close\r\n\r\n{text}",
                text.len()
            );
            let mut socket = reader.into_inner();
            socket.write_all(response.as_bytes()).await.expect("answer");
            let _ = socket.shutdown().await;
        }
    });
    (addr, rx)
}
