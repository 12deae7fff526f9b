//! What a kubelet does for the injected sidecar, minus the container
//! runtime: projects the pod's ConfigMap and Secret volumes into a
//! directory the way the kubelet's atomic writer does (files are symlinks
//! into `..data`, which points at a timestamped directory and is swapped
//! with one rename on update), and runs the sidecar's command as a local
//! `tollgate-proxy` process.
//!
//! The one thing a process cannot do is mount: every volume's `mountPath`
//! becomes `<root><mountPath>`, and the same prefix is put in front of
//! those paths where they appear in the projected files and the sidecar's
//! arguments.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};
use kube::{Api, Client, ResourceExt};

const SIDECAR: &str = "tollgate-proxy";

/// The proxy binary: `TOLLGATE_PROXY_BIN`, else the workspace's
/// `target/{debug,release}` (scripts/test-all.sh builds every binary first).
fn proxy_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("TOLLGATE_PROXY_BIN") {
        return p.into();
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or(root.join("target"));
    ["debug", "release"]
        .iter()
        .map(|p| target.join(p).join("tollgate-proxy"))
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!(
                "no tollgate-proxy under {}: cargo build -p tollgate-proxy",
                target.display()
            )
        })
}

enum Source {
    ConfigMap(String),
    /// Secret name and `key → path` items.
    Secret(String, Vec<(String, String)>),
    EmptyDir,
    /// The ServiceAccount token the API server adds to every container;
    /// the proxy never reads it.
    Projected,
}

struct Mount {
    path: String,
    source: Source,
}

/// The sidecar of one pod, "running" on this machine.
pub struct Kubelet {
    client: Client,
    namespace: String,
    root: tempfile::TempDir,
    container: Container,
    mounts: Vec<Mount>,
    /// Last projected content per mount path, so unchanged volumes are not
    /// swapped (the kubelet only writes on change).
    projected: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
    generation: u32,
    proxy: Option<Child>,
    /// `http://127.0.0.1:PORT` of the proxy's admin listener, once running.
    pub admin: String,
}

impl Kubelet {
    /// Reads the injected pod's sidecar and volumes and projects them.
    pub async fn new(client: &Client, pod: &Pod) -> Kubelet {
        let spec = pod.spec.as_ref().expect("pod spec");
        let container = spec
            .init_containers
            .iter()
            .flatten()
            .find(|c| c.name == SIDECAR)
            .expect("the pod runs the injected sidecar")
            .clone();
        let volumes = spec.volumes.clone().unwrap_or_default();
        let mounts = container
            .volume_mounts
            .iter()
            .flatten()
            .map(|m| {
                let v = volumes
                    .iter()
                    .find(|v| v.name == m.name)
                    .unwrap_or_else(|| panic!("volume {} is declared", m.name));
                let source = if let Some(cm) = &v.config_map {
                    Source::ConfigMap(cm.name.clone())
                } else if let Some(s) = &v.secret {
                    let items = s
                        .items
                        .iter()
                        .flatten()
                        .map(|i| (i.key.clone(), i.path.clone()))
                        .collect();
                    Source::Secret(s.secret_name.clone().expect("secretName"), items)
                } else if v.empty_dir.is_some() {
                    Source::EmptyDir
                } else if v.projected.is_some() {
                    Source::Projected
                } else {
                    panic!("volume {}: unexpected source", m.name)
                };
                Mount {
                    path: m.mount_path.clone(),
                    source,
                }
            })
            .collect();
        let mut k = Kubelet {
            client: client.clone(),
            namespace: pod.namespace().expect("namespace"),
            root: tempfile::tempdir().unwrap(),
            container,
            mounts,
            projected: BTreeMap::new(),
            generation: 0,
            proxy: None,
            admin: String::new(),
        };
        k.sync().await;
        k
    }

    /// `<root><path>` for a path inside the container.
    fn host(&self, path: &str) -> PathBuf {
        PathBuf::from(format!("{}{path}", self.root.path().display()))
    }

    /// Container paths in `text` rewritten to where their volumes are.
    fn translate(&self, text: &str) -> String {
        let mut paths: Vec<&str> = self.mounts.iter().map(|m| m.path.as_str()).collect();
        paths.sort_by_key(|p| std::cmp::Reverse(p.len()));
        let root = self.root.path().display().to_string();
        let mut out = text.to_string();
        for (i, p) in paths.iter().enumerate() {
            // Placeholders first, so a rewritten path is not rewritten again.
            out = out.replace(p, &format!("\u{0}{i}\u{0}"));
        }
        for (i, p) in paths.iter().enumerate() {
            out = out.replace(&format!("\u{0}{i}\u{0}"), &format!("{root}{p}"));
        }
        out
    }

    /// Projects every volume from the API's current objects; returns
    /// whether anything changed.
    pub async fn sync(&mut self) -> bool {
        let mut changed = false;
        for i in 0..self.mounts.len() {
            let files: BTreeMap<String, Vec<u8>> = match &self.mounts[i].source {
                Source::EmptyDir => {
                    std::fs::create_dir_all(self.host(&self.mounts[i].path)).unwrap();
                    continue;
                }
                Source::Projected => continue,
                Source::ConfigMap(name) => {
                    let cm = Api::<ConfigMap>::namespaced(self.client.clone(), &self.namespace)
                        .get(name)
                        .await
                        .unwrap();
                    cm.data
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(k, v)| (k, self.translate(&v).into_bytes()))
                        .collect()
                }
                Source::Secret(name, items) => {
                    let s = Api::<Secret>::namespaced(self.client.clone(), &self.namespace)
                        .get(name)
                        .await
                        .unwrap();
                    let data = s.data.unwrap_or_default();
                    items
                        .iter()
                        .map(|(k, p)| (p.clone(), data[k].0.clone()))
                        .collect()
                }
            };
            let path = self.mounts[i].path.clone();
            if self.projected.get(&path) == Some(&files) {
                continue;
            }
            self.generation += 1;
            self.write(&path, &files);
            self.projected.insert(path, files);
            changed = true;
        }
        changed
    }

    /// The atomic writer: a new `..<ts>` directory, `..data_tmp` pointing at
    /// it renamed over `..data`, then the old directory removed.
    fn write(&self, mount_path: &str, files: &BTreeMap<String, Vec<u8>>) {
        let dir = self.host(mount_path);
        std::fs::create_dir_all(&dir).unwrap();
        let ts = format!("..2026_01_01_00_00_00.{}", self.generation);
        std::fs::create_dir(dir.join(&ts)).unwrap();
        for (name, content) in files {
            std::fs::write(dir.join(&ts).join(name), content).unwrap();
        }
        let old = std::fs::read_link(dir.join("..data")).ok();
        std::os::unix::fs::symlink(&ts, dir.join("..data_tmp")).unwrap();
        std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
        for name in files.keys() {
            let link = dir.join(name);
            if std::fs::symlink_metadata(&link).is_err() {
                std::os::unix::fs::symlink(format!("..data/{name}"), link).unwrap();
            }
        }
        if let Some(old) = old {
            std::fs::remove_dir_all(dir.join(old)).unwrap();
        }
    }

    /// Starts the sidecar's command; returns once it listens.
    pub fn run(&mut self) {
        let args: Vec<String> = self
            .container
            .args
            .iter()
            .flatten()
            .map(|a| self.translate(a))
            .collect();
        let log = std::fs::File::create(self.root.path().join("proxy.log")).unwrap();
        let mut child = Command::new(proxy_bin())
            .args(&args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("tollgate-proxy starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(30)).unwrap_or_default();
        let admin = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("admin="))
            .map(str::to_string);
        self.proxy = Some(child);
        match admin {
            Some(a) => self.admin = a,
            None => panic!("proxy did not start: {line:?}; log:\n{}", self.log()),
        }
    }

    /// The hash of the config the kubelet projected (paths rewritten, so it
    /// differs from the ConfigMap's own).
    pub fn projected_hash(&self) -> String {
        let args = self.container.args.clone().unwrap_or_default();
        let i = args.iter().position(|a| a == "--config").expect("--config");
        let path = self.host(&args[i + 1]);
        let text = std::fs::read_to_string(path).unwrap();
        tollgate_config::from_yaml_str(&text)
            .expect("the proxy accepts the projected config")
            .hash
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.root.path().join("proxy.log")).unwrap_or_default()
    }

    /// The running proxy's config hash (`GET /config` on its admin port).
    pub async fn config_hash(&self) -> Option<String> {
        let v: serde_json::Value = reqwest::get(format!("{}/config", self.admin))
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        v["hash"].as_str().map(str::to_string)
    }
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        if let Some(mut c) = self.proxy.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
