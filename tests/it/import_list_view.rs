//! Import by list view: an object's list views are listed from the org, and importing one brings
//! in exactly the records the view shows (its filter and its scope), through the API and through
//! `sfsync import`.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use sfsync::simulator::ListViewSpec;

use crate::support::env::{self, SyncEnv};
use crate::support::{TOKEN, eventually};

const WAIT: Duration = Duration::from_secs(10);

fn view(label: &str, filter: Option<&str>) -> ListViewSpec {
    ListViewSpec {
        label: label.into(),
        developer_name: None,
        filter: filter.map(String::from),
        scope: None,
        columns: Vec::new(),
    }
}

async fn list_views(env: &SyncEnv, object: &str) -> Vec<Value> {
    let (code, body) = env
        .api(
            Method::GET,
            &format!("/imports/list-views?object={object}"),
            None,
        )
        .await;
    assert_eq!(code, 200, "{body}");
    body["items"].as_array().cloned().unwrap_or_default()
}

/// Starts an import of a list view and waits until it is done.
async fn import_view(env: &SyncEnv, object: &str, id: &str) -> Value {
    let (code, started) = env
        .api(
            Method::POST,
            "/imports",
            Some(json!({"kind": "list_view", "object": object, "list_view": id})),
        )
        .await;
    assert_eq!(code, 202, "{started}");
    let path = format!("/imports/{}", started["id"]);
    eventually("the import", WAIT, || async {
        let (_, s) = env.api(Method::GET, &path, None).await;
        (s["state"] != "running").then_some(s)
    })
    .await
}

#[tokio::test]
async fn importing_a_list_view_brings_in_the_records_it_shows_and_no_others() {
    let env = env::start().await;
    for (name, industry) in [("Alpha", "Energy"), ("Beta", "Energy"), ("Gamma", "Retail")] {
        env.sim
            .create("Account", json!({"Name": name, "Industry": industry}))
            .expect("account");
    }
    let energy = env
        .sim
        .add_list_view(
            "Account",
            &view("Energy Accounts", Some("Industry = 'Energy'")),
        )
        .expect("list view");

    let views = list_views(&env, "Account").await;
    let listed = views
        .iter()
        .find(|v| v["id"] == energy.as_str())
        .unwrap_or_else(|| panic!("not listed: {views:?}"));
    assert_eq!(listed["label"], "Energy Accounts");
    assert_eq!(listed["importable"], true);
    assert!(
        views.iter().any(|v| v["label"] == "All Accounts"),
        "{views:?}"
    );

    let done = import_view(&env, "Account", energy.as_str()).await;
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(done["created"], 2, "{done}");
    let mut names: Vec<String> = env
        .store()
        .companies(&env.org)
        .expect("companies")
        .into_iter()
        .map(|c| c.name)
        .collect();
    names.sort();
    assert_eq!(names, ["Alpha", "Beta"]);
}

#[tokio::test]
async fn a_my_view_keeps_its_scope_and_an_unknown_object_or_view_is_refused() {
    let env = env::start().await;
    let me = env.sim.integration_user().expect("integration user").id;
    env.sim
        .create_as(
            &me,
            "Contact",
            json!({"LastName": "Mine", "Email": "mine@scope.example"}),
        )
        .expect("mine");
    env.sim
        .create("Contact", json!({"LastName": "Theirs"}))
        .expect("a rep's");
    let views = list_views(&env, "Contact").await;
    let my = views
        .iter()
        .find(|v| v["developer_name"] == "MyContacts")
        .and_then(|v| v["id"].as_str())
        .unwrap_or_else(|| panic!("no My Contacts: {views:?}"))
        .to_string();

    let done = import_view(&env, "Contact", &my).await;
    assert_eq!(done["state"], "done", "{done}");
    let contacts = env.store().contacts(&env.org).expect("contacts");
    let names: Vec<&str> = contacts.iter().map(|c| c.last_name.as_str()).collect();
    assert_eq!(names, ["Mine"]);

    let (code, body) = env
        .api(Method::GET, "/imports/list-views?object=Task", None)
        .await;
    assert_eq!(code, 400, "{body}");
    let failed = import_view(&env, "Contact", "00B000000000001").await;
    assert_eq!(failed["state"], "failed", "{failed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sfsync_import_lists_views_and_imports_one() {
    let env = env::start().await;
    env.sim
        .create("Account", json!({"Name": "Listed Co"}))
        .expect("account");
    let all = env
        .sim
        .add_list_view("Account", &view("Everything", None))
        .expect("view");
    let (base, org) = (env.app.base.clone(), env.org.to_string());
    let run = move |args: Vec<String>| {
        crate::processes::sfsync()
            .args(["import", "--url", &base, "--org", &org])
            .args(args)
            .env("SFSYNC_API_TOKEN", TOKEN)
            .output()
            .expect("run sfsync import")
    };
    let list = {
        let run = run.clone();
        tokio::task::spawn_blocking(move || {
            run(vec![
                "list-views".into(),
                "--object".into(),
                "Account".into(),
            ])
        })
        .await
        .expect("join")
    };
    let stdout = String::from_utf8_lossy(&list.stdout).to_string();
    assert!(list.status.success(), "{stdout}");
    assert!(
        stdout.contains(&format!("{}  Everything", all.as_str())),
        "{stdout}"
    );

    let id = all.to_string();
    let out = tokio::task::spawn_blocking(move || {
        run(vec![
            "list-view".into(),
            "--object".into(),
            "Account".into(),
            "--id".into(),
            id,
        ])
    })
    .await
    .expect("join");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("1 created"), "{stdout}");
    assert_eq!(
        env.store().companies(&env.org).expect("companies")[0].name,
        "Listed Co"
    );
}
