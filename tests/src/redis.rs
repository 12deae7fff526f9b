//! A real `redis-server` for the tests that share state through Redis: a
//! child on a free loopback port, in its own temporary directory, with AOF
//! on so a restart keeps its data; killed on drop.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Redis {
    bin: PathBuf,
    pub port: u16,
    extra: Vec<String>,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

fn redis_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("redis-server"))
        .find(|p| p.is_file())
}

impl Redis {
    /// Starts one, or returns `None` (skip) when `redis-server` is not on
    /// PATH and `TOLLGATE_REQUIRE_REDIS` is unset.
    pub async fn start() -> Option<Redis> {
        Redis::start_with(&[]).await
    }

    /// [`Redis::start`] with `extra` arguments (e.g. `--requirepass`).
    pub async fn start_with(extra: &[&str]) -> Option<Redis> {
        let Some(bin) = redis_binary() else {
            assert!(
                std::env::var_os("TOLLGATE_REQUIRE_REDIS").is_none(),
                "TOLLGATE_REQUIRE_REDIS is set but redis-server is not on PATH"
            );
            eprintln!("SKIPPED: redis-server not found on PATH (apt-get install -y redis-server)");
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut r = Redis {
            bin,
            port,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            dir: tempfile::tempdir().unwrap(),
            child: None,
        };
        r.run().await;
        Some(r)
    }

    async fn run(&mut self) {
        let child = Command::new(&self.bin)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(self.dir.path())
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
            .args(["--daemonize", "no", "--protected-mode", "no"])
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.listening().await {
            assert!(Instant::now() < deadline, "redis-server did not answer");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Answers `PING`: `+PONG`, or `-NOAUTH` behind a password (never
    /// `-LOADING`, so a restart waits until its data is back).
    async fn listening(&self) -> bool {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await else {
            return false;
        };
        let mut buf = [0u8; 16];
        s.write_all(b"PING\r\n").await.is_ok()
            && matches!(s.read(&mut buf).await,
                Ok(n) if buf[..n].starts_with(b"+") || buf[..n].starts_with(b"-NOAUTH"))
    }

    /// Kills the server (its data stays in the AOF).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port and data.
    pub async fn restart(&mut self) {
        self.stop();
        self.run().await;
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}
