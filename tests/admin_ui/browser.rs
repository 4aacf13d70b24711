//! A headless Chromium driven over WebDriver: the JSON-over-HTTP protocol spoken with the `reqwest`
//! client the tests already use, and a `chromedriver` started for each test and stopped with it.

use serde_json::{json, Value};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// WebDriver's key for an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
/// How long a wait for the page lasts before the test fails.
const PATIENCE: Duration = Duration::from_secs(30);

/// Console entries the page may log: the browser reports every 4xx answer it fetched as a network
/// error, and a refusal the screens show as a message (a plan rule's 403, a rule's 409) is one.
fn expected_console_entry(entry: &Value) -> bool {
    let message = entry["message"].as_str().unwrap_or("");
    entry["source"] == "network"
        && (message.contains("status of 403") || message.contains("status of 409"))
}

/// A browser session and the driver it runs under.
pub struct Browser {
    driver: Child,
    base: String,
    http: reqwest::Client,
    /// The service's address, for relative URLs.
    app: String,
}

impl Drop for Browser {
    /// Ends the session, which closes the browser and removes its profile, then stops the driver and
    /// whatever is left in its process group: a killed driver leaves its browser running otherwise.
    fn drop(&mut self) {
        if let Some(path) = self.base.split_once("://").map(|(_, rest)| rest) {
            end_session(path);
        }
        // SAFETY: killpg only sends a signal, to the group the driver was started as the leader of.
        unsafe {
            libc::killpg(self.driver.id() as libc::pid_t, libc::SIGKILL);
        }
        let _ = self.driver.wait();
    }
}

/// `DELETE /session/{id}` with a blocking socket, as a drop (even while a test panics) cannot await.
fn end_session(host_and_path: &str) {
    use std::io::{Read, Write};
    let Some((host, path)) = host_and_path.split_once('/') else {
        return;
    };
    let Ok(mut stream) = std::net::TcpStream::connect(host) else {
        return;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let request = format!(
        "DELETE /{path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    if stream.write_all(request.as_bytes()).is_ok() {
        let _ = stream.read_to_end(&mut Vec::new());
    }
}

/// The path of `chromedriver`; fails the test with what to install when it is missing.
fn chromedriver() -> PathBuf {
    let path = PathBuf::from(std::env::var("CHROMEDRIVER").unwrap_or_else(|_| CHROMEDRIVER.into()));
    assert!(
        path.exists(),
        "the admin screens' tests need chromedriver at {} (Debian: apt-get install -y chromium chromium-driver; or set CHROMEDRIVER)",
        path.display()
    );
    path
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

impl Browser {
    /// Starts chromedriver and a headless Chromium whose relative URLs are on `app`.
    pub async fn start(app: &str) -> Browser {
        let port = free_port();
        let driver = Command::new(chromedriver())
            .arg(format!("--port={port}"))
            // Its own process group, which the browsers it starts join, so all can be stopped at once.
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let mut browser = Browser {
            driver,
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
            app: app.to_string(),
        };
        let deadline = Instant::now() + PATIENCE;
        loop {
            let ready = browser
                .http
                .get(format!("{}/status", browser.base))
                .send()
                .await;
            if let Ok(response) = ready {
                let status: Value = response.json().await.unwrap_or(Value::Null);
                if status["value"]["ready"] == true {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let binary = std::env::var("CHROMIUM").unwrap_or_else(|_| CHROMIUM.into());
        let session = browser
            .raw(
                reqwest::Method::POST,
                "/session",
                Some(json!({"capabilities": {"alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": {
                        "binary": binary,
                        "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                                 "--window-size=1280,900"],
                    },
                    "goog:loggingPrefs": {"browser": "ALL"},
                }}})),
            )
            .await;
        let id = session["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {session}"));
        browser.base = format!("{}/session/{id}", browser.base);
        browser
    }

    async fn raw(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response: Value = request
            .send()
            .await
            .expect("chromedriver answers")
            .json()
            .await
            .expect("chromedriver answers JSON");
        let value = response["value"].clone();
        if let Some(error) = value.get("error") {
            panic!("WebDriver {path}: {error}: {}", value["message"]);
        }
        value
    }

    /// Opens a path of the service.
    pub async fn open(&self, path: &str) {
        self.raw(
            reqwest::Method::POST,
            "/url",
            Some(json!({"url": format!("{}{path}", self.app)})),
        )
        .await;
    }

    /// Runs a script in the page with arguments; returns what it returns.
    pub async fn script(&self, script: &str, args: Value) -> Value {
        self.raw(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
        .await
    }

    /// Waits until `script` returns something other than null or false; returns it.
    pub async fn wait_for(&self, what: &str, script: &str, args: Value) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let found = self.script(script, args.clone()).await;
            if !(found.is_null() || found == false) {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "waited {PATIENCE:?} for {what}; the page says: {}",
                self.text("main").await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The visible text of the first element matching `css`, or "" if none.
    pub async fn text(&self, css: &str) -> String {
        let text = self
            .script(
                "const e = document.querySelector(arguments[0]); return e ? e.innerText : '';",
                json!([css]),
            )
            .await;
        text.as_str().unwrap_or("").to_string()
    }

    /// Waits until the element matching `css` shows `needle`; returns its text.
    pub async fn wait_text(&self, css: &str, needle: &str) -> String {
        let found = self
            .wait_for(
                &format!("{needle:?} in {css}"),
                "const e = document.querySelector(arguments[0]); \
                 return e && e.innerText.includes(arguments[1]) ? e.innerText : null;",
                json!([css, needle]),
            )
            .await;
        found.as_str().unwrap_or("").to_string()
    }

    /// Waits for an enabled button inside `scope` whose text is `label`, and clicks it as a user would.
    pub async fn click_button(&self, scope: &str, label: &str) {
        let element = self
            .wait_for(
                &format!("a button {label:?} in {scope}"),
                "return [...document.querySelectorAll(arguments[0] + ' button')] \
                   .find(b => b.textContent.trim() === arguments[1] && !b.disabled && b.offsetParent) || null;",
                json!([scope, label]),
            )
            .await;
        self.click(&element).await;
    }

    /// Clicks an element reference.
    pub async fn click(&self, element: &Value) {
        let id = element[ELEMENT].as_str().expect("an element reference");
        self.raw(
            reqwest::Method::POST,
            &format!("/element/{id}/click"),
            Some(json!({})),
        )
        .await;
    }

    /// Types into the field matching `css`.
    pub async fn type_into(&self, css: &str, text: &str) {
        let element = self
            .wait_for(
                &format!("the field {css}"),
                "return document.querySelector(arguments[0]);",
                json!([css]),
            )
            .await;
        let id = element[ELEMENT].as_str().expect("an element reference");
        self.raw(
            reqwest::Method::POST,
            &format!("/element/{id}/value"),
            Some(json!({ "text": text })),
        )
        .await;
    }

    /// Presses Escape on the focused element, as a keyboard user would.
    pub async fn press_escape(&self) {
        let focused = self
            .raw(reqwest::Method::GET, "/element/active", None)
            .await;
        let id = focused[ELEMENT].as_str().expect("a focused element");
        self.raw(
            reqwest::Method::POST,
            &format!("/element/{id}/value"),
            Some(json!({ "text": "\u{E00C}" })),
        )
        .await;
    }

    /// Picks the option with this visible text in the select matching `css`, as keyboard or mouse would.
    pub async fn choose(&self, css: &str, option_text: &str) {
        let option = self
            .wait_for(
                &format!("option {option_text:?} in {css}"),
                "const s = document.querySelector(arguments[0]); \
                 return s ? [...s.options].find(o => o.text === arguments[1]) || null : null;",
                json!([css, option_text]),
            )
            .await;
        self.click(&option).await;
    }

    /// Goes to a screen through the navigation, as a user would.
    pub async fn go_to(&self, link: &str, heading: &str) {
        let element = self
            .wait_for(
                &format!("the link {link:?}"),
                "return [...document.querySelectorAll('#nav a')].find(a => a.textContent.trim() === arguments[0]) || null;",
                json!([link]),
            )
            .await;
        self.click(&element).await;
        // Each screen shows its heading once everything it lists has arrived.
        self.wait_text("main h1", heading).await;
    }

    /// Saves a PNG of the window as `name.png` in `ROLLCALL_SCREENSHOTS`, when it is set.
    pub async fn screenshot(&self, name: &str) {
        let Ok(folder) = std::env::var("ROLLCALL_SCREENSHOTS") else {
            return;
        };
        let png = self.raw(reqwest::Method::GET, "/screenshot", None).await;
        use base64::Engine;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().expect("a screenshot"))
            .expect("a base64 screenshot");
        std::fs::create_dir_all(&folder).expect("the screenshot folder");
        std::fs::write(format!("{folder}/{name}.png"), bytes).expect("a screenshot is written");
    }

    /// Fails if the page logged an error it should not have.
    pub async fn assert_console_clean(&self) {
        let log = self
            .raw(
                reqwest::Method::POST,
                "/se/log",
                Some(json!({"type": "browser"})),
            )
            .await;
        let errors: Vec<&Value> = log
            .as_array()
            .expect("a browser log")
            .iter()
            .filter(|e| e["level"] == "SEVERE" || e["level"] == "WARNING")
            .filter(|e| !expected_console_entry(e))
            .collect();
        assert!(
            errors.is_empty(),
            "the browser console has errors: {errors:?}"
        );
    }
}
