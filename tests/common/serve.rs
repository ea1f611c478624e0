//! What the serve tests share: the real binary as a child process whose output lines are
//! collected, the simulator on a free port (its settings read from what it prints), `flowrun
//! serve` subscribed, and the simulator's and the service's HTTP endpoints.

#![allow(dead_code)]

use super::common::{exchange, repo};
use serde_json::Value;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A child process whose stdout lines are collected as they come.
pub struct Process {
    pub child: Child,
    pub lines: Arc<Mutex<Vec<String>>>,
}

impl Process {
    pub fn start(args: &[&str], env: &[(String, String)]) -> Process {
        let mut child = Command::new(env!("CARGO_BIN_EXE_flowrun"))
            .args(args)
            .current_dir(repo(""))
            .env_remove("FLOWRUN_JOURNAL")
            .envs(env.iter().cloned())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let lines = lines.clone();
            tokio::spawn(async move {
                let mut reader = BufReader::new(stream).lines();
                while let Ok(Some(line)) = reader.next_line().await {
                    lines.lock().unwrap().push(line);
                }
            });
        }
        Process { child, lines }
    }

    /// The first line for which `f` gives something, waiting at most 20 s.
    pub async fn wait_for<T>(&self, what: &str, f: impl Fn(&str) -> Option<T>) -> T {
        let until = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(found) = self.lines.lock().unwrap().iter().find_map(|l| f(l)) {
                return found;
            }
            assert!(Instant::now() < until, "no {what} in:\n{}", self.output());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn line_with(&self, text: &str) -> String {
        self.wait_for(text, |l| l.contains(text).then(|| l.to_string()))
            .await
    }

    pub fn output(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    pub fn count(&self, text: &str) -> usize {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(text))
            .count()
    }
}

/// `flowrun sim` on a free port: the process, its base address and the environment it prints.
pub async fn simulator(config: Option<&std::path::Path>) -> (Process, String, Vec<(String, String)>) {
    let mut args = vec!["sim", "--port", "0"];
    let config = config.map(|c| c.display().to_string());
    if let Some(c) = &config {
        args.extend(["--config", c]);
    }
    let sim = Process::start(&args, &[]);
    sim.line_with("State: GET").await;
    let env: Vec<(String, String)> = sim
        .lines
        .lock()
        .unwrap()
        .iter()
        .filter_map(|l| l.trim().strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches('\'').to_string()))
        .collect();
    let base = env.iter().find(|(k, _)| k == "SCRT_BASE_URL").unwrap().1.clone();
    (sim, base.trim_start_matches("http://").to_string(), env)
}

/// `flowrun sim` with the default configuration as `change` makes it (written into `dir`).
pub async fn simulator_with(
    dir: &tempfile::TempDir,
    change: impl FnOnce(&mut Value),
) -> (Process, String, Vec<(String, String)>) {
    let config = dir.path().join("sim.yaml");
    let mut c = serde_json::to_value(flowrun::sim::SimConfig::default()).unwrap();
    change(&mut c);
    std::fs::write(&config, super::common::yaml(&c)).unwrap();
    simulator(Some(&config)).await
}

/// `flowrun serve SERVICE` with `journal`, subscribed: the process and its listening address.
pub async fn serve(service: &str, journal: &str, env: &[(String, String)]) -> (Process, String) {
    let (process, addr) = serving(service, journal, env).await;
    process.line_with("info subscribed").await;
    (process, addr)
}

/// `flowrun serve` once it listens (subscribed or not: another instance may hold the
/// subscription): the process and its address.
pub async fn serving(service: &str, journal: &str, env: &[(String, String)]) -> (Process, String) {
    let process = Process::start(
        &["serve", service, "--listen", "127.0.0.1:0", "--journal", journal],
        env,
    );
    let addr = process
        .wait_for("serving line", |l| {
            l.split_once(": serving on http://").map(|(_, a)| a.to_string())
        })
        .await;
    (process, addr)
}

pub async fn post(addr: &str, path: &str, body: Value) -> Value {
    let body = body.to_string();
    let (status, answer) = exchange(addr, "POST", path, &[], body.as_bytes()).await;
    assert_eq!(status, 200, "{path}: {answer}");
    serde_json::from_str(&answer).unwrap()
}

pub async fn state(sim: &str) -> Value {
    let (_, body) = exchange(sim, "GET", "/sim/state", &[], b"").await;
    serde_json::from_str(&body).unwrap()
}

/// Polls `GET /runs/ID` until the run has ended (at most 20 s).
pub async fn ended(addr: &str, id: &str) -> String {
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = exchange(addr, "GET", &format!("/runs/{id}"), &[], b"").await;
        if status == 200 {
            let s: Value = serde_json::from_str(&body).unwrap();
            if s["status"] != "running" && s["status"] != "queued" {
                return s["status"].as_str().unwrap().to_string();
            }
        }
        assert!(Instant::now() < until, "run {id} did not end");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
