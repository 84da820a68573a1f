//! The Kubernetes manifests in `deploy/kubernetes/` checked against sfsync itself: every shard's
//! config loads the way the pod loads it (the image's and the pod's environment applied by
//! `Config::load_with_env`), every org's webhooks reach its own shard and no other, each shard's
//! OAuth callback comes back to it, and the probes, ports and variables are ones sfsync has.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::Value;
use sfsync::config::Config;

use crate::support::*;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn parse_yaml(text: &str, file: &str) -> Vec<Value> {
    serde_norway::Deserializer::from_str(text)
        .map(|doc| Value::deserialize(doc).unwrap_or_else(|e| panic!("{file}: {e}")))
        .filter(|v| !v.is_null())
        .collect()
}

/// Every object of the files the kustomization lists.
fn manifests() -> Vec<Value> {
    let kustomization = parse_yaml(
        &read("deploy/kubernetes/kustomization.yaml"),
        "kustomization",
    );
    let resources = kustomization[0]["resources"].as_array().expect("resources");
    resources
        .iter()
        .flat_map(|r| {
            let file = format!("deploy/kubernetes/{}", r.as_str().expect("file name"));
            parse_yaml(&read(&file), &file)
        })
        .collect()
}

fn str_of(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

fn named<'a>(docs: &'a [Value], kind: &str, name: &str) -> Option<&'a Value> {
    of_kind(docs, kind)
        .into_iter()
        .find(|d| d["metadata"]["name"] == name)
}

/// The `ENV` assignments and the `ENTRYPOINT` of the Containerfile.
fn containerfile() -> (Vec<(String, String)>, Value) {
    let text = read("deploy/Containerfile");
    let mut env = Vec::new();
    let mut entrypoint = Value::Null;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("ENV ") {
            for pair in rest.split_whitespace() {
                let (k, v) = pair.split_once('=').expect("ENV NAME=value");
                env.push((k.to_string(), v.to_string()));
            }
        }
        if let Some(rest) = line.strip_prefix("ENTRYPOINT ") {
            entrypoint = serde_json::from_str(rest).expect("exec-form ENTRYPOINT");
        }
    }
    (env, entrypoint)
}

/// The variable names of the README's environment table (first column, in backticks).
fn readme_variables() -> BTreeSet<String> {
    let readme = read("README.md");
    let start = readme.find("The environment:").expect("environment table");
    readme[start..]
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .filter_map(|l| l.split('|').nth(1))
        .flat_map(|cell| {
            cell.split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// `$(NAME)` references in a Kubernetes env value.
fn references(value: &str) -> Vec<&str> {
    value
        .match_indices("$(")
        .filter_map(|(at, _)| {
            let rest = &value[at + 2..];
            rest.find(')').map(|end| &rest[..end])
        })
        .collect()
}

/// The container's environment for one pod, the way the kubelet builds it: the image's `ENV`,
/// then the pod's entries in order with `$(NAME)` expanded. Secret values are placeholders.
fn pod_env(container: &Value, pod: &str, image_env: &[(String, String)]) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = image_env.to_vec();
    for entry in container["env"].as_array().into_iter().flatten() {
        let name = str_of(&entry["name"]).to_string();
        let value = if let Some(v) = entry["value"].as_str() {
            let mut v = v.to_string();
            for r in references(entry["value"].as_str().unwrap_or("")) {
                let set = env
                    .iter()
                    .rev()
                    .find(|(k, _)| k == r)
                    .map(|(_, v)| v.clone());
                if let Some(set) = set {
                    v = v.replace(&format!("$({r})"), &set);
                }
            }
            v
        } else if entry["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name" {
            pod.to_string()
        } else {
            format!("<{name} from a secret>")
        };
        env.retain(|(k, _)| *k != name);
        env.push((name, value));
    }
    env
}

fn lookup<'a>(env: &'a [(String, String)], name: &str) -> Option<&'a str> {
    env.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// One Ingress route: host, path, whether the path is matched exactly, the Service.
struct Route {
    host: String,
    path: String,
    exact: bool,
    service: String,
    port: Value,
}

fn routes(docs: &[Value]) -> Vec<Route> {
    let mut out = Vec::new();
    for ingress in of_kind(docs, "Ingress") {
        for rule in ingress["spec"]["rules"].as_array().into_iter().flatten() {
            for p in rule["http"]["paths"].as_array().into_iter().flatten() {
                out.push(Route {
                    host: str_of(&rule["host"]).to_string(),
                    path: str_of(&p["path"]).to_string(),
                    exact: p["pathType"] == "Exact",
                    service: str_of(&p["backend"]["service"]["name"]).to_string(),
                    port: p["backend"]["service"]["port"].clone(),
                });
            }
        }
    }
    out
}

impl Route {
    /// Whether a request for `host` and `path` matches this route (Kubernetes semantics:
    /// `Prefix` matches whole path elements; a rule without a host matches every host).
    fn matches(&self, host: &str, path: &str) -> bool {
        let host_ok = self.host.is_empty() || self.host == host;
        let path_ok = if self.exact {
            self.path == path
        } else {
            let prefix = self.path.trim_end_matches('/');
            prefix.is_empty()
                || path == prefix
                || path
                    .strip_prefix(prefix)
                    .is_some_and(|r| r.starts_with('/'))
        };
        host_ok && path_ok
    }
}

/// Which pods a Service selects, among the StatefulSet's pods (by name, with their labels).
fn selected_pods(service: &Value, pods: &[(String, BTreeMap<String, String>)]) -> Vec<String> {
    let selector = service["spec"]["selector"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    pods.iter()
        .filter(|(_, labels)| {
            !selector.is_empty()
                && selector
                    .iter()
                    .all(|(k, v)| labels.get(k).map(String::as_str) == v.as_str())
        })
        .map(|(name, _)| name.clone())
        .collect()
}

/// The StatefulSet's pod template and what the checks need from it.
struct Template {
    spec: Value,
    container: Value,
    labels: BTreeMap<String, String>,
    /// The pods it makes, by name, with their labels.
    pods: Vec<(String, BTreeMap<String, String>)>,
    /// The container port named `http`.
    port: u64,
    image_env: Vec<(String, String)>,
}

fn items<'a>(v: &'a Value) -> impl Iterator<Item = &'a Value> + 'a {
    v.as_array().into_iter().flatten()
}

impl Template {
    fn of(docs: &[Value]) -> Result<Self, String> {
        let sets = of_kind(docs, "StatefulSet");
        let [set] = sets.as_slice() else {
            return Err(format!("{} StatefulSets, not one", sets.len()));
        };
        let spec = set["spec"].clone();
        let containers = spec["template"]["spec"]["containers"].as_array().cloned();
        let Some([container]) = containers.as_deref() else {
            return Err("the pod has not exactly one container".into());
        };
        let labels: BTreeMap<String, String> = spec["template"]["metadata"]["labels"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), str_of(v).to_string()))
            .collect();
        let replicas = spec["replicas"].as_u64().unwrap_or(1);
        let pods = (0..replicas)
            .map(|i| {
                let name = format!("{}-{i}", str_of(&set["metadata"]["name"]));
                let mut labels = labels.clone();
                labels.insert("statefulset.kubernetes.io/pod-name".into(), name.clone());
                (name, labels)
            })
            .collect();
        let port = items(&container["ports"])
            .find(|p| p["name"] == "http")
            .and_then(|p| p["containerPort"].as_u64())
            .unwrap_or(0);
        Ok(Self {
            container: container.clone(),
            spec,
            labels,
            pods,
            port,
            image_env: containerfile().0,
        })
    }

    fn mount_path(&self, volume: &Value) -> String {
        items(&self.container["volumeMounts"])
            .find(|m| m["name"] == *volume)
            .map(|m| str_of(&m["mountPath"]).to_string())
            .unwrap_or_default()
    }
}

/// Every disagreement between the manifests and sfsync, as one sentence each.
fn problems(docs: &[Value]) -> Vec<String> {
    let t = match Template::of(docs) {
        Ok(t) => t,
        Err(e) => return vec![e],
    };
    let mut out = command_problems(&t);
    out.extend(variable_problems(&t));
    let (shards, found) = shard_problems(docs, &t);
    out.extend(found);
    out.extend(webhook_problems(docs, &t, &shards));
    out.extend(service_problems(docs, &t));
    out.extend(lifecycle_problems(docs, &t));
    out
}

/// The image runs the binary, and `serve` reads SFSYNC_CONFIG (a --config would win over it).
fn command_problems(t: &Template) -> Vec<String> {
    let mut out = Vec::new();
    let entrypoint = containerfile().1;
    if entrypoint != serde_json::json!(["/usr/local/bin/sfsync"]) {
        out.push(format!(
            "the image's ENTRYPOINT is {entrypoint}, not the sfsync binary"
        ));
    }
    if !t.container["command"].is_null() || t.container["args"] != serde_json::json!(["serve"]) {
        out.push("the container must run the image's entrypoint with args [serve]".into());
    }
    out
}

/// Every variable is one sfsync reads, or one that another variable refers to.
fn variable_problems(t: &Template) -> Vec<String> {
    let documented = readme_variables();
    let entries: Vec<&Value> = items(&t.container["env"]).collect();
    let referenced: BTreeSet<&str> = entries
        .iter()
        .flat_map(|e| references(e["value"].as_str().unwrap_or("")))
        .collect();
    let names = t
        .image_env
        .iter()
        .map(|(k, _)| k.as_str())
        .chain(entries.iter().map(|e| str_of(&e["name"])));
    let mut out = Vec::new();
    for name in names {
        let section_key = name.starts_with("SFSYNC_")
            && name.contains("__")
            && documented.contains("SFSYNC_<SECTION>__<KEY>");
        let helper = referenced.contains(name)
            && !name.starts_with("SFSYNC_")
            && !name.starts_with("SALESFORCE_");
        if !documented.contains(name) && !section_key && !helper {
            out.push(format!("{name} is not in the README's environment table"));
        }
    }
    out
}

/// The shard configs, file name to text, from the Secret or ConfigMap mounted at /etc/sfsync.
fn shard_files(docs: &[Value], t: &Template) -> (String, BTreeMap<String, String>) {
    let mount = items(&t.container["volumeMounts"])
        .find(|m| m["mountPath"] == "/etc/sfsync")
        .cloned()
        .unwrap_or_default();
    let volume = items(&t.spec["template"]["spec"]["volumes"])
        .find(|v| v["name"] == mount["name"])
        .cloned()
        .unwrap_or_default();
    let data = match (
        volume["secret"]["secretName"].as_str(),
        volume["configMap"]["name"].as_str(),
    ) {
        (Some(name), _) => named(docs, "Secret", name).map(|s| s["stringData"].clone()),
        (_, Some(name)) => named(docs, "ConfigMap", name).map(|c| c["data"].clone()),
        _ => None,
    };
    let files = data
        .and_then(|d| d.as_object().cloned())
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, str_of(&v).to_string()))
        .collect();
    (str_of(&mount["mountPath"]).to_string(), files)
}

/// Each pod loads its own file the way sfsync will, listens on the container port, keeps its
/// store on its volume, and gets its OAuth callback and API back. Returns each pod's webhook
/// keys.
fn shard_problems(docs: &[Value], t: &Template) -> (Vec<(String, Vec<String>)>, Vec<String>) {
    let mut out = Vec::new();
    let (mount, files) = shard_files(docs, t);
    if files.len() != t.pods.len() {
        out.push(format!(
            "replicas is {} but there are {} shard configs",
            t.pods.len(),
            files.len()
        ));
    }
    let data_path = t.mount_path(&t.spec["volumeClaimTemplates"][0]["metadata"]["name"]);
    let mut shards = Vec::new();
    let mut orgs = BTreeSet::new();
    let mut all_keys = BTreeSet::new();
    let dir = tempfile::tempdir().expect("tempdir");
    for (pod, _) in &t.pods {
        let env = pod_env(&t.container, pod, &t.image_env);
        let config_path = lookup(&env, "SFSYNC_CONFIG").unwrap_or("");
        let Some(file) = config_path
            .strip_prefix(mount.as_str())
            .map(|f| f.trim_start_matches('/'))
            .filter(|f| files.contains_key(*f))
        else {
            out.push(format!(
                "{pod}: SFSYNC_CONFIG={config_path} is no shard config"
            ));
            continue;
        };
        if file != format!("{pod}.toml") {
            out.push(format!("{pod} reads {file}"));
        }
        let own = match Config::from_toml(&files[file]) {
            Ok(c) => c,
            Err(e) => {
                out.push(format!("{file} does not load: {e}"));
                continue;
            }
        };
        let path = dir.path().join(file);
        std::fs::write(&path, &files[file]).expect("write");
        let effective = match Config::load_with_env(&path, env.clone()) {
            Ok(c) => c,
            Err(e) => {
                out.push(format!(
                    "{pod}: {file} with the pod's environment does not load: {e}"
                ));
                continue;
            }
        };
        for (what, listen) in [
            ("the file", own.server.listen),
            ("the pod", effective.server.listen),
        ] {
            if u64::from(listen.port()) != t.port {
                out.push(format!(
                    "{pod}: {what} listens on {listen}, the container port is {}",
                    t.port
                ));
            }
        }
        if effective.store.path != std::path::Path::new(&data_path) {
            out.push(format!(
                "{pod}: the store is {}, the volume is at {data_path}",
                effective.store.path.display()
            ));
        }
        for c in &effective.connections {
            if !orgs.insert(c.org_id.to_string()) {
                out.push(format!("{} is listed in two shards", c.org_id));
            }
        }
        let keys: Vec<String> = effective
            .connections
            .iter()
            .map(|c| c.webhook_key.expose_secret().to_string())
            .collect();
        for k in &keys {
            if !all_keys.insert(k.clone()) {
                out.push(format!("a webhook key is listed in two shards ({pod})"));
            }
        }
        shards.push((pod.clone(), keys));
        let redirect = lookup(&env, "SALESFORCE_REDIRECT_URI").unwrap_or("");
        match url::Url::parse(redirect) {
            Ok(u) if u.path() == "/oauth/salesforce/callback" => {
                let host = u.host_str().unwrap_or("");
                for path in [u.path(), "/oauth/salesforce/authorize", "/api/v1/status"] {
                    out.extend(route_problems(docs, &t.pods, host, path, pod, "its own API or OAuth flow"));
                }
            }
            _ => out.push(format!(
                "{pod}: SALESFORCE_REDIRECT_URI={redirect} is not https://<host>/oauth/salesforce/callback"
            )),
        }
    }
    (shards, out)
}

/// Each org's two webhook paths reach its shard and no other; no route sends webhooks for
/// anything but one configured key; every route has its Service port and TLS.
fn webhook_problems(docs: &[Value], t: &Template, shards: &[(String, Vec<String>)]) -> Vec<String> {
    let mut out = Vec::new();
    let all = routes(docs);
    let hosts: BTreeSet<&str> = all.iter().map(|r| r.host.as_str()).collect();
    for (pod, keys) in shards {
        for key in keys {
            for kind in ["outbound", "events"] {
                let path = format!("/webhooks/salesforce/{kind}/{key}");
                if !all
                    .iter()
                    .any(|r| hosts.iter().any(|h| r.matches(h, &path)))
                {
                    out.push(format!("no route for {path} (shard {pod})"));
                }
                for host in &hosts {
                    let found = route_problems(docs, &t.pods, host, &path, pod, "a webhook");
                    out.extend(found.into_iter().filter(|p| !p.starts_with("no route")));
                }
            }
        }
    }
    let keys: Vec<&String> = shards.iter().flat_map(|(_, k)| k).collect();
    let tls: BTreeSet<String> = of_kind(docs, "Ingress")
        .iter()
        .flat_map(|i| items(&i["spec"]["tls"]).cloned().collect::<Vec<_>>())
        .flat_map(|t| {
            items(&t["hosts"])
                .map(|h| str_of(h).to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    for r in &all {
        if r.path.starts_with("/webhooks") {
            let one_key = r.exact
                && keys.iter().any(|k| {
                    ["outbound", "events"]
                        .iter()
                        .any(|kind| r.path == format!("/webhooks/salesforce/{kind}/{k}"))
                });
            if !one_key {
                out.push(format!(
                    "{} routes webhooks for no single configured key",
                    r.path
                ));
            }
        }
        let has_port = named(docs, "Service", &r.service).is_some_and(|s| {
            items(&s["spec"]["ports"])
                .any(|p| p["name"] == r.port["name"] || p["port"] == r.port["number"])
        });
        if !has_port {
            out.push(format!(
                "{}{} goes to {}, which has no such Service port",
                r.host, r.path, r.service
            ));
        }
        if !tls.contains(&r.host) {
            out.push(format!("{} is served without TLS", r.host));
        }
    }
    out
}

/// The headless Service is the StatefulSet's; every other Service selects exactly one shard and
/// targets the http port.
fn service_problems(docs: &[Value], t: &Template) -> Vec<String> {
    let mut out = Vec::new();
    for service in of_kind(docs, "Service") {
        let name = str_of(&service["metadata"]["name"]);
        if service["spec"]["clusterIP"] == "None" {
            if name != str_of(&t.spec["serviceName"]) {
                out.push(format!(
                    "headless Service {name} is not the StatefulSet's serviceName"
                ));
            }
            continue;
        }
        let selected = selected_pods(service, &t.pods);
        if selected.len() != 1 {
            out.push(format!(
                "Service {name} selects {selected:?}, not one shard"
            ));
        }
        for p in items(&service["spec"]["ports"]) {
            if p["targetPort"] != "http" && p["targetPort"].as_u64() != Some(t.port) {
                out.push(format!(
                    "Service {name} targets {}, not the container's http port",
                    p["targetPort"]
                ));
            }
        }
    }
    out
}

/// Probes on sfsync's routes, time to drain and flush, a disruption budget, resources.
fn lifecycle_problems(docs: &[Value], t: &Template) -> Vec<String> {
    let mut out = Vec::new();
    let c = &t.container;
    for (probe, want) in [
        ("startupProbe", "/healthz"),
        ("livenessProbe", "/healthz"),
        ("readinessProbe", "/readyz"),
    ] {
        let get = &c[probe]["httpGet"];
        if get["path"] != want || get["port"] != "http" {
            out.push(format!("{probe} is {get}, not GET {want} on the http port"));
        }
    }
    let grace = t.spec["template"]["spec"]["terminationGracePeriodSeconds"]
        .as_u64()
        .unwrap_or(30);
    let pre_stop: u64 = c["lifecycle"]["preStop"]["exec"]["command"]
        .as_array()
        .and_then(|cmd| cmd.last())
        .and_then(|s| s.as_str()?.parse().ok())
        .unwrap_or(0);
    // The planned server.shutdown_grace_s is 10 s; the final flush needs a few more.
    if grace < pre_stop + 10 + 5 {
        out.push(format!(
            "terminationGracePeriodSeconds {grace} leaves no time to drain and flush after a {pre_stop} s preStop"
        ));
    }
    let covered = of_kind(docs, "PodDisruptionBudget").iter().any(|b| {
        b["spec"]["selector"]["matchLabels"]
            .as_object()
            .is_some_and(|m| {
                m.iter()
                    .all(|(k, v)| t.labels.get(k).map(String::as_str) == v.as_str())
            })
    });
    if !covered {
        out.push("no PodDisruptionBudget selects the shards".into());
    }
    for (kind, what) in [
        ("requests", "cpu"),
        ("requests", "memory"),
        ("limits", "memory"),
    ] {
        if c["resources"][kind][what].is_null() {
            out.push(format!("no {kind}.{what}"));
        }
    }
    out
}

/// Problems with a request for `host` + `path`, which must reach `pod` and only it.
fn route_problems(
    docs: &[Value],
    pods: &[(String, BTreeMap<String, String>)],
    host: &str,
    path: &str,
    pod: &str,
    what: &str,
) -> Vec<String> {
    let matching: Vec<Route> = routes(docs)
        .into_iter()
        .filter(|r| r.matches(host, path))
        .collect();
    if matching.is_empty() {
        return vec![format!("no route for {host}{path} ({what} of {pod})")];
    }
    let mut out = Vec::new();
    for r in matching {
        let reached = named(docs, "Service", &r.service)
            .map(|s| selected_pods(s, pods))
            .unwrap_or_default();
        if reached != [pod.to_string()] {
            out.push(format!(
                "{host}{path} ({what} of {pod}) is routed to {} which reaches {reached:?}",
                r.service
            ));
        }
    }
    out
}

#[test]
fn the_manifests_agree_with_sfsync_for_every_shard() {
    let problems = problems(&manifests());
    assert!(problems.is_empty(), "{problems:#?}");
}

/// The first Ingress path that routes an outbound webhook.
fn first_outbound_path(docs: &mut [Value]) -> &mut Value {
    docs.iter_mut()
        .filter(|d| d["kind"] == "Ingress")
        .flat_map(|i| {
            i["spec"]["rules"]
                .as_array_mut()
                .expect("rules")
                .iter_mut()
                .flat_map(|r| r["http"]["paths"].as_array_mut().expect("paths").iter_mut())
        })
        .find(|p| str_of(&p["path"]).starts_with("/webhooks/salesforce/outbound/"))
        .expect("an outbound route")
}

#[test]
fn a_webhook_key_routed_to_another_shard_is_reported() {
    let mut docs = manifests();
    let route = first_outbound_path(&mut docs);
    let own = str_of(&route["backend"]["service"]["name"]).to_string();
    let other = if own == "sfsync-0" {
        "sfsync-1"
    } else {
        "sfsync-0"
    };
    route["backend"]["service"]["name"] = Value::from(other);
    let problems = problems(&docs);
    assert!(
        problems
            .iter()
            .any(|p| p.contains("/webhooks/salesforce/outbound/") && p.contains(other)),
        "{problems:#?}"
    );
}

#[test]
fn a_catch_all_webhook_route_is_reported() {
    let mut docs = manifests();
    let route = first_outbound_path(&mut docs);
    route["path"] = Value::from("/webhooks");
    route["pathType"] = Value::from("Prefix");
    let problems = problems(&docs);
    assert!(
        problems
            .iter()
            .any(|p| p.contains("/webhooks routes webhooks")),
        "{problems:#?}"
    );
}

#[test]
fn a_variable_sfsync_does_not_read_and_a_wrong_replica_count_are_reported() {
    let mut docs = manifests();
    let set = docs
        .iter_mut()
        .find(|d| d["kind"] == "StatefulSet")
        .expect("statefulset");
    set["spec"]["replicas"] = Value::from(3);
    set["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array_mut()
        .expect("env")
        .push(serde_json::json!({"name": "SFSYNC_WORKERS", "value": "4"}));
    let problems = problems(&docs);
    assert!(
        problems.iter().any(|p| p.contains("SFSYNC_WORKERS")),
        "{problems:#?}"
    );
    assert!(
        problems.iter().any(|p| p.contains("replicas is 3")),
        "{problems:#?}"
    );
}

#[tokio::test]
async fn the_probe_paths_answer_200_on_the_running_service() {
    let docs = manifests();
    let set = of_kind(&docs, "StatefulSet")[0];
    let container = &set["spec"]["template"]["spec"]["containers"][0];
    let app = spawn_app().await;
    for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
        let path = str_of(&container[probe]["httpGet"]["path"]);
        let resp = app
            .client
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .expect("probe");
        assert_eq!(resp.status(), 200, "{probe} {path}");
    }
    app.stop().await;
}

#[test]
fn the_kustomization_lists_every_manifest_of_the_directory() {
    let listed: BTreeSet<String> = parse_yaml(
        &read("deploy/kubernetes/kustomization.yaml"),
        "kustomization",
    )[0]["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .map(|r| str_of(r).to_string())
        .collect();
    let present: BTreeSet<String> = std::fs::read_dir(repo().join("deploy/kubernetes"))
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".yaml") && n != "kustomization.yaml")
        .collect();
    assert_eq!(listed, present);
}
