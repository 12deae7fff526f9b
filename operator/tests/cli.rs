//! The dry-run CLI, run as a user runs it: `render` and `explain-pod` on
//! the repository's example policies.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use tollgate_operator::crd::LlmPolicy;
use tollgate_operator::render::render;
use tollgate_operator::webhook::validate::verdict;

const BIN: &str = env!("CARGO_BIN_EXE_tollgate-operator");

/// The policies the README and the e2e suites apply.
fn example_policies() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    vec![
        root.join("testdata/policy.yaml"),
        root.join("../examples/k8s/policy.yaml"),
    ]
}

fn run(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn render_prints_each_example_as_the_configmap_holds_it() {
    for path in example_policies() {
        let out = run(
            &[
                "render",
                "-f",
                path.to_str().unwrap(),
                "--namespace",
                "team-a",
            ],
            None,
        );
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert!(out.status.success(), "{}: {stderr}", path.display());
        // `tollgate-proxy check`'s own validation accepts it.
        let config = tollgate_config::from_yaml_str(&stdout)
            .unwrap_or_else(|e| panic!("{}: {e}\n{stdout}", path.display()));
        assert_eq!(config.name.as_deref(), Some("team-a/chat"));
        // The reconcile's bytes: the same render of the same spec.
        let policy: LlmPolicy =
            serde_saphyr::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let r = render("team-a", "chat", &policy.spec).unwrap();
        assert!(stdout.ends_with(&r.yaml), "{}", path.display());
        assert!(
            stdout.starts_with(&format!(
                "# ConfigMap team-a/tollgate-chat, key config.yaml; config hash {}\n",
                r.hash
            )),
            "{stdout}"
        );
        assert!(
            stdout.contains(
                "#   /var/run/secrets/tollgate/llm-keys/openai <- Secret team-a/llm-keys, key openai\n"
            ),
            "{stdout}"
        );
        assert!(stdout.contains("file: /var/run/secrets/tollgate/llm-keys/openai\n"));
    }
}

/// Every file of `examples/k8s`, sorted.
fn k8s_examples() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/k8s");
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    out.sort();
    out
}

/// `(name, key)` of every key of every Secret in a manifest file.
fn secret_keys(docs: &[serde_json::Value]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for d in docs.iter().filter(|d| d["kind"].as_str() == Some("Secret")) {
        let name = d["metadata"]["name"].as_str().unwrap().to_string();
        for field in ["data", "stringData"] {
            if let Some(m) = d[field].as_object() {
                out.extend(m.keys().map(|k| (name.clone(), k.clone())));
            }
        }
    }
    out
}

/// The LlmPolicy examples platform teams copy: each renders as the
/// operator would write it (Secrets and other kinds skipped with a note),
/// the proxy's own validation accepts the result, and every Secret key the
/// sidecar would mount is in a Secret of the same file, or (for a file
/// without Secrets) created by a `kubectl create secret` line of README.md.
#[test]
fn every_k8s_example_renders_and_names_only_secrets_it_provides() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .unwrap();
    let files = k8s_examples();
    assert!(files.len() > 1, "{files:?}");
    for path in files {
        let shown = path.display();
        let source = std::fs::read_to_string(&path).unwrap();
        let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&source).unwrap();
        let policies = docs
            .iter()
            .filter(|d| d["kind"].as_str() == Some("LlmPolicy"))
            .count();
        assert!(policies > 0, "{shown}: no LlmPolicy");

        let out = run(
            &["render", "-f", path.to_str().unwrap(), "-n", "team-a"],
            None,
        );
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert!(out.status.success(), "{shown}: {stderr}");
        let configs: Vec<&str> = stdout.split("\n---\n").collect();
        assert_eq!(configs.len(), policies, "{shown}: {stdout}");
        for c in configs {
            tollgate_config::from_yaml_str(c).unwrap_or_else(|e| panic!("{shown}: {e}\n{c}"));
        }

        let provided = secret_keys(&docs);
        for (name, _) in &provided {
            assert!(
                stderr.contains(&format!("skipped Secret {name}, not an LlmPolicy")),
                "{shown}: {stderr}"
            );
        }
        let mut mounted = 0;
        for line in stdout.lines() {
            let Some((_, r)) = line.split_once(" <- Secret team-a/") else {
                continue;
            };
            let (name, key) = r.split_once(", key ").unwrap();
            mounted += 1;
            if provided.is_empty() {
                let create = format!("create secret generic {name} --from-literal={key}=");
                assert!(
                    readme.contains(&create),
                    "{shown}: README.md has no `{create}`"
                );
            } else {
                assert!(
                    provided.contains(&(name.to_string(), key.to_string())),
                    "{shown}: the policy mounts Secret {name} key {key}, which the file's Secrets lack ({provided:?})"
                );
            }
        }
        assert!(mounted > 0, "{shown}: {stdout}");
        // No Secret key in the file that no policy uses.
        for (name, key) in &provided {
            assert!(
                stdout.contains(&format!(" <- Secret team-a/{name}, key {key}\n")),
                "{shown}: Secret {name} key {key} is not used"
            );
        }
    }
}

#[test]
fn render_reads_several_policies_from_stdin() {
    let docs: Vec<String> = example_policies()
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    let out = run(&["render", "-f", "-"], Some(&docs.join("---\n")));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let configs: Vec<&str> = stdout.split("\n---\n").collect();
    assert_eq!(configs.len(), 2, "{stdout}");
    for c in configs {
        // Neither file names a namespace: `default`.
        assert!(c.starts_with("# ConfigMap default/tollgate-chat,"), "{c}");
        tollgate_config::from_yaml_str(c).unwrap();
    }
}

#[test]
fn render_denies_an_invalid_policy_with_the_webhooks_message() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    let good = std::fs::read_to_string(&example_policies()[0]).unwrap();
    let bad = good.replace(
        "{provider: anthropic, model: claude-haiku-4-5, weight: 1}",
        "{provider: anthropc, model: claude-haiku-4-5, weight: 1}",
    );
    assert_ne!(good, bad);
    // `--namespace` wins over the manifest's own.
    let bad = bad.replace("  name: chat\n", "  name: chat\n  namespace: ignored\n");
    std::fs::write(&path, &bad).unwrap();
    let out = run(
        &["render", "-f", path.to_str().unwrap(), "-n", "team-a"],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout), "");
    let stderr = text(&out.stderr);
    // The validating webhook's answer for the same object.
    let mut policy: LlmPolicy = serde_saphyr::from_str(&bad).unwrap();
    policy.metadata.namespace = Some("team-a".into());
    let denial = verdict(&policy).unwrap_err();
    assert!(
        stderr.contains(&format!("error: LlmPolicy team-a/chat denied: {denial}\n")),
        "{stderr}"
    );
    assert!(
        stderr.contains("spec.routes[0].targets[1].provider: no provider is named `anthropc`"),
        "{stderr}"
    );
}

/// A typo in a typed section would be dropped by the API server (or
/// refused by `kubectl apply`): the dry run names it instead of rendering
/// without it.
#[test]
fn render_names_a_field_the_crd_lacks() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/k8s/cache.yaml");
    let good = std::fs::read_to_string(path).unwrap();
    let bad = good.replace("    maxEntries: 5000\n", "    maxEntires: 5000\n");
    assert_ne!(bad, good);
    let out = run(&["render", "-f", "-", "-n", "team-a"], Some(&bad));
    assert!(!out.status.success());
    assert_eq!(text(&out.stdout), "");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(
            "-: document 2: unknown field \"spec.cache.maxEntires\" (not in the LlmPolicy CRD"
        ),
        "{stderr}"
    );
}

#[test]
fn render_refuses_input_without_a_policy() {
    let out = run(
        &["render", "-f", "-"],
        Some("apiVersion: v1\nkind: Secret\nmetadata: {name: s}\n"),
    );
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("-: no LlmPolicy in it"), "{stderr}");
}

/// `explain-pod` for a pod with these metadata lines, against the example
/// policy, in a namespace with injection enabled.
fn explain(metadata: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let pod = dir.path().join("pod.yaml");
    std::fs::write(
        &pod,
        format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: app\n  namespace: team-a\n{metadata}spec:\n  containers: [{{name: app, image: app:1}}]\n"),
    )
    .unwrap();
    let out = run(
        &[
            "explain-pod",
            "-f",
            pod.to_str().unwrap(),
            "--policies",
            example_policies()[0].to_str().unwrap(),
            "--namespace-labels",
            "tollgate.dev/injection=enabled,team=a",
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
}

#[test]
fn explain_pod_an_injected_pod() {
    let out = explain("  labels: {app: chat}\n");
    for want in [
        "  chat: selects it (the winner) (podSelector: app=chat)\n",
        "Injected with LlmPolicy chat's sidecar: namespace team-a has tollgate.dev/injection=enabled\n",
        "  sidecar: init container tollgate-proxy (restartPolicy Always), image example.test/tollgate-proxy:dev\n",
        "  volume tollgate-secret-0: Secret llm-keys, keys anthropic, openai\n",
        "  env of container app: OPENAI_BASE_URL, ANTHROPIC_BASE_URL, OPENAI_API_KEY, ANTHROPIC_API_KEY\n",
    ] {
        assert!(out.contains(want), "{want:?} not in\n{out}");
    }
}

#[test]
fn explain_pod_an_opted_out_pod() {
    let out = explain("  labels: {app: chat, tollgate.dev/inject: \"false\"}\n");
    assert!(out.contains("  chat: selects it (the winner)"), "{out}");
    assert!(
        out.contains("Not injected: opted out (label tollgate.dev/inject=false)\n"),
        "{out}"
    );
    assert!(!out.contains("sidecar:"), "{out}");
}

#[test]
fn explain_pod_a_pod_no_policy_selects() {
    let out = explain("  labels: {app: billing}\n");
    assert!(
        out.contains("  chat: does not select it (podSelector: app=chat)\n"),
        "{out}"
    );
    assert!(
        out.contains("Not injected: no LlmPolicy of team-a selects it\n"),
        "{out}"
    );
}
