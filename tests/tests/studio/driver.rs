//! A headless Chromium driven through chromedriver (WebDriver), started by the test on a
//! free port and stopped with it. Missing chromedriver fails the test, saying what to
//! install; it never skips.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};
use serde_json::json;

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// A running chromedriver and a browser session on it.
pub struct Browser {
    pub client: Client,
    _driver: Driver,
}

/// The chromedriver process, killed when dropped (the test passed or panicked).
struct Driver(std::process::Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn find(default: &str, name: &str) -> Option<PathBuf> {
    let default = PathBuf::from(default);
    if default.exists() {
        return Some(default);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.exists())
    })
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session.
    pub async fn start() -> Browser {
        let missing = "the studio's browser tests drive a real Chromium: install Debian's \
                       `chromium chromium-driver` (apt-get install chromium chromium-driver; .ci/run does it)";
        let driver_path = find(CHROMEDRIVER, "chromedriver")
            .unwrap_or_else(|| panic!("chromedriver not found. {missing}"));
        let chromium =
            find(CHROMIUM, "chromium").unwrap_or_else(|| panic!("chromium not found. {missing}"));
        let port = {
            let probe = TcpListener::bind("127.0.0.1:0").unwrap();
            probe.local_addr().unwrap().port()
        };
        let driver = std::process::Command::new(&driver_path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map(Driver)
            .unwrap_or_else(|e| panic!("cannot start {}: {e}. {missing}", driver_path.display()));
        let deadline = Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                Instant::now() < deadline,
                "chromedriver did not listen on port {port} within 20 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let capabilities = json!({
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1000"]
            }
        });
        let serde_json::Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        let mut builder =
            ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new());
        builder.capabilities(capabilities);
        let client = builder
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a Chromium session through chromedriver");
        Browser {
            client,
            _driver: driver,
        }
    }

    /// Ends the browser session (chromedriver stops with this value).
    pub async fn close(self) {
        let _ = self.client.close().await;
    }
}
