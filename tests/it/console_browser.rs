//! The operator console in a real browser: Debian's Chromium driven through WebDriver
//! (`chromedriver`) against the service and a simulated org. The operator signs in, sees the
//! org not connected, connects it through the org's own login page, checks its setup, retries
//! a dead letter and resolves a conflict; each page is saved as a screenshot under
//! `target/console-screenshots/`.
//!
//! Without `chromedriver` on the machine the test says so and passes, unless
//! `SFSYNC_REQUIRE_BROWSER` is set (as `.ci/run` sets it), when it fails.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use secrecy::{SecretBox, SecretString};
use serde_json::{Value, json};
use sfsync::config::ConnectedApp;
use sfsync::salesforce::TokenKey;
use sfsync::simulator::SimulatorConfig;

use crate::processes::free_port;
use crate::support::env::{ENV_KEY, SyncEnv, env_config};
use crate::support::{TOKEN, eventually};

const WAIT: Duration = Duration::from_secs(15);

/// Chromium's flags for this machine: headless, as root, with no call to the outside.
const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,1000",
];

/// Where `name` is found on `PATH` (or in `/usr/bin`).
fn program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin")])
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// `chromedriver` on a free port, stopped when dropped.
struct Driver {
    child: Child,
    url: String,
    _profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    /// Starts chromedriver, or says why the test cannot run.
    fn start() -> Option<Self> {
        let Some(chromedriver) = program("chromedriver") else {
            assert!(
                std::env::var_os("SFSYNC_REQUIRE_BROWSER").is_none(),
                "SFSYNC_REQUIRE_BROWSER is set but chromedriver is not installed \
                 (apt-get install chromium chromium-driver)"
            );
            eprintln!(
                "console_browser: SKIPPED: chromedriver is not installed \
                 (apt-get install chromium chromium-driver; .ci/run does)"
            );
            return None;
        };
        let port = free_port();
        let child = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        Some(Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _profile: tempfile::tempdir().expect("profile dir"),
        })
    }

    /// A browser session; retries while chromedriver is still starting.
    async fn browser(&self) -> Client {
        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|f| f.to_string()).collect();
        args.push(format!(
            "--user-data-dir={}",
            self._profile.path().display()
        ));
        let mut options = json!({"args": args});
        if let Some(chromium) = program("chromium") {
            options["binary"] = json!(chromium);
        }
        let caps = json!({"browserName": "chrome", "goog:chromeOptions": options});
        let Value::Object(caps) = caps else {
            unreachable!("an object")
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let mut last = None;
        for _ in 0..50 {
            match ClientBuilder::new(connector.clone())
                .capabilities(caps.clone())
                .connect(&self.url)
                .await
            {
                Ok(c) => return c,
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("no browser session: {last:?}");
    }
}

/// Saves what the browser shows as `target/console-screenshots/{name}.png`.
async fn screenshot(browser: &Client, name: &str) {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .map(|t| t.join("console-screenshots"))
        .expect("target dir");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    // The whole page, not only the window: as tall as the document (measured in a short
    // window, since the document is never shorter than the window).
    browser.set_window_size(1280, 600).await.expect("resize");
    let height = browser
        .execute("return document.documentElement.scrollHeight", vec![])
        .await
        .ok()
        .and_then(|h| h.as_u64())
        .unwrap_or(1000);
    browser
        .set_window_size(
            1280,
            u32::try_from(height.clamp(600, 4000)).unwrap_or(1000) + 100,
        )
        .await
        .expect("resize");
    let png = browser.screenshot().await.expect("screenshot");
    std::fs::write(dir.join(format!("{name}.png")), png).expect("write screenshot");
}

async fn text(browser: &Client) -> String {
    browser
        .find(Locator::Css("body"))
        .await
        .expect("body")
        .text()
        .await
        .expect("text")
}

/// Clicks the submit button `css` and waits until the page it leads to has replaced this one.
async fn submit(browser: &Client, css: &str) {
    let old = browser.find(Locator::Css("html")).await.expect("page");
    let Ok(button) = browser.find(Locator::Css(css)).await else {
        panic!(
            "no {css} in:\n{}",
            browser.source().await.unwrap_or_default()
        );
    };
    button.click().await.expect("click");
    for _ in 0..100 {
        // An element of a page that is gone answers "stale element reference".
        if old.tag_name().await.is_err() {
            browser
                .wait()
                .for_element(Locator::Css("body"))
                .await
                .expect("the next page");
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{css} led to no new page");
}

/// What waits for the operator: a conflict (two local companies with the pulled Account's
/// domain) and a dead letter (a lead without a company, which Salesforce refuses). Returns the
/// candidate to pick, the dead letter id and the contact's id.
async fn trouble(env: &SyncEnv) -> (u64, u64, u64) {
    let pick = env.local_company("Initech Europe", "initech.example");
    env.local_company("Initech Holdings", "www.initech.example");
    env.sim
        .create(
            "Account",
            json!({"Name": "Initech", "Website": "initech.example"}),
        )
        .expect("account");
    let (_, person) = env
        .api(
            reqwest::Method::POST,
            "/contacts",
            Some(json!({"last_name": "Lumbergh", "email": "bill@initech.example", "push_as": "lead"})),
        )
        .await;
    let person = person["record"]["id"].as_u64().expect("contact id");
    eventually("the conflict", WAIT, || async {
        let (_, body) = env.api(reqwest::Method::GET, "/conflicts", None).await;
        body["items"][0]["id"].as_u64()
    })
    .await;
    let dead = eventually("the dead letter", WAIT, || async {
        let (_, body) = env
            .api(reqwest::Method::GET, "/outbox?state=dead", None)
            .await;
        body["items"][0]["id"].as_u64()
    })
    .await;
    (pick, dead, person)
}

async fn sign_in(browser: &Client, base: &str) {
    browser.goto(&format!("{base}/")).await.expect("open /");
    assert!(
        browser.current_url().await.expect("url").path() == "/login",
        "the console sends a visitor without a session to /login"
    );
    assert!(
        !text(browser).await.contains("00D"),
        "nothing about an org before sign-in"
    );
    screenshot(browser, "01-login").await;
    let field = browser
        .find(Locator::Id("token"))
        .await
        .expect("token field");
    field.send_keys("not-the-token").await.expect("type");
    submit(browser, "button[type=submit]").await;
    assert!(text(browser).await.contains("That is not the API token"));
    screenshot(browser, "02-login-wrong-token").await;
    let field = browser
        .find(Locator::Id("token"))
        .await
        .expect("token field");
    field.send_keys(TOKEN).await.expect("type");
    submit(browser, "button[type=submit]").await;
    assert_eq!(browser.current_url().await.expect("url").path(), "/");
}

/// The simulated org and the service with the connected app configured (its callback on the
/// service's own port) and the org not yet connected; Outbound Messages go to the service.
async fn start() -> SyncEnv {
    let sim = crate::support::org::start(SimulatorConfig::default()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    // The catch-up sweep stays off: a sweep re-reading the new Account lists its conflict again
    // under a new id. The test sweeps once, by hand.
    let mut config = env_config(dir.path(), &sim.org_id());
    config.server.listen = ([127, 0, 0, 1], port).into();
    config.salesforce.login_url = sim.instance_url();
    let creds = sim.credentials();
    config.connected_app = Ok(ConnectedApp {
        client_id: creds.client_id,
        client_secret: SecretString::from(creds.client_secret),
        redirect_uri: format!("{base}/oauth/salesforce/callback"),
        token_key: TokenKey::new(1, SecretBox::new(Box::new([7u8; 32]))),
    });
    let app = crate::support::app::spawn(config, dir).await;
    sim.set_outbound_url(Some(format!(
        "{base}/webhooks/salesforce/outbound/{ENV_KEY}"
    )));
    SyncEnv {
        org: sim.org_id(),
        sim,
        app,
    }
}

/// The org is not connected: Connect sends the browser to the org's login page, the
/// integration user signs in, and the callback leads back to the org, now connected.
async fn connect(browser: &Client, env: &SyncEnv) {
    let overview = text(browser).await;
    assert!(overview.contains("Not connected"), "{overview}");
    screenshot(browser, "03-overview-not-connected").await;
    submit(browser, "form.connect button").await;
    let at = browser.current_url().await.expect("url");
    assert!(at.as_str().starts_with(&env.sim.instance_url()), "{at}");
    screenshot(browser, "04-salesforce-login").await;
    let creds = env.sim.credentials();
    let user = browser
        .find(Locator::Id("username"))
        .await
        .expect("username");
    user.clear().await.expect("clear");
    user.send_keys(&creds.username).await.expect("type");
    let password = browser
        .find(Locator::Id("password"))
        .await
        .expect("password");
    password.send_keys(&creds.password).await.expect("type");
    submit(browser, "#Login").await;
    assert!(text(browser).await.contains("connected to org"));
    screenshot(browser, "05-connected").await;
    let back = browser
        .find(Locator::LinkText("Back to the org"))
        .await
        .expect("link");
    back.click().await.expect("click");
    browser
        .wait()
        .for_element(Locator::Id("dead-letters"))
        .await
        .expect("org page");
    assert!(text(browser).await.contains("Connected"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_connects_the_org_retries_a_dead_letter_and_resolves_a_conflict() {
    let Some(driver) = Driver::start() else {
        return;
    };
    let env = start().await;
    let browser = driver.browser().await;
    let (base, org) = (env.app.base.clone(), env.org.to_string());

    sign_in(&browser, &base).await;
    connect(&browser, &env).await;
    sfsync::sync::sweep::sweep_org(env.store(), &env.client())
        .await
        .expect("sweep");
    let (pick, dead, person) = trouble(&env).await;
    browser
        .goto(&format!("{base}/orgs/{org}"))
        .await
        .expect("org page");
    submit(&browser, "#setup button[type=submit]").await;
    let page = text(&browser).await;
    assert!(page.contains("Setup checked: nothing is missing"), "{page}");
    assert!(
        page.contains(&format!("contact #{person} · Lumbergh")),
        "{page}"
    );
    screenshot(&browser, "06-org-with-trouble").await;

    retry_dead_letter(&browser, &env, dead, person).await;
    resolve_conflict(&browser, pick).await;
    let page = text(&browser).await;
    assert!(page.contains("None: every pulled record matched"), "{page}");
    browser.refresh().await.expect("reload");
    let page = text(&browser).await;
    assert!(
        page.contains("None: every local change reached Salesforce"),
        "{page}"
    );
    screenshot(&browser, "08-org-all-fixed").await;
    browser.goto(&format!("{base}/")).await.expect("overview");
    screenshot(&browser, "09-overview-all-fixed").await;

    submit(&browser, "nav button[type=submit]").await;
    assert_eq!(browser.current_url().await.expect("url").path(), "/login");
    browser
        .goto(&format!("{base}/orgs/{org}"))
        .await
        .expect("after sign-out");
    assert_eq!(browser.current_url().await.expect("url").path(), "/login");
    browser.close().await.expect("close");
}

/// Links the page's conflict to local record `pick`. Another notification of the same Account
/// lists it again under a new id; the console then says so and shows the new one, and the
/// operator clicks again, as a person would.
async fn resolve_conflict(browser: &Client, pick: u64) {
    let link = format!(".conflict form:has(input[name=candidate][value=\"{pick}\"]) button");
    for _ in 0..5 {
        submit(browser, &link).await;
        let page = text(browser).await;
        if page.contains(&format!("resolved: linked to #{pick}")) {
            return;
        }
        assert!(page.contains("is no longer open"), "{page}");
    }
    panic!("the conflict never stayed long enough to be resolved");
}

/// The fix behind the dead letter (the contact gets a company), then the operator's Retry,
/// and the lead reaches Salesforce.
async fn retry_dead_letter(browser: &Client, env: &SyncEnv, dead: u64, person: u64) {
    let company = env.local_company("Initech Lead Co", "initech-leads.example");
    let (status, _) = env
        .api(
            reqwest::Method::PATCH,
            &format!("/contacts/{person}"),
            Some(json!({"company_id": company})),
        )
        .await;
    assert_eq!(status, 200);
    submit(browser, &format!("#dead-{dead} button.primary")).await;
    let page = text(browser).await;
    assert!(
        page.contains(&format!("Dead letter {dead} goes out again now")),
        "{page}"
    );
    screenshot(browser, "07-dead-letter-retried").await;
    eventually("the lead in salesforce", WAIT, || async {
        env.sim
            .list("Lead")
            .into_iter()
            .find(|l| l["LastName"] == "Lumbergh")
    })
    .await;
}
