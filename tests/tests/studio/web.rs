//! A Studio started on a test's database, and an HTTP client that holds its cookie.

use parity_tests::TestDb;
use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, ORIGIN};
use studio::{Options, Running};

/// A running Studio and a signed-in client.
pub struct Web {
    pub running: Running,
    client: reqwest::Client,
    cookie: String,
    pub base: String,
}

/// An answer: status, body and where it redirects.
pub struct Answer {
    pub status: StatusCode,
    pub body: String,
    pub location: Option<String>,
}

impl Web {
    /// Studio on `t`'s database, writable or not, signed in with its token.
    pub async fn start(t: &TestDb, write: bool) -> Web {
        Web::start_with(t.db.clone(), t.config.clone(), write).await
    }

    /// Studio on `db`, opened with `config`.
    pub async fn start_with(db: dal::Database, config: dal::Config, write: bool) -> Web {
        let running = studio::start_on(db, config, Options::on_port(0).writable(write, write))
            .await
            .expect("studio starts");
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let answer = client.get(running.url_with_token()).send().await.unwrap();
        assert_eq!(answer.status(), StatusCode::SEE_OTHER);
        let cookie = answer.headers()["set-cookie"].to_str().unwrap().to_owned();
        let cookie = cookie.split(';').next().unwrap().to_owned();
        let base = running.base_url();
        Web {
            running,
            client,
            cookie,
            base,
        }
    }

    /// The CSRF token the pages carry.
    pub fn csrf(&self) -> String {
        self.running.studio.access.csrf().to_owned()
    }

    async fn answer(response: reqwest::Response) -> Answer {
        let status = response.status();
        let location = response
            .headers()
            .get(LOCATION)
            .map(|l| l.to_str().unwrap().to_owned());
        Answer {
            status,
            body: response.text().await.unwrap(),
            location,
        }
    }

    /// `GET path` with the cookie.
    pub async fn get(&self, path: &str) -> Answer {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .header(COOKIE, &self.cookie)
            .send()
            .await
            .unwrap();
        Web::answer(response).await
    }

    /// `GET path`, which must answer 200: its body.
    pub async fn page(&self, path: &str) -> String {
        let answer = self.get(path).await;
        assert_eq!(answer.status, StatusCode::OK, "GET {path}: {}", answer.body);
        answer.body
    }

    /// `POST path` as Studio's own page sends it: cookie, Origin, CSRF field.
    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> Answer {
        let csrf = self.csrf();
        let mut fields: Vec<(&str, &str)> = vec![("csrf", csrf.as_str())];
        fields.extend_from_slice(form);
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .header(COOKIE, &self.cookie)
            .header(ORIGIN, &self.base)
            .form(&fields)
            .send()
            .await
            .unwrap();
        Web::answer(response).await
    }

    /// A raw request builder with nothing added.
    pub fn raw(&self) -> &reqwest::Client {
        &self.client
    }

    /// The signed-in cookie header value.
    pub fn cookie(&self) -> &str {
        &self.cookie
    }
}

/// The text between `start` and the next `end` after it, for each occurrence.
pub fn all_between<'a>(text: &'a str, start: &str, end: &str) -> Vec<&'a str> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(start) {
        rest = &rest[i + start.len()..];
        let Some(j) = rest.find(end) else { break };
        found.push(&rest[..j]);
        rest = &rest[j..];
    }
    found
}

/// The edit form of `task` as a browser submits it, with `status` and the version the form
/// was read at.
pub fn task_form<'a>(
    task: &'a dal::prelude::Task,
    status: &'a str,
    version: &'a str,
) -> Vec<(&'a str, &'a str)> {
    vec![
        ("row_version", version),
        ("task_type", task.task_type.as_str()),
        ("status", status),
        ("params", "{\"frames\": 24}"),
        ("dependant_on", ""),
        ("output_location", ""),
    ]
}
