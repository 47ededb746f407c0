//! [`SecretUrl`]: a connection URL that never shows its password.

use std::fmt;

use url::Url;

const MASK: &str = "***";

/// A database URL whose `Display` and `Debug` hide the password (in the user-info part
/// and in a `password=` query parameter). Only [`SecretUrl::expose_secret`] gives the real
/// string, for handing to the driver.
///
/// ```
/// use dal_config::SecretUrl;
/// let url = SecretUrl::new("postgres://app:hunter2@db:5432/app?sslmode=require");
/// assert_eq!(url.to_string(), "postgres://app:***@db:5432/app?sslmode=require");
/// assert!(!format!("{url:?}").contains("hunter2"));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct SecretUrl(String);

impl SecretUrl {
    /// Wraps a URL.
    pub fn new(url: impl Into<String>) -> Self {
        SecretUrl(url.into())
    }

    /// The URL with its password. Pass it to a driver; never log or display it.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }

    /// The URL with any password replaced by `***`.
    pub fn redacted(&self) -> String {
        let Ok(mut url) = Url::parse(&self.0) else {
            return "<unparseable URL>".to_owned();
        };
        if url.password().is_some() {
            // `set_password` only fails for URLs that cannot have a password at all.
            let _ = url.set_password(Some(MASK));
        }
        if url.query_pairs().any(|(k, _)| is_secret_param(&k)) {
            let pairs: Vec<(String, String)> = url
                .query_pairs()
                .map(|(k, v)| {
                    let v = if is_secret_param(&k) {
                        MASK.into()
                    } else {
                        v.into_owned()
                    };
                    (k.into_owned(), v)
                })
                .collect();
            url.query_pairs_mut().clear().extend_pairs(pairs);
        }
        url.to_string().replace("%2A%2A%2A", MASK)
    }
}

fn is_secret_param(key: &str) -> bool {
    matches!(
        key.to_ascii_lowercase().as_str(),
        "password" | "sslpassword"
    )
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SecretUrl").field(&self.redacted()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hides_user_info_and_query_passwords() {
        let url = SecretUrl::new("postgres://u:p%40ss@h/db?password=other&sslmode=verify-full");
        let shown = format!("{url} {url:?}");
        assert!(
            !shown.contains("p%40ss") && !shown.contains("other"),
            "{shown}"
        );
        assert!(shown.contains("sslmode=verify-full"), "{shown}");
        assert_eq!(
            url.expose_secret(),
            "postgres://u:p%40ss@h/db?password=other&sslmode=verify-full"
        );
    }

    #[test]
    fn unparseable_urls_show_nothing() {
        assert_eq!(
            SecretUrl::new("::not a url:secret").to_string(),
            "<unparseable URL>"
        );
    }
}
