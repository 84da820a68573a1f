//! The built binary as an operator runs it: `sfsync serve` and `sfsync simulator` as child
//! processes, their stderr collected line by line, stopped with real signals.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The `sfsync` binary cargo built for these tests.
pub fn sfsync() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sfsync"))
}

/// A child process whose stderr lines are collected as they come.
pub struct Process {
    child: Child,
    lines: mpsc::Receiver<String>,
    /// Every stderr line read so far.
    pub log: Vec<String>,
}

impl Process {
    /// Starts `sfsync args…` with exactly `env` (plus `PATH`), stdout piped.
    pub fn start(args: &[&str], env: &[(&str, String)]) -> Self {
        let mut cmd = sfsync();
        cmd.args(args);
        Self::spawn(cmd, env)
    }

    /// Runs `command` with `sh -c` (for `ulimit` and the like), the environment cleared.
    pub fn start_shell(command: &str) -> Self {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", command]);
        Self::spawn(cmd, &[])
    }

    fn spawn(mut cmd: Command, env: &[(&str, String)]) -> Self {
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            lines,
            log: Vec::new(),
        }
    }

    /// The first line the process prints on stdout.
    pub fn first_stdout_line(&mut self) -> String {
        let stdout = self.child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).expect("read");
        line
    }

    /// Reads stderr until a line containing `needle`; panics after 30 s or at end of stream.
    pub fn wait_for(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.log.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!("no {needle:?} in the log:\n{}", self.log.join("\n")),
            }
        }
    }

    /// The OS process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (e.g. `-TERM`) with `kill`.
    pub fn signal(&self, signal: &str) {
        let sent = Command::new("kill")
            .args([signal, &self.pid().to_string()])
            .status()
            .expect("kill");
        assert!(sent.success(), "kill {signal} failed");
    }

    /// Waits up to `limit` for the process to exit; returns its status and how long it took.
    pub fn wait_exit(&mut self, limit: Duration) -> (ExitStatus, Duration) {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                self.log.extend(self.lines.try_iter());
                // Lines written just before the exit may still be in the pipe.
                while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(200)) {
                    self.log.push(line);
                }
                return (status, started.elapsed());
            }
            if started.elapsed() > limit {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("still running after {limit:?}:\n{}", self.log.join("\n"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free loopback port: bound, read, released.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// The port in a `listening` log line (text or JSON).
pub fn port_in(line: &str) -> u16 {
    line.split("127.0.0.1:")
        .nth(1)
        .map(|rest| {
            rest.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
        })
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
}

/// Every file below `dir`, read whole.
pub fn files_below(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read_dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                out.push((path, bytes));
            }
        }
    }
    out
}
