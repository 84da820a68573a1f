//! `sfsync doctor`: asks a running service to check an org's Salesforce setup now and prints
//! what is missing, object by object. Exits non-zero when anything is.

use anyhow::Context;

/// Runs the check and prints the report; fails when the setup is incomplete.
pub async fn doctor(args: &crate::cli::ServiceOrgArgs) -> anyhow::Result<()> {
    let mut url = args.service.api("/setup");
    if let Some(org) = &args.org {
        url.push_str(&format!("?org_id={}", urlencoding::encode(org)));
    }
    let resp = reqwest::Client::new()
        .get(&url)
        .bearer_auth(&args.service.token)
        .timeout(std::time::Duration::from_secs(60))
        .send()
        .await
        .with_context(|| format!("reaching {url}"))?;
    let code = resp.status();
    let body: serde_json::Value = resp.json().await.context("reading the setup report")?;
    anyhow::ensure!(
        code.is_success(),
        "{url} answered {code}: {}",
        body["error"]["message"]
            .as_str()
            .unwrap_or("no reason given")
    );
    print!("{}", render(&body));
    anyhow::ensure!(body["ok"] == true, "the salesforce setup is incomplete");
    Ok(())
}

/// The report as an admin reads it: the API version, then each object and what it lacks.
fn render(report: &serde_json::Value) -> String {
    let mut out = String::new();
    let version = &report["api_version"];
    out.push_str(&format!(
        "API version {:<8} {}\n",
        version["configured"].as_str().unwrap_or("?"),
        if version["served"] == true {
            "served".to_string()
        } else {
            format!(
                "NOT served (the org's newest is {})",
                version["latest"].as_str().unwrap_or("unknown")
            )
        }
    ));
    for object in report["objects"].as_array().into_iter().flatten() {
        let name = object["object"].as_str().unwrap_or("?");
        let problems: Vec<&str> = object["problems"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p.as_str())
            .collect();
        if problems.is_empty() {
            out.push_str(&format!("{name:<12} ok\n"));
        }
        for p in problems {
            out.push_str(&format!("{name:<12} MISSING: {p}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_problem_gets_a_line_under_its_object() {
        let report = serde_json::json!({"ok": false,
            "api_version": {"configured": "62.0", "served": true, "latest": "62.0"},
            "objects": [{"object": "Account", "ok": true, "problems": []},
                        {"object": "Contact", "ok": false, "problems": ["a", "b"]}]});
        let text = render(&report);
        assert!(text.contains("Account      ok"), "{text}");
        assert_eq!(text.matches("Contact      MISSING: ").count(), 2, "{text}");
    }
}
