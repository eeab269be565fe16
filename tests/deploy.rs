//! `deploy/`: the scale-out manifests, checked against real validators and
//! against the product itself.
//!
//! - every YAML under `deploy/k8s` of a core Kubernetes kind through
//!   `kubernetes-validate --strict` (the published Kubernetes JSON schemas)
//!   for the oldest and newest Kubernetes versions we claim; the KEDA
//!   `ScaledObject` (a CRD, no core schema) structurally;
//! - `deploy/compose.yaml` with `docker compose config -q` where the plugin
//!   exists, else against the Compose Specification's JSON schema
//!   (`deploy/schema/compose-spec.json`), plus structure;
//! - the systemd units with `systemd-analyze verify` (warnings fail too),
//!   plus the hardening that must (and must not) be there;
//! - everything the manifests name in the product — subcommands and flags
//!   (`stemfeed <cmd> --help`), `STEMFEED_*` variables, config files (loaded
//!   by the real config loader, which rejects unknown keys), the health
//!   route and the queue-depth metric — exists in the product.
//!
//! The validators live in a virtual environment at
//! `~/.cache/stemfeed/deploy-venv` (or `$STEMFEED_DEPLOY_VENV`), created
//! with pinned versions on first use; YAML is read with its PyYAML.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::Value;

/// The validator and the packages it reads YAML and schemas with, pinned.
const VENV_PACKAGES: &[&str] = &[
    "kubernetes-validate==1.37.0",
    "PyYAML==6.0.4",
    "jsonschema==4.26.0",
];
const KUBERNETES_VALIDATE_VERSION: &str = "1.37.0";
/// Kubernetes versions the manifests must be valid for.
const KUBERNETES_VERSIONS: &[&str] = &["1.30.0", "1.37.0"];

/// The per-stage queue-depth gauge the scalers read, and the stage each
/// worker Deployment serves.
const QUEUE_METRIC: &str = "stemfeed_queue_depth";
fn stage_of(deployment: &str) -> &'static str {
    match deployment {
        "stemfeed-worker-cpu" => "transcode",
        "stemfeed-worker-gpu" => "captions",
        other => panic!("no stage known for {other}"),
    }
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn deploy() -> PathBuf {
    root().join("deploy")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    if !out.status.success() {
        eprintln!(
            "$ {cmd:?} -> {}\n--- stdout\n{}--- stderr\n{}",
            out.status,
            text(&out.stdout),
            text(&out.stderr)
        );
    }
    out
}

fn stemfeed() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_stemfeed"));
    cmd.env_remove("STEMFEED_CONFIG");
    cmd
}

/// The validators' virtual environment, created (pinned) when missing.
fn venv() -> &'static Path {
    static VENV: OnceLock<PathBuf> = OnceLock::new();
    VENV.get_or_init(|| {
        let dir = std::env::var_os("STEMFEED_DEPLOY_VENV")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(std::env::var_os("HOME").expect("HOME is set"))
                    .join(".cache/stemfeed/deploy-venv")
            });
        let installed = Command::new(dir.join("bin/kubernetes-validate"))
            .arg("--version")
            .output()
            .is_ok_and(|o| {
                o.status.success() && text(&o.stdout).trim() == KUBERNETES_VALIDATE_VERSION
            });
        if !installed {
            if !dir.join("bin/python").exists() {
                let out = run(Command::new("python3").args(["-m", "venv"]).arg(&dir));
                assert!(
                    out.status.success(),
                    "python3 -m venv {} failed",
                    dir.display()
                );
            }
            let out = run(Command::new(dir.join("bin/pip"))
                .args(["install", "--quiet", "--disable-pip-version-check"])
                .args(VENV_PACKAGES));
            assert!(out.status.success(), "pip install {VENV_PACKAGES:?} failed");
        }
        dir
    })
}

fn python() -> PathBuf {
    venv().join("bin/python")
}

/// Every YAML document of each file, as JSON (PyYAML's safe loader).
fn load_yaml(files: &[PathBuf]) -> Vec<Vec<Value>> {
    let out = run(Command::new(python())
        .args([
            "-c",
            "import json, sys, yaml\n\
             print(json.dumps([[d for d in yaml.safe_load_all(open(f)) if d is not None] for f in sys.argv[1:]]))",
        ])
        .args(files));
    assert!(out.status.success(), "YAML does not parse: {files:?}");
    serde_json::from_slice(&out.stdout).expect("JSON from the YAML loader")
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            yaml_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(p);
        }
    }
}

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rs_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// All Rust source of the product (crates/), once.
fn product_source() -> &'static str {
    static SRC: OnceLock<String> = OnceLock::new();
    SRC.get_or_init(|| {
        let mut files = Vec::new();
        rs_files(&root().join("crates"), &mut files);
        files
            .iter()
            .map(|f| std::fs::read_to_string(f).unwrap())
            .collect::<Vec<_>>()
            .join("\n")
    })
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A variable the manifests set for stemfeed must be one the product reads.
fn assert_env_is_real(name: &str, whence: &str) {
    if name.starts_with("STEMFEED_") {
        assert!(
            product_source().contains(&format!("\"{name}\"")),
            "{whence}: {name} is not read anywhere in crates/"
        );
    }
}

/// `args` (after the binary) name a real subcommand, and every `--flag`
/// is in that subcommand's `--help`.
fn assert_cli_is_real(args: &[String], whence: &str) {
    let flags: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| a.starts_with("--"))
        .map(|a| a.split('=').next().unwrap())
        .collect();
    let mut words: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .take_while(|a| !a.starts_with('-'))
        .collect();
    assert!(!words.is_empty(), "{whence}: no subcommand in {args:?}");
    // `models install default`: the last word may be an argument.
    let help = loop {
        let out = stemfeed().args(&words).arg("--help").output().unwrap();
        if out.status.success() {
            break text(&out.stdout);
        }
        words.pop();
        assert!(
            !words.is_empty(),
            "{whence}: {args:?} is no stemfeed command"
        );
    };
    assert!(
        !help.contains("Usage: stemfeed [OPTIONS] <COMMAND>"),
        "{whence}: {args:?} names no subcommand"
    );
    for flag in flags {
        assert!(
            help.split(|c: char| c.is_whitespace() || c == ',')
                .any(|w| w == flag),
            "{whence}: `stemfeed {}` has no {flag}:\n{help}",
            words.join(" ")
        );
    }
}

/// The real config loader (unknown keys are rejected by name) accepts `path`.
fn assert_config_loads(path: &Path) {
    let models = tempfile::tempdir().unwrap();
    let out = run(stemfeed()
        .arg("--config")
        .arg(path)
        .arg("--models-dir")
        .arg(models.path())
        .args(["models", "list", "--json"]));
    assert!(
        out.status.success(),
        "{} is not a valid stemfeed config: {}",
        path.display(),
        text(&out.stderr)
    );
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().map(|s| s.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

fn name(doc: &Value) -> &str {
    doc["metadata"]["name"].as_str().unwrap_or("")
}

/// The product exports the gauge and the state the scalers read, and serves
/// the route the probes hit.
#[test]
fn names_the_manifests_rely_on_exist_in_the_product() {
    let metrics = read(&root().join("crates/worker/src/metrics.rs"));
    assert!(metrics.contains(&format!("\"{QUEUE_METRIC}\",")));
    assert!(
        metrics.contains("stage: String"),
        "{QUEUE_METRIC} is labelled by stage"
    );
    let queue = read(&root().join("crates/queue/src/lib.rs"));
    for stage in ["transcode", "captions"] {
        assert!(queue.contains(&format!("=> \"{stage}\"")), "phase {stage}");
    }
    let server = read(&root().join("crates/server/src/lib.rs"));
    assert!(server.contains(".route(\"/healthz\""));
    let config = read(&root().join("crates/core/src/config.rs"));
    assert!(config.contains("pub metrics_listen: Option<String>"));
}

#[test]
fn kubernetes_manifests_are_valid() {
    let k8s = deploy().join("k8s");
    let mut files = Vec::new();
    yaml_files(&k8s, &mut files);
    assert!(!files.is_empty());
    let docs = load_yaml(&files);

    let mut core_files = Vec::new();
    let mut deployments: BTreeMap<String, Value> = BTreeMap::new();
    let mut by_kind: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for (file, docs) in files.iter().zip(&docs) {
        assert!(!docs.is_empty(), "{}: no documents", file.display());
        let mut crd = 0;
        for doc in docs {
            let api = doc["apiVersion"].as_str().expect("apiVersion");
            let kind = doc["kind"].as_str().expect("kind").to_owned();
            assert!(
                !name(doc).is_empty(),
                "{}: {kind} without a name",
                file.display()
            );
            if kind != "Namespace" {
                assert_eq!(
                    doc["metadata"]["namespace"],
                    "stemfeed",
                    "{}: {kind}",
                    file.display()
                );
            }
            let group = api.rsplit_once('/').map_or("", |(g, _)| g);
            if group.contains('.') && !group.ends_with(".k8s.io") {
                crd += 1;
            }
            if kind == "Deployment" {
                deployments.insert(name(doc).to_owned(), doc.clone());
            }
            by_kind.entry(kind).or_default().push(doc.clone());
        }
        assert!(
            crd == 0 || crd == docs.len(),
            "{}: keep custom resources and core kinds in separate files",
            file.display()
        );
        if crd == 0 {
            core_files.push(file.clone());
        }
    }

    // Core kinds: the Kubernetes JSON schemas, unknown fields rejected.
    for version in KUBERNETES_VERSIONS {
        let out = run(Command::new(venv().join("bin/kubernetes-validate"))
            .args(["--strict", "-k", version])
            .args(&core_files));
        let report = text(&out.stdout) + &text(&out.stderr);
        assert!(
            out.status.success() && !report.contains("WARN") && !report.contains("ERROR"),
            "kubernetes-validate {version}:\n{report}"
        );
        let passed = report.matches(" passed for resource ").count();
        let expected: usize = files
            .iter()
            .zip(&docs)
            .filter(|(f, _)| core_files.contains(f))
            .map(|(_, d)| d.len())
            .sum();
        assert_eq!(passed, expected, "every core resource validated:\n{report}");
    }

    // ConfigMap: the same text as deploy/config, accepted by the loader.
    let configmap = by_kind["ConfigMap"]
        .iter()
        .find(|d| name(d) == "stemfeed-config")
        .expect("ConfigMap stemfeed-config");
    for (key, value) in configmap["data"].as_object().unwrap() {
        let file = deploy().join("config").join(key);
        assert_eq!(
            value.as_str().unwrap(),
            read(&file),
            "ConfigMap key {key} differs from {}",
            file.display()
        );
        assert_config_loads(&file);
    }
    let secret = &by_kind["Secret"][0];
    for key in secret["stringData"].as_object().unwrap().keys() {
        assert_env_is_real(key, "Secret stemfeed-secrets");
    }

    // Containers run real commands with real variables; config keys exist.
    let mut pods: Vec<(String, Value)> = deployments
        .iter()
        .map(|(n, d)| (n.clone(), d["spec"]["template"]["spec"].clone()))
        .collect();
    pods.sort_by(|a, b| a.0.cmp(&b.0));
    for (dep, pod) in &pods {
        let mut containers = pod["containers"].as_array().unwrap().clone();
        containers.extend(
            pod["initContainers"]
                .as_array()
                .cloned()
                .unwrap_or_default(),
        );
        for c in &containers {
            assert_cli_is_real(&strs(&c["args"]), &format!("Deployment {dep}"));
            for e in c["env"].as_array().into_iter().flatten() {
                assert_env_is_real(e["name"].as_str().unwrap(), &format!("Deployment {dep}"));
            }
            for items in pod["volumes"].as_array().unwrap() {
                for item in items["configMap"]["items"].as_array().into_iter().flatten() {
                    let key = item["key"].as_str().unwrap();
                    assert!(
                        configmap["data"].get(key).is_some(),
                        "Deployment {dep} mounts missing ConfigMap key {key}"
                    );
                }
            }
        }
        assert_eq!(
            pod["securityContext"]["runAsNonRoot"], true,
            "{dep} runs as non-root"
        );
    }

    // The server: serve without workers, probes on /healthz.
    let server = &deployments["stemfeed-server"]["spec"]["template"]["spec"]["containers"][0];
    let args = strs(&server["args"]);
    assert_eq!(&args[..2], ["serve", "--no-worker"]);
    for probe in ["livenessProbe", "readinessProbe"] {
        assert_eq!(
            server[probe]["httpGet"]["path"], "/healthz",
            "server {probe}"
        );
    }

    // Workers: `stemfeed worker`; the GPU one asks for a GPU on GPU nodes.
    let cpu = &deployments["stemfeed-worker-cpu"]["spec"]["template"]["spec"];
    let gpu = &deployments["stemfeed-worker-gpu"]["spec"]["template"]["spec"];
    for w in [cpu, gpu] {
        assert_eq!(strs(&w["containers"][0]["args"])[0], "worker");
        assert_eq!(
            strs(&w["initContainers"][0]["args"]),
            ["models", "install", "default"]
        );
    }
    assert!(
        gpu["nodeSelector"]
            .as_object()
            .is_some_and(|m| !m.is_empty())
    );
    assert_eq!(
        gpu["containers"][0]["resources"]["limits"]["nvidia.com/gpu"], 1,
        "GPU worker limits nvidia.com/gpu: 1"
    );
    assert!(
        cpu["containers"][0]["resources"]["limits"]
            .get("nvidia.com/gpu")
            .is_none()
    );

    // Scaling: the HPA (External metric) and the KEDA alternative target
    // worker Deployments of this directory and read the real gauge.
    for hpa in &by_kind["HorizontalPodAutoscaler"] {
        assert_eq!(hpa["apiVersion"], "autoscaling/v2");
        let target = hpa["spec"]["scaleTargetRef"]["name"].as_str().unwrap();
        assert!(
            deployments.contains_key(target),
            "HPA targets missing {target}"
        );
        assert!(hpa["spec"]["minReplicas"].as_u64().unwrap() >= 1);
        let m = &hpa["spec"]["metrics"][0];
        let metric = &m[m["type"].as_str().unwrap().to_lowercase()]["metric"];
        assert_eq!(metric["name"], QUEUE_METRIC);
        assert_eq!(metric["selector"]["matchLabels"]["stage"], stage_of(target));
    }
    let scaled = by_kind.get("ScaledObject").expect("a KEDA ScaledObject");
    let mut targets = BTreeSet::new();
    for so in scaled {
        assert_eq!(so["apiVersion"], "keda.sh/v1alpha1");
        let spec = so["spec"].as_object().expect("spec");
        let known = [
            "scaleTargetRef",
            "minReplicaCount",
            "maxReplicaCount",
            "pollingInterval",
            "cooldownPeriod",
            "idleReplicaCount",
            "fallback",
            "advanced",
            "triggers",
        ];
        for key in spec.keys() {
            assert!(
                known.contains(&key.as_str()),
                "ScaledObject {}: unknown spec.{key}",
                name(so)
            );
        }
        let target = &so["spec"]["scaleTargetRef"];
        let tname = target["name"].as_str().expect("scaleTargetRef.name");
        assert!(
            deployments.contains_key(tname),
            "ScaledObject targets missing {tname}"
        );
        if let Some(kind) = target["kind"].as_str() {
            assert_eq!(kind, "Deployment");
        }
        targets.insert(tname.to_owned());
        let (min, max) = (
            so["spec"]["minReplicaCount"]
                .as_u64()
                .expect("minReplicaCount"),
            so["spec"]["maxReplicaCount"]
                .as_u64()
                .expect("maxReplicaCount"),
        );
        assert!(
            min >= 1 && max >= min,
            "only running workers export the metric"
        );
        let triggers = so["spec"]["triggers"].as_array().expect("triggers");
        assert!(!triggers.is_empty());
        for t in triggers {
            assert_eq!(t["type"], "prometheus");
            let md = &t["metadata"];
            let query = md["query"].as_str().expect("query");
            let stage = stage_of(tname);
            assert!(
                query.contains(&format!("{QUEUE_METRIC}{{"))
                    && query.contains(&format!("stage=\"{stage}\"")),
                "trigger of {tname} reads {QUEUE_METRIC}{{stage=\"{stage}\"}}: {query}"
            );
            assert!(md["serverAddress"].as_str().unwrap().starts_with("http"));
            for key in ["threshold", "activationThreshold"] {
                if let Some(v) = md.get(key) {
                    v.as_str()
                        .expect("KEDA metadata values are strings")
                        .parse::<f64>()
                        .unwrap_or_else(|_| panic!("{key} is a number"));
                }
            }
            assert!(md.get("threshold").is_some());
        }
    }
    assert!(targets.contains("stemfeed-worker-gpu") && targets.contains("stemfeed-worker-cpu"));
}

#[test]
fn compose_file_is_valid() {
    let compose = deploy().join("compose.yaml");
    let plugin = Command::new("docker")
        .args(["compose", "version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if plugin {
        let out = run(Command::new("docker")
            .args(["compose", "-f"])
            .arg(&compose)
            .args(["config", "-q"]));
        assert!(
            out.status.success(),
            "docker compose config: {}",
            text(&out.stderr)
        );
    } else {
        eprintln!("no `docker compose` plugin here: validating against the Compose schema");
    }
    // The Compose Specification's schema (always: it is fast and exact).
    let out = run(Command::new(python())
        .args([
            "-c",
            "import json, sys, yaml, jsonschema\n\
             schema = json.load(open(sys.argv[1]))\n\
             doc = yaml.safe_load(open(sys.argv[2]))\n\
             errors = list(jsonschema.Draft7Validator(schema).iter_errors(doc))\n\
             for e in errors: print(e.json_path, e.message)\n\
             sys.exit(1 if errors else 0)",
        ])
        .arg(deploy().join("schema/compose-spec.json"))
        .arg(&compose));
    assert!(
        out.status.success(),
        "compose.yaml against the Compose schema:\n{}",
        text(&out.stdout)
    );

    let doc = load_yaml(std::slice::from_ref(&compose))
        .remove(0)
        .remove(0);
    let services = doc["services"].as_object().unwrap();
    let containerfile = read(&deploy().join("Containerfile"));
    for (name, svc) in services {
        for (key, value) in svc["environment"].as_object().into_iter().flatten() {
            assert_env_is_real(key, &format!("compose service {name}"));
            assert!(
                value.is_string(),
                "compose service {name}: {key} is a string"
            );
        }
        if svc["image"]
            .as_str()
            .is_some_and(|i| i.starts_with("stemfeed:"))
        {
            assert_cli_is_real(&strs(&svc["command"]), &format!("compose service {name}"));
            for v in strs(&svc["volumes"]) {
                if let Some(src) = v.strip_prefix("./") {
                    let host = deploy().join(src.split(':').next().unwrap());
                    assert!(
                        host.is_file(),
                        "compose service {name} mounts missing {}",
                        host.display()
                    );
                    assert_config_loads(&host);
                }
            }
        }
        if let Some(target) = svc["build"]["target"].as_str() {
            assert!(
                containerfile.contains(&format!(" AS {target}\n")),
                "compose service {name}: no stage {target} in deploy/Containerfile"
            );
        }
    }
    let server = &services["server"];
    assert_eq!(&strs(&server["command"])[..2], ["serve", "--no-worker"]);
    assert!(
        strs(&server["healthcheck"]["test"])
            .iter()
            .any(|a| a.ends_with("/healthz"))
    );
    assert_eq!(strs(&services["worker"]["command"])[0], "worker");
    assert_eq!(
        strs(&services["models"]["command"]),
        ["models", "install", "default"]
    );
    for svc in ["postgres", "minio", "createbucket"] {
        assert!(services.contains_key(svc), "compose has {svc}");
    }
    let gpu = &services["worker-gpu"];
    assert_eq!(gpu["build"]["target"], "runtime-cuda");
    let devices = &gpu["deploy"]["resources"]["reservations"]["devices"][0];
    assert!(strs(&devices["capabilities"]).contains(&"gpu".to_owned()));
}

/// `KEY=VALUE` lines of a unit's section(s), in order.
fn unit_settings(unit: &str) -> Vec<(String, String)> {
    unit.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.starts_with('[') && l.contains('='))
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap();
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

#[test]
fn systemd_units_are_valid_and_keep_the_sandbox_possible() {
    let dir = deploy().join("systemd");
    let units = ["stemfeed-serve.service", "stemfeed-worker@.service"];
    for unit in units {
        let body = read(&dir.join(unit));
        let settings = unit_settings(&body);
        let get = |k: &str| -> Vec<&str> {
            settings
                .iter()
                .filter(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
                .collect()
        };
        for (k, v) in [
            ("NoNewPrivileges", "yes"),
            ("ProtectSystem", "strict"),
            ("PrivateTmp", "yes"),
            ("ProtectHome", "yes"),
            ("CapabilityBoundingSet", ""),
        ] {
            assert_eq!(get(k), [v], "{unit}: {k}={v}");
        }
        assert!(
            get("ReadWritePaths")
                .iter()
                .any(|p| p.contains("/var/lib/stemfeed")),
            "{unit}: ReadWritePaths"
        );
        assert!(
            get("User").iter().all(|u| *u != "root") && !get("User").is_empty(),
            "{unit}: a user"
        );
        let exec = get("ExecStart");
        assert_eq!(exec.len(), 1);
        let args: Vec<String> = exec[0]
            .split_whitespace()
            .skip(1)
            .map(str::to_owned)
            .collect();
        assert_cli_is_real(&args, unit);
        for env in get("Environment") {
            assert_env_is_real(env.split('=').next().unwrap(), unit);
        }
        if unit.starts_with("stemfeed-worker") {
            // Stage processes unshare a user and a network namespace and
            // install Landlock rules: the unit must allow all of it.
            let ns = get("RestrictNamespaces");
            assert_eq!(ns.len(), 1, "{unit}: one RestrictNamespaces");
            let allowed: BTreeSet<&str> = ns[0].split_whitespace().collect();
            assert!(
                allowed.contains("user") && allowed.contains("net") && !ns[0].starts_with('~'),
                "{unit}: RestrictNamespaces must allow user and net: {}",
                ns[0]
            );
            for forbidden in ["PrivateUsers", "MemoryDenyWriteExecute"] {
                assert!(
                    get(forbidden).iter().all(|v| *v == "no" || v.is_empty()),
                    "{unit}: {forbidden} breaks stage processes"
                );
            }
            let filter = get("SystemCallFilter").join(" ");
            for call in [
                "landlock_create_ruleset",
                "landlock_add_rule",
                "landlock_restrict_self",
            ] {
                assert!(
                    filter.is_empty() || filter.contains(call),
                    "{unit}: {call} allowed"
                );
            }
            assert!(exec[0].contains(" worker"));
        } else {
            assert!(exec[0].contains(" serve --no-worker"));
        }
    }
    assert_config_loads(&dir.join("worker-1.toml"));

    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("no systemd-analyze here: structural checks only");
        return;
    }
    // verify resolves ExecStart: point it at the binary under test. The GPU
    // drop-in is verified as part of the worker unit.
    let tmp = tempfile::tempdir().unwrap();
    for unit in units {
        let body = read(&dir.join(unit))
            .replace("/usr/local/bin/stemfeed", env!("CARGO_BIN_EXE_stemfeed"));
        std::fs::write(tmp.path().join(unit), body).unwrap();
    }
    let dropins = tmp.path().join("stemfeed-worker@.service.d");
    std::fs::create_dir(&dropins).unwrap();
    std::fs::copy(dir.join("gpu.conf"), dropins.join("gpu.conf")).unwrap();
    let out = run(Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(tmp.path().join(units[0]))
        .arg(tmp.path().join("stemfeed-worker@1.service"))
        .arg(tmp.path().join(units[1])));
    let stderr = text(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify:\n{stderr}"
    );
}

#[test]
fn containerfile_builds_what_the_project_builds() {
    let file = read(&deploy().join("Containerfile"));
    let cargo = read(&root().join("Cargo.toml"));
    let rust = cargo
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .expect("workspace rust-version")
        .trim_matches('"');
    let toolchain_file = ["rust-toolchain", "rust-toolchain.toml"]
        .iter()
        .any(|f| root().join(f).exists());
    if !toolchain_file {
        assert!(
            file.contains(&format!("ARG RUST_VERSION={rust}\n")),
            "toolchain {rust}"
        );
    }
    assert!(file.contains("FROM debian:bookworm AS builder\n"));
    assert!(
        file.contains("cargo build --release --locked\n")
            || file.contains("cargo build --release --locked \\")
    );
    assert!(file.contains("--features cuda"));
    let setup = read(&root().join("scripts/setup.sh"));
    for pkg in [
        "build-essential",
        "cmake",
        "pkg-config",
        "libgstreamer1.0-dev",
        "libgstreamer-plugins-base1.0-dev",
        "gstreamer1.0-plugins-good",
        "gstreamer1.0-plugins-ugly",
        "gstreamer1.0-libav",
    ] {
        assert!(
            setup.contains(pkg) && file.contains(pkg),
            "{pkg} in setup.sh and the image"
        );
    }
    // Stages: each runtime ends as a non-root user; no weights baked in.
    let mut stage = String::new();
    let mut users: BTreeMap<String, String> = BTreeMap::new();
    for line in file.lines() {
        if let Some(rest) = line.strip_prefix("FROM ") {
            stage = rest.rsplit(" AS ").next().unwrap().to_owned();
        }
        if let Some(u) = line.strip_prefix("USER ") {
            users.insert(stage.clone(), u.to_owned());
        }
        assert!(
            !(line.trim_start().starts_with("RUN") && line.contains("models install")),
            "models are installed into a volume at run time, not baked in"
        );
    }
    for target in ["runtime", "runtime-cuda"] {
        let user = users
            .get(target)
            .unwrap_or_else(|| panic!("stage {target} sets USER"));
        assert!(
            !user.starts_with("root") && !user.starts_with('0'),
            "{target} runs as {user}"
        );
    }
}
