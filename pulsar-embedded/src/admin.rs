//! A small subset of Apache Pulsar's admin REST API (`/admin/v2/...`), enough for the common calls
//! of tools and tests: clusters, tenants and namespaces (the defaults), topic lists, partitioned
//! topics (create, metadata), topic stats and unload. HTTP/1.1, one request per connection.

use std::sync::Arc;

use serde_json::{json, Map, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::core::{normalize_topic, TopicStats};
use crate::server::Inner;

/// Largest request (headers and body) the admin listener reads.
const MAX_REQUEST: usize = 64 * 1024;

pub(crate) async fn admin_loop(inner: Arc<Inner>, listener: TcpListener) {
    loop {
        let accepted = tokio::select! {
            () = inner.stop.cancelled() => return,
            a = listener.accept() => a,
        };
        if let Ok((stream, _)) = accepted {
            tokio::spawn(serve(inner.clone(), stream));
        }
    }
}

async fn serve(inner: Arc<Inner>, mut stream: TcpStream) {
    let Some((method, path, body)) = read_request(&mut stream).await else {
        return;
    };
    let (status, reply) = route(&inner, &method, &path, &body);
    let text = reply.map(|v| v.to_string()).unwrap_or_default();
    let reason = match status {
        200 => "OK",
        204 => "No Content",
        404 => "Not Found",
        409 => "Conflict",
        _ => "Bad Request",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        text.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(text.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// Reads one request: method, path (query string dropped) and body.
async fn read_request(stream: &mut TcpStream) -> Option<(String, String, String)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let header_end = loop {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(chunk.get(..n)?);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > MAX_REQUEST {
            return None;
        }
    };
    let head = String::from_utf8_lossy(buf.get(..header_end)?).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_owned();
    let target = first.next()?;
    let path = target.split('?').next().unwrap_or(target).to_owned();
    let length: usize = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0);
    if length > MAX_REQUEST {
        return None;
    }
    let mut body = buf.get(header_end..)?.to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(chunk.get(..n)?);
    }
    Some((method, path, String::from_utf8_lossy(&body).into_owned()))
}

type Reply = (u16, Option<Value>);

fn route(inner: &Inner, method: &str, path: &str, body: &str) -> Reply {
    let parts: Vec<&str> = path
        .trim_start_matches("/admin/v2/")
        .split('/')
        .filter(|p| !p.is_empty())
        .collect();
    match (method, parts.as_slice()) {
        ("GET", ["clusters"]) => (200, Some(json!(["standalone"]))),
        ("GET", ["tenants"]) => (200, Some(json!(names(inner, 1)))),
        ("GET", ["namespaces", tenant]) => {
            let all = names(inner, 2);
            let mine: Vec<String> = all
                .into_iter()
                .filter(|n| n.starts_with(&format!("{tenant}/")))
                .collect();
            (200, Some(json!(mine)))
        }
        ("GET", [domain @ ("persistent" | "non-persistent"), tenant, ns]) => {
            let prefix = format!("{domain}://{tenant}/{ns}/");
            let topics: Vec<String> = inner
                .stats()
                .into_iter()
                .map(|t| t.name)
                .filter(|n| n.starts_with(&prefix))
                .collect();
            (200, Some(json!(topics)))
        }
        (_, [domain @ ("persistent" | "non-persistent"), tenant, ns, topic, rest @ ..]) => {
            let name = normalize_topic(&format!("{domain}://{tenant}/{ns}/{topic}"));
            topic_route(inner, method, &name, rest, body)
        }
        _ => (
            404,
            Some(json!({"reason": "not supported by the embedded broker"})),
        ),
    }
}

fn topic_route(inner: &Inner, method: &str, topic: &str, rest: &[&str], body: &str) -> Reply {
    match (method, rest) {
        ("PUT", ["partitions"]) => match body.trim().parse::<u32>() {
            Ok(n) if n > 0 => {
                if inner.partitions(topic).is_some() {
                    return (
                        409,
                        Some(json!({"reason": "Partitioned topic already exists"})),
                    );
                }
                inner.with(|c, _| c.create_partitioned_topic(topic, n));
                (204, None)
            }
            _ => (
                400,
                Some(json!({"reason": "the body must be a partition count"})),
            ),
        },
        ("GET", ["partitions"]) => (
            200,
            Some(json!({"partitions": inner.partitions(topic).unwrap_or(0)})),
        ),
        ("PUT", ["unload"]) => {
            inner.with(|c, now| c.unload(now, topic));
            (204, None)
        }
        ("GET", ["stats"]) => match inner.stats().into_iter().find(|t| t.name == topic) {
            Some(t) => (200, Some(topic_json(&t))),
            None => (404, Some(json!({"reason": "Topic not found"}))),
        },
        _ => (
            404,
            Some(json!({"reason": "not supported by the embedded broker"})),
        ),
    }
}

/// Tenants (`depth` 1) or namespaces (`depth` 2) with topics, and the defaults.
fn names(inner: &Inner, depth: usize) -> Vec<String> {
    let mut out: Vec<String> = inner
        .stats()
        .into_iter()
        .filter_map(|t| {
            let (_, path) = t.name.split_once("://")?;
            let parts: Vec<&str> = path.splitn(3, '/').collect();
            Some(parts.get(..depth)?.join("/"))
        })
        .collect();
    out.push(
        if depth == 1 {
            "public"
        } else {
            "public/default"
        }
        .to_owned(),
    );
    out.sort();
    out.dedup();
    out
}

/// A topic's stats with the field names of Apache Pulsar's `TopicStats`.
fn topic_json(t: &TopicStats) -> Value {
    let mut subs = Map::new();
    for s in &t.subscriptions {
        let consumers: Vec<Value> = s
            .consumers
            .iter()
            .map(|c| {
                json!({
                    "consumerName": c.name,
                    "availablePermits": c.permits,
                    "unackedMessages": c.unacked_entries,
                })
            })
            .collect();
        subs.insert(
            s.name.clone(),
            json!({
                "type": s.sub_type,
                "isDurable": s.durable,
                "msgBacklog": s.backlog,
                "msgOutCounter": s.msg_out,
                "bytesOutCounter": s.bytes_out,
                "msgDelayed": s.delayed,
                "consumers": consumers,
            }),
        );
    }
    let publishers: Vec<Value> = t
        .producers
        .iter()
        .map(|p| json!({"producerName": p.name, "producerId": p.producer_id}))
        .collect();
    json!({
        "msgRateIn": t.msg_rate_in,
        "msgRateOut": t.msg_rate_out,
        "msgInCounter": t.msg_in,
        "bytesInCounter": t.bytes_in,
        "storageSize": t.storage_bytes,
        "publishers": publishers,
        "subscriptions": subs,
    })
}
