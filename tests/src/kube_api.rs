//! A fake Kubernetes API server for `mirror run --kubeconfig`: the pod reads the agent makes,
//! over plain HTTP on 127.0.0.1 inside a test's node netns, and a kubeconfig that points at it.
//!
//! It serves what a kube-rs client and its `watcher` ask for:
//!
//! - `GET /api/v1/namespaces/NS/pods/NAME`: the pod, or a 404 `Status`;
//! - `GET /api/v1/pods` and `/api/v1/namespaces/NS/pods` with `labelSelector` (`k=v`, `k!=v`,
//!   `k`, `!k`, comma-separated) and `fieldSelector` (`metadata.name`, `metadata.namespace`,
//!   `spec.nodeName`, with `=` or `!=`): a `PodList` with the current `resourceVersion`;
//! - the same with `watch=true` (or `1`) and `resourceVersion=V`: a chunked stream of JSON lines
//!   `{"type":"ADDED"|"MODIFIED"|"DELETED","object":POD}` for every change after V, as the API
//!   server's watch cache sends them for a selector (a pod that starts or stops matching is
//!   `ADDED` or `DELETED`), until `timeoutSeconds` or the server stops.
//!
//! Anything else is a 400 or 404, so a request the fake does not understand fails the test
//! instead of passing silently. Every request line is kept for the test to look at.

use std::{
    collections::BTreeMap,
    io::{BufRead as _, BufReader, Write as _},
    net::{SocketAddr, TcpListener, TcpStream},
    path::PathBuf,
    sync::{
        Arc, Condvar, Mutex, MutexGuard,
        atomic::{AtomicBool, Ordering},
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use serde_json::{Value, json};

use crate::{netns::Netns, scratch::ScratchDir};

/// A pod as the fake API reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiPod {
    pub namespace: String,
    pub name: String,
    /// `spec.nodeName`.
    pub node: String,
    pub labels: Vec<(String, String)>,
    /// `status.phase`.
    pub phase: String,
    /// `status.podIP` and `status.podIPs`.
    pub ip: Option<String>,
}

impl ApiPod {
    /// A running pod `namespace/name` on `node` with `ip`.
    pub fn running(namespace: &str, name: &str, node: &str, ip: &str) -> Self {
        Self {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            node: node.to_owned(),
            labels: Vec::new(),
            phase: "Running".to_owned(),
            ip: Some(ip.to_owned()),
        }
    }

    /// With label `key=value` too.
    #[must_use]
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.labels.push((key.to_owned(), value.to_owned()));
        self
    }

    fn to_json(&self, resource_version: u64) -> Value {
        let labels: serde_json::Map<String, Value> = self
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        let mut status = json!({ "phase": self.phase });
        if let Some(ip) = &self.ip {
            status["podIP"] = json!(ip);
            status["podIPs"] = json!([{ "ip": ip }]);
        }
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "uid": format!("{}-{}", self.namespace, self.name),
                "resourceVersion": resource_version.to_string(),
                "labels": labels,
            },
            "spec": {
                "nodeName": self.node,
                "containers": [{ "name": "main", "image": "pause" }],
            },
            "status": status,
        })
    }
}

/// One change, as watches replay it.
struct Change {
    version: u64,
    /// The pod before (none when added) and after (none when deleted).
    before: Option<ApiPod>,
    after: Option<ApiPod>,
}

#[derive(Default)]
struct State {
    pods: BTreeMap<(String, String), (ApiPod, u64)>,
    version: u64,
    changes: Vec<Change>,
    requests: Vec<String>,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    stop: AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The fake server, listening in a netns; stopped (and its kubeconfig removed) on drop.
pub struct FakeApi {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
    dir: ScratchDir,
}

impl FakeApi {
    /// Listens on 127.0.0.1 (a free port) inside `ns`.
    pub fn start(ns: &Netns) -> Result<Self> {
        let listener = ns.within(|| {
            TcpListener::bind("127.0.0.1:0").context("binding the fake Kubernetes API")
        })?;
        listener
            .set_nonblocking(true)
            .context("making the fake API's listener non-blocking")?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        let acceptor = thread::Builder::new()
            .name("fake-kube-api".into())
            .spawn({
                let shared = Arc::clone(&shared);
                move || accept(&listener, &shared)
            })
            .context("starting the fake API's thread")?;
        let api = Self {
            addr,
            shared,
            acceptor: Some(acceptor),
            dir: ScratchDir::new()?,
        };
        std::fs::write(api.kubeconfig(), kubeconfig(&api.url()))
            .context("writing the fake API's kubeconfig")?;
        Ok(api)
    }

    /// `http://127.0.0.1:PORT` (inside the netns).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kubeconfig file whose one context is this server, without credentials.
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig.yaml")
    }

    /// Adds or changes a pod (`ADDED` or `MODIFIED` to watches).
    pub fn put(&self, pod: &ApiPod) {
        let mut state = self.shared.lock();
        state.version += 1;
        let version = state.version;
        let key = (pod.namespace.clone(), pod.name.clone());
        let before = state.pods.insert(key, (pod.clone(), version)).map(|p| p.0);
        state.changes.push(Change {
            version,
            before,
            after: Some(pod.clone()),
        });
        drop(state);
        self.shared.changed.notify_all();
    }

    /// Deletes a pod (`DELETED` to watches that saw it); `false` if there was none.
    pub fn delete(&self, namespace: &str, name: &str) -> bool {
        let mut state = self.shared.lock();
        let Some((before, _)) = state.pods.remove(&(namespace.to_owned(), name.to_owned())) else {
            return false;
        };
        state.version += 1;
        let version = state.version;
        state.changes.push(Change {
            version,
            before: Some(before),
            after: None,
        });
        drop(state);
        self.shared.changed.notify_all();
        true
    }

    /// The request lines served so far (`GET /api/v1/... HTTP/1.1`), percent-decoded.
    pub fn requests(&self) -> Vec<String> {
        self.shared.lock().requests.clone()
    }

    /// Watch requests served so far (`watch=true` or `watch=1`).
    pub fn watches(&self) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.contains("watch=true") || r.contains("watch=1"))
            .count()
    }
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.shared.changed.notify_all();
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

fn kubeconfig(url: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\ncurrent-context: fake\n\
         clusters:\n- name: fake\n  cluster:\n    server: {url}\n\
         contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n    namespace: default\n\
         users:\n- name: fake\n  user: {{}}\n"
    )
}

/// Accepts until stopped; one thread per connection, which ends with its response.
fn accept(listener: &TcpListener, shared: &Arc<Shared>) {
    let mut connections: Vec<JoinHandle<()>> = Vec::new();
    while !shared.stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => {
                let shared = Arc::clone(shared);
                connections.push(thread::spawn(move || {
                    let _ = stream.set_nonblocking(false);
                    let _ = serve(stream, &shared);
                }));
            }
            Err(_) => thread::sleep(Duration::from_millis(10)),
        }
        connections.retain(|c| !c.is_finished());
    }
    for connection in connections {
        let _ = connection.join();
    }
}

/// One request, one response, then the connection closes.
fn serve(stream: TcpStream, shared: &Shared) -> Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    // The headers: nothing in them matters here.
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
            break;
        }
    }
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let params: BTreeMap<String, String> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect();
    shared
        .lock()
        .requests
        .push(format!("{method} {path}?{}", decode(query)));
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let mut stream = stream;
    if method != "GET" {
        return respond(
            &mut stream,
            405,
            &status(405, "MethodNotAllowed", "only GET"),
        );
    }
    match segments.as_slice() {
        ["api", "v1", "namespaces", namespace, "pods", name] => {
            let found = shared
                .lock()
                .pods
                .get(&((*namespace).to_owned(), (*name).to_owned()))
                .map(|(pod, version)| pod.to_json(*version));
            let not_found = || status(404, "NotFound", &format!("pods \"{name}\" not found"));
            match found {
                Some(body) => respond(&mut stream, 200, &body),
                None => respond(&mut stream, 404, &not_found()),
            }
        }
        ["api", "v1", "pods"] => list_or_watch(&mut stream, shared, None, &params),
        ["api", "v1", "namespaces", namespace, "pods"] => {
            list_or_watch(&mut stream, shared, Some(namespace), &params)
        }
        _ => respond(
            &mut stream,
            404,
            &status(404, "NotFound", "not served here"),
        ),
    }
}

fn list_or_watch(
    stream: &mut TcpStream,
    shared: &Shared,
    namespace: Option<&str>,
    params: &BTreeMap<String, String>,
) -> Result<()> {
    let selector = match Selector::new(namespace, params) {
        Ok(selector) => selector,
        Err(why) => return respond(stream, 400, &status(400, "BadRequest", &why)),
    };
    let watch = params.get("watch").is_some_and(|w| w == "true" || w == "1");
    if !watch {
        let state = shared.lock();
        let items: Vec<Value> = state
            .pods
            .values()
            .filter(|(pod, _)| selector.matches(pod))
            .map(|(pod, version)| pod.to_json(*version))
            .collect();
        let body = json!({
            "apiVersion": "v1",
            "kind": "PodList",
            "metadata": { "resourceVersion": state.version.to_string() },
            "items": items,
        });
        drop(state);
        return respond(stream, 200, &body);
    }
    let Some(mut seen) = params
        .get("resourceVersion")
        .and_then(|v| v.parse::<u64>().ok())
    else {
        return respond(
            stream,
            400,
            &status(400, "BadRequest", "a watch needs a resourceVersion"),
        );
    };
    let timeout = params
        .get("timeoutSeconds")
        .and_then(|t| t.parse().ok())
        .map_or(Duration::from_mins(5), Duration::from_secs);
    let deadline = Instant::now() + timeout;
    write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )?;
    stream.flush()?;
    while !shared.stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        let mut state = shared.lock();
        let news: Vec<Value> = state
            .changes
            .iter()
            .filter(|c| c.version > seen)
            .filter_map(|c| selector.event(c))
            .collect();
        let latest = state.version;
        if news.is_empty() && latest == seen {
            let (guard, _) = shared
                .changed
                .wait_timeout(state, Duration::from_millis(100))
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            state = guard;
            drop(state);
            continue;
        }
        drop(state);
        seen = latest;
        for event in news {
            let line = format!("{event}\n");
            write!(stream, "{:x}\r\n{line}\r\n", line.len())?;
        }
        stream.flush()?;
    }
    write!(stream, "0\r\n\r\n")?;
    stream.flush()?;
    Ok(())
}

/// The pods a list or watch asks for.
struct Selector {
    namespace: Option<String>,
    labels: Vec<(String, Op, String)>,
    fields: Vec<(String, Op, String)>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Equals,
    NotEquals,
    Exists,
    DoesNotExist,
}

impl Selector {
    fn new(namespace: Option<&str>, params: &BTreeMap<String, String>) -> Result<Self, String> {
        let parse = |text: Option<&String>, allow_exists: bool| {
            text.map_or("", String::as_str)
                .split(',')
                .filter(|r| !r.trim().is_empty())
                .map(|r| {
                    let r = r.trim();
                    if let Some((k, v)) = r.split_once("!=") {
                        Ok((k.trim().to_owned(), Op::NotEquals, v.trim().to_owned()))
                    } else if let Some((k, v)) = r.split_once("==").or_else(|| r.split_once('=')) {
                        Ok((k.trim().to_owned(), Op::Equals, v.trim().to_owned()))
                    } else if !allow_exists || r.contains(['(', ')', ' ', '<', '>']) {
                        Err(format!("the fake API does not understand `{r}`"))
                    } else if let Some(k) = r.strip_prefix('!') {
                        Ok((k.trim().to_owned(), Op::DoesNotExist, String::new()))
                    } else {
                        Ok((r.to_owned(), Op::Exists, String::new()))
                    }
                })
                .collect::<Result<Vec<_>, String>>()
        };
        let fields = parse(params.get("fieldSelector"), false)?;
        if let Some((field, ..)) = fields.iter().find(|(f, ..)| {
            !matches!(
                f.as_str(),
                "metadata.name" | "metadata.namespace" | "spec.nodeName"
            )
        }) {
            return Err(format!("field selector on `{field}` is not supported"));
        }
        Ok(Self {
            namespace: namespace.map(str::to_owned),
            labels: parse(params.get("labelSelector"), true)?,
            fields,
        })
    }

    fn matches(&self, pod: &ApiPod) -> bool {
        if self.namespace.as_ref().is_some_and(|n| *n != pod.namespace) {
            return false;
        }
        let label = |key: &str| {
            pod.labels
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        };
        let field = |key: &str| {
            Some(match key {
                "metadata.name" => pod.name.as_str(),
                "metadata.namespace" => pod.namespace.as_str(),
                _ => pod.node.as_str(),
            })
        };
        let holds = |value: Option<&str>, op: Op, wanted: &str| match op {
            Op::Equals => value == Some(wanted),
            Op::NotEquals => value != Some(wanted),
            Op::Exists => value.is_some(),
            Op::DoesNotExist => value.is_none(),
        };
        self.labels.iter().all(|(k, op, v)| holds(label(k), *op, v))
            && self.fields.iter().all(|(k, op, v)| holds(field(k), *op, v))
    }

    /// The watch event `change` makes for this selector, if any.
    fn event(&self, change: &Change) -> Option<Value> {
        let before = change.before.as_ref().filter(|p| self.matches(p));
        let after = change.after.as_ref().filter(|p| self.matches(p));
        let (kind, pod) = match (before, after) {
            (None, Some(pod)) => ("ADDED", pod),
            (Some(_), Some(pod)) => ("MODIFIED", pod),
            // Deleted, or no longer selected: the object as it is now.
            (Some(old), None) => ("DELETED", change.after.as_ref().unwrap_or(old)),
            (None, None) => return None,
        };
        Some(json!({ "type": kind, "object": pod.to_json(change.version) }))
    }
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Status",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    })
}

fn respond(stream: &mut TcpStream, code: u16, body: &Value) -> Result<()> {
    let text = body.to_string();
    let reason = match code {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        _ => "Method Not Allowed",
    };
    write!(
        stream,
        "HTTP/1.1 {code} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    )?;
    stream.flush()?;
    Ok(())
}

/// Percent-decoding of a query component (`+` is a space, as form encoding writes it).
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_queries() {
        assert_eq!(decode("app%3Dx%2Ctier+in+%28a%29"), "app=x,tier in (a)");
        assert_eq!(decode("100%"), "100%");
        assert_eq!(decode("%zz"), "%zz");
    }

    #[test]
    fn selects_like_the_api_server() {
        let params = |labels: &str, fields: &str| {
            BTreeMap::from([
                ("labelSelector".to_owned(), labels.to_owned()),
                ("fieldSelector".to_owned(), fields.to_owned()),
            ])
        };
        let pod = ApiPod::running("cafe", "latte", "node-a", "198.19.1.2").label("app", "x");
        let on = |labels: &str, fields: &str| {
            Selector::new(None, &params(labels, fields))
                .unwrap()
                .matches(&pod)
        };
        assert!(on("app=x", "spec.nodeName=node-a"));
        assert!(on(
            "app==x,!legacy",
            "metadata.name=latte,spec.nodeName=node-a"
        ));
        assert!(!on("app=y", ""));
        assert!(!on("app=x", "spec.nodeName=node-b"));
        assert!(on("app", "spec.nodeName!=node-b"));
        assert!(Selector::new(None, &params("tier in (a)", "")).is_err());
        assert!(Selector::new(None, &params("", "status.phase=Running")).is_err());
        // A pod that leaves the selection is DELETED for the watch; one that enters, ADDED.
        let selector = Selector::new(None, &params("app=x", "")).unwrap();
        let moved = Change {
            version: 7,
            before: Some(pod.clone()),
            after: Some(ApiPod {
                phase: "Succeeded".to_owned(),
                ..pod.clone()
            }),
        };
        let relabelled = ApiPod {
            labels: vec![("app".to_owned(), "y".to_owned())],
            ..pod.clone()
        };
        let left = Change {
            version: 8,
            before: Some(pod.clone()),
            after: Some(relabelled.clone()),
        };
        assert_eq!(selector.event(&moved).unwrap()["type"], "MODIFIED");
        assert_eq!(selector.event(&left).unwrap()["type"], "DELETED");
        let entered = Change {
            version: 9,
            before: Some(relabelled),
            after: Some(pod),
        };
        assert_eq!(selector.event(&entered).unwrap()["type"], "ADDED");
    }
}
