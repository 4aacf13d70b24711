//! A headless Chromium driven over WebDriver with `fantoccini`, under a `chromedriver` started for
//! each test and stopped, with everything it started, when the test ends.

use fantoccini::elements::Element;
use fantoccini::key::Key;
use fantoccini::wd::{Capabilities, WebDriverCompatibleCommand};
use fantoccini::{Client, ClientBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// WebDriver's key for an element reference, as a script returns one.
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

/// chromedriver's own command for the browser's console log, which W3C WebDriver has none of.
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(json!({"type": "browser"}).to_string()),
        )
    }
}

/// chromedriver, started as the leader of its own process group, which the browsers it starts
/// join; dropping it kills the whole group, as killing the driver alone leaves its browser running.
struct Driver {
    process: Child,
    /// Its `host:port`.
    address: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The whole group the driver was started as the leader of: the driver and its browsers.
        if let Some(group) = rustix::process::Pid::from_raw(self.process.id() as i32) {
            let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
        }
        let _ = self.process.wait();
    }
}

/// A browser session and the driver it runs under.
pub struct Browser {
    client: Client,
    session: String,
    /// Dropped after the session has ended.
    driver: Driver,
    /// The service's address, for relative URLs.
    app: String,
}

impl Drop for Browser {
    /// Ends the session, which closes the browser and removes its profile; then the driver's drop
    /// stops whatever is left.
    fn drop(&mut self) {
        end_session(&self.driver.address, &self.session);
    }
}

/// `DELETE /session/{id}` with a blocking socket, as a drop (even while a test panics) cannot await
/// the client.
fn end_session(host: &str, session: &str) {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(host) else {
        return;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let request = format!(
        "DELETE /session/{session} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
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

/// The port chromedriver says it listens on, from a line of its output (`--port=0` lets it choose).
fn driver_port(line: &str) -> Option<u16> {
    line.split_once("started successfully on port ")?
        .1
        .trim_end_matches('.')
        .trim()
        .parse()
        .ok()
}

impl Browser {
    /// Starts chromedriver and a headless Chromium whose relative URLs are on `app`.
    pub async fn start(app: &str) -> Browser {
        // It chooses its port and says which, so none is reserved and released for it first.
        let mut process = Command::new(chromedriver())
            .arg("--port=0")
            .process_group(0)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let output = process.stdout.take().expect("chromedriver's output");
        let (found, said) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            // Read to the end, so a full pipe never holds the driver up.
            for line in std::io::BufReader::new(output)
                .lines()
                .map_while(Result::ok)
            {
                if let Some(port) = driver_port(&line) {
                    let _ = found.send(port);
                }
            }
        });
        let port = said
            .recv_timeout(PATIENCE)
            .expect("chromedriver says which port it listens on");
        let driver = Driver {
            process,
            address: format!("127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + PATIENCE;
        while tokio::net::TcpStream::connect(&driver.address)
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let binary = std::env::var("CHROMIUM").unwrap_or_else(|_| CHROMIUM.into());
        let capabilities: Capabilities = serde_json::from_value(json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": binary,
                "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                         "--window-size=1280,900"],
            },
            "goog:loggingPrefs": {"browser": "ALL"},
        }))
        .expect("capabilities are an object");
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://{}", driver.address))
            .await
            .unwrap_or_else(|e| panic!("no WebDriver session: {e}"));
        let session = client
            .session_id()
            .await
            .expect("chromedriver answers")
            .expect("a WebDriver session");
        Browser {
            client,
            session,
            driver,
            app: app.to_string(),
        }
    }

    /// Opens a path of the service.
    pub async fn open(&self, path: &str) {
        let url = format!("{}{path}", self.app);
        self.client
            .goto(&url)
            .await
            .unwrap_or_else(|e| panic!("WebDriver opens {url}: {e}"));
    }

    /// Runs a script in the page with arguments; returns what it returns.
    pub async fn script(&self, script: &str, args: Value) -> Value {
        let Value::Array(args) = args else {
            panic!("a script's arguments are an array, not {args}");
        };
        self.client
            .execute(script, args)
            .await
            .unwrap_or_else(|e| panic!("WebDriver runs {script:?}: {e}"))
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

    /// Runs an asynchronous script in the page: it ends by calling its last argument with its result.
    /// (The screens' benchmark measures with it.)
    #[allow(dead_code)]
    pub async fn script_async(&self, script: &str, args: Value) -> Value {
        let args = args.as_array().cloned().unwrap_or_default();
        self.client
            .execute_async(script, args)
            .await
            .unwrap_or_else(|e| panic!("the page runs an asynchronous script: {e}"))
    }

    /// Waits until `script` returns an element; returns it.
    async fn wait_for_element(&self, what: &str, script: &str, args: Value) -> Element {
        let found = self.wait_for(what, script, args).await;
        let id = found[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("{what} is not an element: {found}"));
        Element::from_element_id(self.client.clone(), id.to_string().into())
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
        let what = format!("a button {label:?} in {scope}");
        let button = self
            .wait_for_element(
                &what,
                "return [...document.querySelectorAll(arguments[0] + ' button')] \
                   .find(b => b.textContent.trim() === arguments[1] && !b.disabled && b.offsetParent) || null;",
                json!([scope, label]),
            )
            .await;
        Self::click(&button, &what).await;
    }

    async fn click(element: &Element, what: &str) {
        element
            .click()
            .await
            .unwrap_or_else(|e| panic!("WebDriver clicks {what}: {e}"));
    }

    /// Types into the field matching `css`.
    pub async fn type_into(&self, css: &str, text: &str) {
        let what = format!("the field {css}");
        let field = self
            .wait_for_element(
                &what,
                "return document.querySelector(arguments[0]);",
                json!([css]),
            )
            .await;
        field
            .send_keys(text)
            .await
            .unwrap_or_else(|e| panic!("WebDriver types into {what}: {e}"));
    }

    /// Presses Escape on the focused element, as a keyboard user would.
    pub async fn press_escape(&self) {
        let focused = self
            .client
            .active_element()
            .await
            .expect("a focused element");
        focused
            .send_keys(&Key::Escape)
            .await
            .unwrap_or_else(|e| panic!("WebDriver presses Escape: {e}"));
    }

    /// Picks the option with this visible text in the select matching `css`, as keyboard or mouse would.
    pub async fn choose(&self, css: &str, option_text: &str) {
        let what = format!("option {option_text:?} in {css}");
        let option = self
            .wait_for_element(
                &what,
                "const s = document.querySelector(arguments[0]); \
                 return s ? [...s.options].find(o => o.text === arguments[1]) || null : null;",
                json!([css, option_text]),
            )
            .await;
        Self::click(&option, &what).await;
    }

    /// Signs a workspace admin in with its token, as a user would, on the first screen.
    pub async fn sign_in(&self, token: &str) {
        self.type_into("#token", token).await;
        self.click_button("#sign-in", "Sign in").await;
        self.wait_text("main h1", "Settings › Security › Directory Sync")
            .await;
    }

    /// Goes to a screen through the navigation, as a user would.
    pub async fn go_to(&self, link: &str, heading: &str) {
        let what = format!("the link {link:?}");
        let element = self
            .wait_for_element(
                &what,
                "return [...document.querySelectorAll('#nav a')].find(a => a.textContent.trim() === arguments[0]) || null;",
                json!([link]),
            )
            .await;
        Self::click(&element, &what).await;
        // Each screen shows its heading once everything it lists has arrived.
        self.wait_text("main h1", heading).await;
    }

    /// Saves a PNG of the window as `name.png` in `ROLLCALL_SCREENSHOTS`, when it is set.
    pub async fn screenshot(&self, name: &str) {
        let Ok(folder) = std::env::var("ROLLCALL_SCREENSHOTS") else {
            return;
        };
        let png = self.client.screenshot().await.expect("a screenshot");
        std::fs::create_dir_all(&folder).expect("the screenshot folder");
        std::fs::write(format!("{folder}/{name}.png"), png).expect("a screenshot is written");
    }

    /// Fails if the page logged an error it should not have.
    pub async fn assert_console_clean(&self) {
        let log = self
            .client
            .issue_cmd(BrowserLog)
            .await
            .expect("chromedriver's browser log");
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
